"""Loss tables, oracle, regret and robustness on hand-built results whose answers are known.

(The anytime-optimal answer against the envelope: ``test_anytime.py``; noise: ``test_noise.py``.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.anytime import robustness
from analysis.grid import lr_sensitivity, lr_trend
from analysis.horizons import horizon_multiples, loss_table, oracle, regret, seed_losses
from analysis.summary import summary_sentences
from analysis.tables import ResultsFrameError

H = (100, 200, 400)


def _rows(
    family: str, lr: float, weights: str, losses: dict[int, list[float]], **extra
) -> list[dict]:
    """One final_losses row per (horizon, seed); NaN losses are diverged unless status given."""
    rows = []
    for h, per_seed in losses.items():
        for seed, loss in enumerate(per_seed):
            status = extra.get("status") or ("completed" if np.isfinite(loss) else "diverged")
            rows.append(
                {
                    "family": family,
                    "peak_lr": lr,
                    "weights": weights,
                    "horizon": h,
                    "seed": seed,
                    "loss": loss,
                    "status": status,
                    "lineage_id": f"{family}-{lr}-{seed}-{h}",
                    "branch": "main",
                    "workload": "w",
                    "model_size": "s",
                }
            )
    return rows


# Three candidates, one seed each, losses chosen so every number below is exact by hand:
#   horizon:          100   200   400
#   cosine 1e-3 raw   2.0   1.8   1.5    <- oracle at 100 and 200
#   wsd 1e-3 raw      2.2   1.8   1.2    <- oracle at 400 (ties cosine at 200; label order decides)
#   constant 1e-3 ema 2.1   1.98  1.32
SIMPLE = pd.DataFrame(
    _rows("cosine", 1e-3, "raw", {100: [2.0], 200: [1.8], 400: [1.5]})
    + _rows("wsd", 1e-3, "raw", {100: [2.2], 200: [1.8], 400: [1.2]})
    + _rows("constant", 1e-3, "ema@0.05", {100: [2.1], 200: [1.98], 400: [1.32]})
)


def _by(frame: pd.DataFrame, col: str = "regret") -> dict[tuple[str, int], float]:
    return {(r.candidate, r.horizon): getattr(r, col) for r in frame.itertuples()}


def test_oracle_per_horizon_with_deterministic_ties():
    orc = oracle(loss_table(SIMPLE)).set_index("horizon")
    assert orc.loc[100, "candidate"] == "cosine lr=0.001 with raw"
    # cosine and wsd tie at 1.8 at horizon 200: the smaller label wins, every time.
    assert orc.loc[200, "candidate"] == "cosine lr=0.001 with raw"
    assert orc.loc[400, "candidate"] == "wsd lr=0.001 with raw"
    assert orc["loss"].tolist() == [2.0, 1.8, 1.2]


def test_relative_and_absolute_regret_values():
    rel = _by(regret(loss_table(SIMPLE), reference="oracle"))
    assert rel[("cosine lr=0.001 with raw", 100)] == 0.0
    assert rel[("wsd lr=0.001 with raw", 100)] == pytest.approx(0.1)  # 2.2/2.0 - 1
    assert rel[("constant lr=0.001 with ema@0.05", 100)] == pytest.approx(0.05)  # 2.1/2.0 - 1
    assert rel[("constant lr=0.001 with ema@0.05", 200)] == pytest.approx(0.1)  # 1.98/1.8 - 1
    assert rel[("cosine lr=0.001 with raw", 400)] == pytest.approx(0.25)  # 1.5/1.2 - 1
    assert rel[("constant lr=0.001 with ema@0.05", 400)] == pytest.approx(0.1)  # 1.32/1.2 - 1
    ab = _by(regret(loss_table(SIMPLE), relative=False, reference="oracle"))
    assert ab[("cosine lr=0.001 with raw", 400)] == pytest.approx(0.3)
    assert ab[("wsd lr=0.001 with raw", 100)] == pytest.approx(0.2)


def test_worst_case_and_mean_regret():
    rob = robustness(loss_table(SIMPLE), reference="oracle").set_index("candidate")
    # constant+EMA: regrets 0.05, 0.10, 0.10 -> worst 0.10, mean 0.25/3; wsd: 0.10, 0, 0 -> worst
    # 0.10, mean 0.1/3: equal worst case, so the lower mean ranks first; cosine: worst 0.25.
    assert list(rob.index) == [
        "wsd lr=0.001 with raw",
        "constant lr=0.001 with ema@0.05",
        "cosine lr=0.001 with raw",
    ]
    assert rob.loc["constant lr=0.001 with ema@0.05", "worst_regret"] == pytest.approx(0.10)
    assert rob.loc["constant lr=0.001 with ema@0.05", "mean_regret"] == pytest.approx(0.25 / 3)
    assert rob.loc["wsd lr=0.001 with raw", "mean_regret"] == pytest.approx(0.1 / 3)
    assert rob.loc["cosine lr=0.001 with raw", "worst_regret"] == pytest.approx(0.25)
    assert rob.loc["cosine lr=0.001 with raw", "worst_horizon"] == 400
    # Over 100-200 only, cosine is the oracle everywhere: zero worst-case regret.
    short = robustness(loss_table(SIMPLE), horizon_range=(100, 200), reference="oracle").set_index(
        "candidate"
    )
    assert short.loc["cosine lr=0.001 with raw", "worst_regret"] == 0.0
    assert short.loc["wsd lr=0.001 with raw", "worst_regret"] == pytest.approx(0.1)


def test_envelope_regret_uses_only_horizon_aware_candidates():
    # constant+EMA is anytime: the envelope is cosine and wsd only: (2.0, 1.8, 1.2)
    rel = _by(regret(loss_table(SIMPLE)))
    assert rel[("constant lr=0.001 with ema@0.05", 400)] == pytest.approx(0.1)
    assert rel[("constant lr=0.001 with ema@0.05", 100)] == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"reference must be 'envelope' or 'oracle', got 'best'"):
        regret(loss_table(SIMPLE), reference="best")


def test_a_diverged_setting_is_kept_and_ranked_worst():
    diverged = pd.DataFrame(
        _rows(
            "sf_adamw",
            1e-2,
            "x",
            {100: [2.3, 2.3], 200: [1.7, math.nan], 400: [math.nan, math.nan]},
        )
    )
    table = loss_table(pd.concat([SIMPLE, diverged]))
    sf = table.loc[table["family"] == "sf_adamw"].set_index("horizon")
    assert sf.loc[100, "loss"] == 2.3 and sf.loc[100, "n_diverged"] == 0
    assert math.isinf(sf.loc[200, "loss"]) and sf.loc[200, "n_diverged"] == 1  # one seed of two
    assert math.isnan(sf.loc[200, "stderr"])
    # Its seed-1 divergence at 200 makes the mean +inf (1.7 would have been the oracle there):
    # the oracle at 200 stays 1.8, and its regret there is infinite.
    rel = _by(regret(table, reference="oracle"))
    assert rel[("sf_adamw lr=0.01 with x", 100)] == pytest.approx(0.15)  # 2.3/2.0 - 1
    assert rel[("cosine lr=0.001 with raw", 200)] == 0.0
    assert math.isinf(rel[("sf_adamw lr=0.01 with x", 200)])
    # It ranks last: infinite worst-case regret, present in every output.
    rob = robustness(table)
    assert rob["candidate"].iloc[-1] == "sf_adamw lr=0.01 with x"
    assert math.isinf(rob["worst_regret"].iloc[-1]) and rob["n_diverged"].iloc[-1] == 2
    assert any(
        "diverged: 1 candidate(s)" in s and "sf_adamw lr=0.01 with x" in s
        for s in summary_sentences(table)
    )


def test_failed_runs_are_missing_not_infinite():
    failed = pd.DataFrame(
        _rows("polynomial", 1e-3, "raw", {100: [1.0], 200: [1.0]})
        + _rows("polynomial", 1e-3, "raw", {400: [math.nan]}, status="failed")
    )
    table = loss_table(pd.concat([SIMPLE, failed]))
    row = table.loc[(table["family"] == "polynomial") & (table["horizon"] == 400)].iloc[0]
    assert math.isnan(row["loss"]) and row["n_failed"] == 1 and row["n_seeds"] == 0
    rob = robustness(table).set_index("candidate")
    assert rob.loc["polynomial lr=0.001 with raw", "n_missing"] == 1
    assert not rob.loc["polynomial lr=0.001 with raw", "complete"]
    # Far better than the envelope where it has results (1.0 vs 2.0 and 1.8), but incomplete:
    # it ranks after every complete candidate and cannot be anytime-optimal.
    assert rob.loc["polynomial lr=0.001 with raw", "worst_regret"] == pytest.approx(1.0 / 1.8 - 1)
    assert rob.index[-1] == "polynomial lr=0.001 with raw"
    s = summary_sentences(table)
    assert s[0].startswith("anytime-optimal: constant lr=0.001 with ema@0.05")
    assert any(x.startswith("incomplete: 1 candidate(s)") for x in s)


def test_seeds_give_mean_and_standard_error():
    df = pd.DataFrame(
        _rows("cosine", 1e-3, "raw", {100: [2.0, 2.2, 2.4]})
        + _rows("cosine", 1e-3, "ema@0.05", {100: [2.0]})
    )
    table = loss_table(df).set_index("weights")
    assert table.loc["raw", "loss"] == pytest.approx(2.2)
    # sample std of (2.0, 2.2, 2.4) is 0.2; stderr = 0.2 / sqrt(3)
    assert table.loc["raw", "stderr"] == pytest.approx(0.2 / math.sqrt(3))
    assert table.loc["raw", "n_seeds"] == 3
    assert table.loc["ema@0.05", "n_seeds"] == 1 and math.isnan(table.loc["ema@0.05", "stderr"])


def test_optimal_lr_trend_slope_from_interior_optima():
    # Loss is a parabola in log LR with its minimum at lr*(T) = 1e-2 · (T/100)^-0.5: on the grid
    # {2e-2, 1e-2, 5e-3, 2.5e-3, 1.25e-3} the optimum halves each time the horizon quadruples
    # and is interior at every horizon -> slope -0.5 from 3 interior points.
    lrs = (2e-2, 1e-2, 5e-3, 2.5e-3, 1.25e-3)
    rows = []
    for h in (100, 400, 1600):
        best = 1e-2 * (h / 100) ** -0.5
        for lr in lrs:
            rows += _rows("cosine", lr, "raw", {h: [2.0 + (math.log(lr) - math.log(best)) ** 2]})
    table = loss_table(pd.DataFrame(rows))
    sens = lr_sensitivity(table)
    assert sens.optimal.set_index("horizon")["peak_lr"].to_dict() == {
        100: 1e-2,
        400: 5e-3,
        1600: 2.5e-3,
    }
    assert sens.optimal["interior"].all()
    trend = lr_trend(table, sens)
    assert trend["slope"].iloc[0] == pytest.approx(-0.5)
    assert trend["n_interior"].iloc[0] == 3
    assert len(sens.curves) == 15
    # a family run at one LR has no trend (no interior optimum)
    flat = lr_trend(loss_table(SIMPLE))
    assert flat["slope"].isna().all() and (flat["n_interior"] == 0).all()


def test_summary_sentences_format():
    extra = pd.DataFrame(_rows("cosine", 3e-3, "raw", {100: [2.02], 200: [1.83], 400: [1.26]}))
    df = pd.concat([SIMPLE, extra])
    sentences = summary_sentences(loss_table(df), seed_losses(df))
    # the only anytime candidate: constant+EMA against the envelope (2.0, 1.8, 1.2)
    # regrets 2.1/2 − 1, 1.98/1.8 − 1, 1.32/1.2 − 1 = 5%, 10%, 10%
    assert sentences[0].startswith(
        "anytime-optimal: constant lr=0.001 with ema@0.05, the only anytime candidate with a "
        "result at every horizon; worst-case regret 10% against the tuned envelope over 1–4× shortest horizon (mean 8.3%, worst at "
    )
    assert any(
        s.startswith(
            "envelope (best horizon-aware per horizon): cosine lr=0.001 with raw at 1–2×; "
            "wsd lr=0.001 with raw at 4×"
        )
        for s in sentences
    )
    assert sentences == summary_sentences(
        loss_table(pd.concat([extra, SIMPLE])), seed_losses(pd.concat([extra, SIMPLE]))
    )  # order-free input


def test_chinchilla_multiples_when_tokens_and_params_known():
    df = SIMPLE.assign(tokens_per_step=1000, n_params=5000.0)  # 20·N = 1e5 tokens per multiple
    mults, unit = horizon_multiples(loss_table(df))
    assert unit == "Chinchilla"
    assert mults["multiple"].tolist() == [1.0, 2.0, 4.0]
    assert "over 1–4× Chinchilla" in summary_sentences(loss_table(df))[0]
    assert set(seed_losses(df)["candidate"]) == set(loss_table(df)["candidate"])


def test_bad_input_names_the_problem():
    with pytest.raises(ResultsFrameError, match=r"final_losses is missing column\(s\) \['loss'\]"):
        loss_table(SIMPLE.drop(columns="loss"))
    with pytest.raises(ResultsFrameError, match=r"status must be one of .*'exploded'"):
        loss_table(SIMPLE.assign(status="exploded"))
    twice = pd.concat([SIMPLE, SIMPLE.iloc[:1].assign(branch="trunk")])
    with pytest.raises(
        ResultsFrameError,
        match=r"answers horizon 100 .* more than once \(branches \['main', 'trunk'\]\)",
    ):
        loss_table(twice)


def test_categorical_columns_from_parquet_are_accepted():
    cat = SIMPLE.astype({"family": "category", "weights": "category", "workload": "category"})
    pd.testing.assert_frame_equal(loss_table(cat), loss_table(SIMPLE))


def test_pending_runs_are_missing_not_diverged():
    # a sweep in progress: the store marks settings not trained yet "pending" (loss NaN)
    pending = pd.DataFrame(_rows("polynomial", 1e-3, "raw", {400: [math.nan]}, status="pending"))
    table = loss_table(pd.concat([SIMPLE, pending]))
    row = table.loc[table["family"] == "polynomial"].iloc[0]
    assert math.isnan(row["loss"]) and row["n_diverged"] == 0 and row["n_seeds"] == 0
