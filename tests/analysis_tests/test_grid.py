"""Edge-of-grid warnings and the optimal-LR trend on constructed grids."""

from __future__ import annotations

import math

import pandas as pd

from analysis.grid import candidate_axes, edge_sentences, edge_warnings, lr_trend
from analysis.horizons import loss_table, seed_losses
from analysis.summary import grid_warnings, summary_sentences
from tests.analysis_tests._frames import frame, rows

H = (100, 200, 400)


def _parabola(best_lr: float, lrs: tuple[float, ...], family: str = "constant", weights: str = "raw",
              **kw) -> list[dict]:  # fmt: skip
    """Loss = 2 + (log lr − log best)² at every horizon: the optimum is the grid LR nearest best."""
    out = []
    for lr in lrs:
        loss = 2.0 + (math.log(lr) - math.log(best_lr)) ** 2
        out += rows(family, lr, weights, {h: [loss] for h in H}, **kw)
    return out


def _optimum(table: pd.DataFrame, candidate: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"workload": "w", "model_size": "s", "candidate": candidate, "role": "test"}]
    )


def test_an_optimum_at_the_largest_lr_tried_says_widen_above():
    table = loss_table(frame(_parabola(1e-1, (1e-3, 3e-3, 1e-2))))  # truth far above the grid
    w = edge_warnings(table, _optimum(table, "constant lr=0.01 with raw"))
    assert [(x.axis, x.side, x.value, x.tried) for x in w] == [
        ("peak_lr", "above", 0.01, (1e-3, 3e-3, 1e-2))
    ]
    assert edge_sentences(w) == [
        "grid edge: test (constant lr=0.01 with raw) sits at the largest peak_lr tried "
        "(0.01 of 0.001, 0.003, 0.01): widen the peak_lr axis above 0.01."
    ]


def test_an_optimum_at_the_smallest_lr_tried_says_widen_below():
    table = loss_table(frame(_parabola(1e-5, (1e-3, 3e-3, 1e-2))))
    w = edge_warnings(table, _optimum(table, "constant lr=0.001 with raw"))
    assert [(x.axis, x.side) for x in w] == [("peak_lr", "below")]


def test_an_interior_optimum_gives_no_warning():
    table = loss_table(frame(_parabola(3e-3, (1e-3, 3e-3, 1e-2))))
    assert edge_warnings(table, _optimum(table, "constant lr=0.003 with raw")) == []
    # …and through the summary: no grid-edge sentence at all
    df = frame(_parabola(3e-3, (1e-3, 3e-3, 1e-2)))
    assert not any("grid edge" in s for s in summary_sentences(loss_table(df), seed_losses(df)))


def test_an_optimum_below_a_diverged_lr_is_not_at_the_edge():
    # The largest LR tried diverged: the grid was explored above the optimum.
    df = frame(
        _parabola(1e-1, (1e-3, 3e-3, 1e-2)),
        rows("constant", 3e-2, "raw", {h: [math.nan] for h in H}),
    )
    table = loss_table(df)
    assert edge_warnings(table, _optimum(table, "constant lr=0.01 with raw")) == []


def test_a_single_lr_is_not_an_axis():
    table = loss_table(frame(_parabola(1e-1, (1e-2,))))
    assert "peak_lr" not in candidate_axes(table)[1]
    assert edge_warnings(table, _optimum(table, "constant lr=0.01 with raw")) == []
    # LR varies in the sweep (cosine ran at two), but constant was run at one LR only: its grid
    # line has one value, so there is no edge to report for it (the cosine one is).
    mixed = loss_table(
        frame(_parabola(1e-1, (1e-2,)), _parabola(1e-1, (1e-3, 1e-2), family="cosine"))
    )
    assert "peak_lr" in candidate_axes(mixed)[1]
    assert edge_warnings(mixed, _optimum(mixed, "constant lr=0.01 with raw")) == []
    assert len(edge_warnings(mixed, _optimum(mixed, "cosine lr=0.01 with raw"))) == 1


