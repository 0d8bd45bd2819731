"""Curve laws chosen by leave-one-schedule-out validation: the rule, its plumbing, and the
held-out error on curves generated from known law parameters plus noise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from analysis.curve_validation import curve_errors, select_by_validation, select_curve_law
from analysis.curves import LRAnnealingFit, MultiPowerFit, refit
from analysis.fit_checks import FitRefused

# Luo et al. 2025, published 400M fit (README table, ALGORITHMS-NOTES §7.2); raw LRs.
MPL_400M = {
    "L0": 2.375,
    "A": 0.654,
    "alpha": 0.429,
    "B": 523.4,
    "C": 2.025,
    "beta": 0.594,
    "gamma": 0.635,
}
T, W, PEAK = 2000, 100, 3e-4
STEPS = np.unique(np.geomspace(W, T - 1, 20).astype(np.int64))  # log-spaced, like eval points
WARM = PEAK * np.arange(1, W + 1) / W


def constant() -> np.ndarray:
    return np.concatenate([WARM, np.full(T - W, PEAK)])


def cosine() -> np.ndarray:
    p = np.arange(T - W) / (T - W - 1)
    return np.concatenate([WARM, PEAK * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)))])


def wsd(shape: str) -> np.ndarray:
    c = T // 5
    q = np.arange(1, c + 1) / c
    decay = PEAK * (1 - 0.9 * (np.sqrt(q) if shape == "1-sqrt" else q))
    return np.concatenate([WARM, np.full(T - W - c, PEAK), decay])


def two_stage() -> np.ndarray:
    return np.concatenate([WARM, np.full(T // 2 - W, PEAK), np.full(T - T // 2, PEAK / 3)])


def _curve(law, lr: np.ndarray, rng: np.random.Generator, noise: float) -> tuple:
    loss = law.predict(lr, STEPS)
    return lr, STEPS, loss * np.exp(rng.normal(0.0, noise, loss.size))


@pytest.fixture(scope="module")
def mpl_selection():
    """MPL fitted on constant, cosine and WSD-linear curves with 0.3% noise; WSD-1-sqrt and a
    two-stage step schedule held out (noiseless, so the error measured is the law's)."""
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(0)
    train = {
        "constant": [_curve(true, constant(), rng, 0.003)],
        "cosine": [_curve(true, cosine(), rng, 0.003)],
        "wsd-linear": [_curve(true, wsd("linear"), rng, 0.003)],
    }
    held = {
        "wsd-1-sqrt": [_curve(true, wsd("1-sqrt"), rng, 0.0)],
        "two-stage": [_curve(true, two_stage(), rng, 0.0)],
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
    # Recompute every fold by hand: refit the candidate without the schedule, predict it.
    from analysis.curves import law_optima

    every = [c for k in sorted(train) for c in train[k]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        optima = law_optima("multi_power", every, n_polish=6, keep=3)
    assert len(optima) == len(sel.candidates)
    scores = []
    for j, cand in enumerate(optima):
        errs = []
        for name in sorted(train):
            rest = [c for k in sorted(train) if k != name for c in train[k]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fold = refit(cand, rest)
            lr, st, loss = train[name][0]
            e = curve_errors(lr, st, fold.predict(lr, st), loss)["mean_abs_rel_error"]
            row = sel.loso.loc[(sel.loso["candidate"] == j) & (sel.loso["schedule"] == name)].iloc[
                0
            ]
            assert row["mean_abs_rel_error"] == pytest.approx(e, rel=1e-9)
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
        "constant": [_curve(true, constant(), rng, 0.002)],
        "cosine": [_curve(true, cosine(), rng, 0.002)],
    }
    sel = select_curve_law(
        train, {"wsd": [_curve(true, wsd("1-sqrt"), rng, 0.0)]}, law="lr_annealing"
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
    # distinct optima and the one with the lower training objective has the higher LOSO error:
    # the LOSO one is kept. (LOSO error is a proxy: on this draw the discarded optimum happens
    # to predict the two held-out schedules better, 0.20% vs 0.33% — the benchmark measures how
    # often the proxy helps on published curves.)
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(11)
    train = {
        "constant": [_curve(true, constant(), rng, 0.006)],
        "cosine": [_curve(true, cosine(), rng, 0.006)],
        "wsd-linear": [_curve(true, wsd("linear"), rng, 0.006)],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sel = select_curve_law(train)
    c = sel.candidates
    assert len(c) == 2
    lowest_objective = int(c.sort_values("objective")["candidate"].iloc[0])
    lowest_loso = int(c.sort_values("loso_error")["candidate"].iloc[0])
    assert lowest_objective != lowest_loso
    assert int(c.loc[c["chosen"], "candidate"].iloc[0]) == lowest_loso
    assert sel.fit.objective > c["objective"].min()
