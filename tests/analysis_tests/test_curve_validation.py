"""Curve laws chosen by leave-one-schedule-out validation: the rule, its plumbing, and the
held-out error on curves generated from known law parameters plus noise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.curve_regularised import fit_multi_power_regularised as regularised
from analysis.curve_validation import (
    LOSO_OVERRULE,
    MULTI_START,
    REGULARISED,
    curve_errors,
    select_by_validation,
    select_curve_law,
)
from analysis.curves import LRAnnealingFit, MultiPowerFit, refit
from analysis.fit_checks import FitRefused
from tests.analysis_tests._law_curves import MPL_400M, constant, cosine, law_curve, two_stage, wsd


@pytest.fixture(scope="module")
def mpl_selection():
    """MPL fitted on constant, cosine and WSD-linear curves with 0.3% noise; WSD-1-sqrt and a
    two-stage step schedule held out (noiseless, so the error measured is the law's)."""
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(0)
    train = {
        "constant": [law_curve(true, constant(), rng, 0.003)],
        "cosine": [law_curve(true, cosine(), rng, 0.003)],
        "wsd-linear": [law_curve(true, wsd("linear"), rng, 0.003)],
    }
    held = {
        "wsd-1-sqrt": [law_curve(true, wsd("1-sqrt"), rng, 0.0)],
        "two-stage": [law_curve(true, two_stage(), rng, 0.0)],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return select_curve_law(train, held), train, held


def test_the_rule_prefers_validation_error_over_training_objective():
    # candidate 0 fits the training schedules best but predicts left-out ones worst
    assert (
        select_by_validation([1.0, 1.1, 1.2], np.array([[0.05, 0.04], [0.01, 0.02], [0.03, 0.03]]))
        == 1
    )
    # ties on validation: the lower objective
    assert select_by_validation([1.2, 1.1], np.array([[0.02, 0.02], [0.02, 0.02]])) == 1
    # a candidate whose folds all failed ranks after any candidate with a score
    assert select_by_validation([0.5, 1.0], np.array([[np.nan, np.nan], [0.3, 0.3]])) == 1
    # no validation possible at all (one schedule): the training objective decides
    assert select_by_validation([2.0, 1.0, 3.0], np.full((3, 0), np.nan)) == 1


def test_held_out_error_is_within_the_stated_bound(mpl_selection):
    sel, _, _ = mpl_selection
    # Bound (stated in the report's caption): with 0.3% noise on 24 points of each of 3 training
    # schedules, the held-out curves are predicted within 0.3% on average and 1% at the horizon.
    # Measured: mean 0.03–0.1%, at the horizon 0.06–0.5%.
    held = sel.held_out.set_index("schedule")
    assert set(held.index) == {"wsd-1-sqrt", "two-stage"}
    assert (held["mean_abs_rel_error"] < 0.003).all(), held
    assert (held["final_abs_rel_error"] < 0.01).all(), held
    # the decay region (what a law must get right) is measured separately and also small
    assert held.loc["wsd-1-sqrt", "decay_mean_abs_rel_error"] < 0.005
    assert sel.fit.L0 == pytest.approx(MPL_400M["L0"], rel=0.03)


def test_loso_errors_are_the_refits_without_each_schedule(mpl_selection):
    sel, train, _ = mpl_selection
    assert sel.note == ""
    chosen = int(sel.candidates.loc[sel.candidates["chosen"], "candidate"].iloc[0])
    assert sorted(sel.loso.loc[sel.loso["candidate"] == chosen, "schedule"]) == sorted(train)
    # Recompute every fold by hand: refit each multi-start candidate without the schedule (from
    # its optimum), rerun the regularised procedure without it; predict the schedule.
    from analysis.curves import law_optima

    every = [c for k in train for c in train[k]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        optima = law_optima("multi_power", every, n_polish=6, keep=3)
    assert list(sel.candidates["method"]) == [MULTI_START] * len(optima) + [REGULARISED]
    scores = []
    for j in range(len(optima) + 1):
        errs = []
        for name in train:
            rest = [c for k in train if k != name for c in train[k]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fold = refit(optima[j], rest) if j < len(optima) else regularised(rest)
            lr, st, loss = train[name][0]
            e = curve_errors(lr, st, fold.predict(lr, st), loss)["mean_abs_rel_error"]
            row = sel.loso.loc[(sel.loso["candidate"] == j) & (sel.loso["schedule"] == name)]
            assert row["mean_abs_rel_error"].iloc[0] == pytest.approx(e, rel=1e-9)
            errs.append(e)
        scores.append(np.mean(errs))
    assert chosen == int(np.argmin(scores))  # (ties broken by objective; none here)
    assert sel.candidates["loso_error"].to_numpy() == pytest.approx(scores, rel=1e-9)
    # the figure's LOSO prediction of each schedule comes from its fold fit
    for name in train:
        lr, st, _ = train[name][0]
        np.testing.assert_allclose(sel.predictions[name][0], sel.fold_fits[name].predict(lr, st))


def test_curve_errors_by_hand():
    lr = np.array([1.0, 2.0, 2.0, 1.5, 1.0])  # peak at index 1; decay from index 3 on
    steps = np.array([0, 2, 3, 4])
    measured = np.array([4.0, 2.0, 2.0, 1.0])
    pred = np.array([4.4, 2.0, 2.2, 1.1])  # rel err 10%, 0, 10%, 10%
    e = curve_errors(lr, steps, pred, measured)
    assert e["mean_abs_rel_error"] == pytest.approx(0.075)
    assert e["max_abs_rel_error"] == pytest.approx(0.1)
    assert e["final_abs_rel_error"] == pytest.approx(0.1)  # step 4
    assert e["decay_mean_abs_rel_error"] == pytest.approx(0.1)  # steps 3, 4
    assert np.isnan(curve_errors(np.ones(5), steps, pred, measured)["decay_mean_abs_rel_error"])


def test_annealing_law_selection_and_refusals():
    true, rng = LRAnnealingFit(L0=2.5, A=0.64, alpha=0.43, C=0.63), np.random.default_rng(1)
    train = {
        "constant": [law_curve(true, constant(), rng, 0.002)],
        "cosine": [law_curve(true, cosine(), rng, 0.002)],
    }
    sel = select_curve_law(
        train, {"wsd": [law_curve(true, wsd("1-sqrt"), rng, 0.0)]}, law="lr_annealing"
    )
    assert sel.law == "lr_annealing" and isinstance(sel.fit, LRAnnealingFit)
    assert sel.held_out["mean_abs_rel_error"].iloc[0] < 0.003
    # one schedule: no LOSO, chosen by objective, and said so
    one = select_curve_law({"constant": train["constant"]}, law="lr_annealing")
    assert one.note.startswith("one training schedule: no leave-one-schedule-out validation")
    # fewer points than parameters + 1 (4 for the annealing law): refused with the reason
    lr, st, loss = train["constant"][0]
    with pytest.raises(
        FitRefused, match=r"LR-annealing law refused: it has 4 parameters and needs at least 5"
    ):
        select_curve_law({"constant": [(lr, st[:4], loss[:4])]}, law="lr_annealing")
    with pytest.raises(
        ValueError, match=r"law must be one of \['lr_annealing', 'multi_power'\], got 'x'"
    ):
        select_curve_law(train, law="x")


def test_a_lower_training_objective_loses_to_a_lower_loso_error():
    # A case (6‰ noise, seed 11, found by scanning seeds) where the multi-start search ends in two
    # distinct optima and the one with the lower training objective has the higher LOSO error.
    # The regularised candidate has the lowest LOSO error of the three and is kept. (LOSO error
    # is a proxy: on this draw the multi-start optimum with the higher objective happens to
    # predict the two held-out schedules better — the benchmark measures how often the proxy
    # helps on published curves.)
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(11)
    train = {
        "constant": [law_curve(true, constant(), rng, 0.006)],
        "cosine": [law_curve(true, cosine(), rng, 0.006)],
        "wsd-linear": [law_curve(true, wsd("linear"), rng, 0.006)],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel = select_curve_law(train)
    c = sel.candidates
    multi = c.loc[c["method"] == MULTI_START]
    assert len(multi) == 2 and len(c) == 3
    lowest_objective = int(multi.sort_values("objective")["candidate"].iloc[0])
    assert lowest_objective != int(multi.sort_values("loso_error")["candidate"].iloc[0])
    assert int(c.loc[c["chosen"], "candidate"].iloc[0]) == int(c["loso_error"].idxmin())
    assert sel.fit.objective > c["objective"].min() and sel.note == ""


def _mean_held_out(fit, held: dict) -> float:
    return float(
        np.mean(
            [
                curve_errors(lr, st, fit.predict(lr, st), loss)["mean_abs_rel_error"]
                for curves in held.values()
                for lr, st, loss in curves
            ]
        )
    )


def _two_schedule_draw(seed: int) -> tuple[dict, dict]:
    """Cosine + constant with 0.3% noise to fit (the paper's choice of training schedules);
    WSD-linear, WSD-1-sqrt and a two-stage step schedule held out (noiseless)."""
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(seed)
    train = {
        "constant": [law_curve(true, constant(), rng, 0.003)],
        "cosine": [law_curve(true, cosine(), rng, 0.003)],
    }
    held = {
        "wsd-linear": [law_curve(true, wsd("linear"), rng, 0.0)],
        "wsd-1-sqrt": [law_curve(true, wsd("1-sqrt"), rng, 0.0)],
        "two-stage": [law_curve(true, two_stage(), rng, 0.0)],
    }
    return train, held


def test_with_two_schedules_the_regularised_fit_is_chosen_and_said_so():
    train, held = _two_schedule_draw(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel = select_curve_law(train, held)
        objective_best = min(
            (f for f in _candidates(sel)), key=lambda f: f.objective
        )  # the multi-start optimum a choice by training objective would keep
        direct = regularised([c for k in train for c in train[k]])
    c = sel.candidates
    assert c.loc[c["chosen"], "method"].tolist() == [REGULARISED]
    assert sel.note.startswith(
        "leave-one-schedule-out cannot discriminate (2 training schedules; it needs ≥ 3): "
        "chose the regularised fit"
    )
    # the chosen fit is the procedure run on every training curve
    assert (sel.fit.L0, sel.fit.B, sel.fit.gamma) == (direct.L0, direct.B, direct.gamma)
    # it has a higher training objective than the multi-start optima, yet predicts better:
    # known answer on this draw 0.12% against 0.28% (bound stated: 0.3%)
    assert sel.fit.objective > c["objective"].min()
    err = float(sel.held_out["mean_abs_rel_error"].mean())
    assert err < 0.003
    assert err <= _mean_held_out(objective_best, held)
    # the LOSO folds still run and are reported (one schedule each), only not used to choose
    assert sorted(sel.fold_fits) == ["constant", "cosine"]


def _candidates(sel) -> list[MultiPowerFit]:
    names = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
    rows = sel.candidates.loc[sel.candidates["method"] == MULTI_START]
    return [
        MultiPowerFit(**{k: float(r[k]) for k in names}, objective=float(r["objective"]))
        for _, r in rows.iterrows()
    ]


def test_the_regularised_fit_beats_the_objective_best_on_most_two_schedule_draws():
    # Draws 0-5 (the first six, not selected): measured held-out error, regularised vs lowest
    # training objective, 0.12/0.28, 0.05/0.17, 0.82/0.15, 0.10/0.19, 0.10/0.25, 0.13/0.10 (%).
    # Bounds stated: median ≤ 0.15% and below the objective-best's median; every draw ≤ 1%;
    # better on at least 4 of 6. (Not on every draw: the early stop sometimes ends far from
    # the data — draw 2 — and the lowest objective sometimes predicts well — draw 5.)
    from analysis.curves import law_optima

    ours, best_objective = [], []
    for seed in range(6):
        train, held = _two_schedule_draw(seed)
        every = [c for k in train for c in train[k]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ours.append(_mean_held_out(regularised(every), held))
            best_objective.append(
                _mean_held_out(law_optima("multi_power", every, n_polish=6, keep=3)[0], held)
            )
    ours, best_objective = np.array(ours), np.array(best_objective)
    assert np.median(ours) <= 0.0015 and np.median(ours) < np.median(best_objective)
    assert ours.max() < 0.01
    assert (ours <= best_objective).sum() >= 4, (ours, best_objective)


def test_with_two_schedules_a_decisively_better_loso_error_overrules_the_regularised_fit():
    # draw 5: a multi-start optimum's LOSO error (0.24%) is under half the regularised fit's
    # (0.57%), so it is chosen, and it predicts the held-out schedules better: 0.077% against
    # 0.132% (measured). On draws 0-4 the regularised fit stays (previous tests).
    train, held = _two_schedule_draw(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel = select_curve_law(train, held)
        direct = regularised([c for k in train for c in train[k]])
    c = sel.candidates
    chosen = c.loc[c["chosen"]].iloc[0]
    reg = c.loc[c["method"] == REGULARISED].iloc[0]
    assert chosen["method"] == MULTI_START
    assert LOSO_OVERRULE * chosen["loso_error"] < reg["loso_error"]
    assert sel.note.startswith("two training schedules: leave-one-schedule-out error 0.2")
    err = float(sel.held_out["mean_abs_rel_error"].mean())
    assert err < 0.001 and err < 0.8 * _mean_held_out(direct, held)


def test_with_three_schedules_loso_decides_and_may_keep_a_multi_start_optimum():
    # draw 1 (3 schedules, 0.3% noise): a multi-start optimum has LOSO error 0.24% against the
    # regularised fit's 0.28%; LOSO, not the two-schedule rule, chooses it.
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(1)
    train = {
        "constant": [law_curve(true, constant(), rng, 0.003)],
        "cosine": [law_curve(true, cosine(), rng, 0.003)],
        "wsd-linear": [law_curve(true, wsd("linear"), rng, 0.003)],
    }
    held = {"two-stage": [law_curve(true, two_stage(), rng, 0.0)]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel = select_curve_law(train, held)
    c = sel.candidates
    assert REGULARISED in set(c["method"]) and sel.note == ""
    chosen = c.loc[c["chosen"]].iloc[0]
    assert chosen["method"] == MULTI_START
    assert chosen["loso_error"] == c["loso_error"].min()
    assert float(sel.held_out["mean_abs_rel_error"].iloc[0]) < 0.003


def test_when_no_fold_can_be_fitted_the_regularised_fit_is_chosen():
    # three schedules of 3 points: 9 points fit the 7-parameter law, each fold's 6 do not
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(2)
    train = {}
    for name, lr in (("constant", constant()), ("cosine", cosine()), ("wsd", wsd("linear"))):
        lr_, st, loss = law_curve(true, lr, rng, 0.001)
        train[name] = [(lr_, st[[5, 12, 19]], loss[[5, 12, 19]])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel = select_curve_law(train)
    assert sel.candidates.loc[sel.candidates["chosen"], "method"].tolist() == [REGULARISED]
    assert sel.note.startswith(
        "leave-one-schedule-out cannot discriminate (no fold could be fitted; it needs ≥ 3)"
    )
    assert "fold without wsd refused" in sel.note and sel.candidates["loso_error"].isna().all()