def test_any_swept_hyperparameter_is_an_axis():
    # polynomial decay exponent gamma swept over {0.25, 0.5}; the best gamma is the largest.
    df = frame(
        _parabola(3e-3, (1e-3, 3e-3, 1e-2), family="polynomial", schedule_params={"gamma": 0.5, "t0": 10}),
        [
            {**r, "loss": r["loss"] + 0.1}
            for r in _parabola(3e-3, (1e-3, 3e-3, 1e-2), family="polynomial",
                               schedule_params={"gamma": 0.25, "t0": 10})
        ],
    )  # fmt: skip
    table = loss_table(df)
    best = "polynomial (gamma=0.5, t0=10) lr=0.003 with raw"
    assert best in set(table["candidate"])
    w = edge_warnings(table, _optimum(table, best))
    assert [(x.axis, x.side, x.value) for x in w] == [("schedule_params.gamma", "above", 0.5)]
    # the averager's window is an axis too: ema@0.05 vs ema@0.1, the longer one best
    ema = frame(
        _parabola(3e-3, (1e-3, 3e-3, 1e-2), weights="ema@0.1"),
        [
            {**r, "loss": r["loss"] + 0.05}
            for r in _parabola(3e-3, (1e-3, 3e-3, 1e-2), weights="ema@0.05")
        ],
    )
    table = loss_table(ema)
    w = edge_warnings(table, _optimum(table, "constant lr=0.003 with ema@0.1"))
    assert [(x.axis, x.side, x.value) for x in w] == [("ema@", "above", 0.1)]


def test_the_summary_and_the_cli_warnings_name_the_axis_to_widen():
    df = frame(
        _parabola(1e-1, (1e-3, 3e-3, 1e-2)),
        rows("cosine", 1e-2, "raw", {100: [1.9], 200: [1.9], 400: [1.9]}),
        rows("cosine", 3e-3, "raw", {100: [1.95], 200: [1.95], 400: [1.95]}),
    )
    table = loss_table(df)
    s = [x for x in summary_sentences(table, seed_losses(df)) if x.startswith("grid edge")]
    assert len(s) == 1 and s[0].endswith("widen the peak_lr axis above 0.01.")
    assert "anytime-optimal" in s[0] or "best anytime" in s[0]
    assert "best horizon-aware (cosine lr=0.01 with raw)" in s[0]
    assert {w.candidate for w in grid_warnings(table)} >= {
        "constant lr=0.01 with raw",
        "cosine lr=0.01 with raw",
    }


def test_a_trend_needs_three_interior_optima():
    lrs = (4e-2, 2e-2, 1e-2, 5e-3, 2.5e-3, 1.25e-3)

    def sweep(horizons: tuple[int, ...]) -> pd.DataFrame:
        out = []
        for h in horizons:
            best = 1e-2 * (h / 100) ** -0.5
            for lr in lrs:
                out += rows("cosine", lr, "raw", {h: [2.0 + (math.log(lr) - math.log(best)) ** 2]})
        return frame(out)

    three = sweep((100, 400, 1600))
    t = lr_trend(loss_table(three))
    assert t["n_interior"].iloc[0] == 3 and abs(t["slope"].iloc[0] + 0.5) < 1e-9
    assert any("optimal peak LR vs horizon T: cosine with raw ∝ T^-0.50 (3 horizons)" in s
               for s in summary_sentences(loss_table(three), seed_losses(three)))  # fmt: skip
    # Two horizons, or a third whose optimum is at the grid's edge, are not enough: no slope.
    two = sweep((100, 400))
    assert math.isnan(lr_trend(loss_table(two))["slope"].iloc[0])
    edge = sweep((100, 400, 6400))  # at 6400 the optimum 1.25e-3 is the smallest LR tried
    t = lr_trend(loss_table(edge))
    assert t["n_interior"].iloc[0] == 2 and math.isnan(t["slope"].iloc[0])
    s = summary_sentences(loss_table(edge), seed_losses(edge))
    assert not any("∝ T^" in x for x in s)
    assert any(
        x.startswith("optimal peak LR vs horizon: not estimated") and "the best here has 2" in x
        for x in s
    )
