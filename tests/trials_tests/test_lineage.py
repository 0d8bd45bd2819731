"""The lineage loop: resume equals an uninterrupted run, WSD forks equal independent runs,
divergence is recorded, schedule-free and averaged weights are evaluated."""

from __future__ import annotations

import pytest
import torch

from trials.checkpoint import FileCheckpointer
from trials.divergence import DivergenceMonitor
from trials.lineage import _build, _evaluate, _lr_multiplier, _set_lr, _train_step, _update_averagers, run_lineage
from trials.branches import BranchPlan
from trials.lineage_spec import AveragerSpec, LineageSpec

AVERAGERS = (
    AveragerSpec(kind="ema", params={"half_life": 0.1}, label="ema@0.1"),
    AveragerSpec(kind="ema", params={"half_life": 20}, label="ema@20"),
    AveragerSpec(kind="swa", params={"start": 30}, label="swa@30"),
)


def gpt_spec(**overrides) -> LineageSpec:
    base = dict(
        lineage_id="L", setting_id="S", workload="char_gpt",
        workload_params={"size": "nano", "block_size": 32, "eval_batches": 2},
        optimizer="adamw", optimizer_params={"weight_decay": 0.1}, peak_lr=3e-3,
        schedule="cosine", schedule_params={"final_fraction": 0.1}, warmup=5, batch_size=8, seed=3,
        horizons=(60,), eval_steps=(0, 10, 25, 40, 60), averagers=AVERAGERS, checkpoint_every=20,
    )
    base.update(overrides)
    return LineageSpec(**base)


def collect(spec, checkpointer=None, stop_after_segments=None, segments=None):
    """Run ``spec``; segments keyed like the store (rewrites overwrite); optionally 'crash'."""
    segments = {} if segments is None else segments
    calls = [0]

    def report(segment):
        calls[0] += 1
        if stop_after_segments is not None and calls[0] > stop_after_segments:
            raise KeyboardInterrupt("simulated kill")
        segments[(segment.branch, segment.key)] = list(segment.rows)

    result = run_lineage(spec, report=report, checkpointer=checkpointer)
    return result, segments


def rows_of(segments):
    return sorted(
        ((r["branch"], r["step"], r["split"], r["weights"], r["loss"], r["lr"]) for rows in segments.values() for r in rows)
    )


@pytest.mark.parametrize("optimizer", ["adamw", "sf_adamw"])
def test_resume_after_kill_equals_uninterrupted(tmp_path, optimizer):
    spec = gpt_spec(optimizer=optimizer, optimizer_params={},
                    schedule=None if optimizer.startswith("sf") else "cosine",
                    schedule_params={} if optimizer.startswith("sf") else {"final_fraction": 0.1})
    _, straight = collect(spec)
    ck = FileCheckpointer(tmp_path / "ck")
    store: dict = {}
    with pytest.raises(KeyboardInterrupt):
        collect(spec, ck, stop_after_segments=2, segments=store)  # dies reporting the third segment
    assert set(store) == {("main", "0000000000-0000000020"), ("main", "0000000020-0000000040")}
    assert ck.load()["trunk"]["step"] == 40  # the last checkpoint before the kill
    result, _ = collect(spec, ck, segments=store)  # rerun: resumes, regenerates under the same keys
    assert result.resumed_from == 40
    assert rows_of(store) == rows_of(straight)  # exact: same floats, not approximately


def test_curve_has_every_eval_point_and_weights_once():
    spec = gpt_spec()
    result, segments = collect(spec)
    assert result.status == "completed"
    evals = [(r["step"], r["weights"]) for rows in segments.values() for r in rows if r["split"] == "eval"]
    assert len(evals) == len(set(evals))
    for step in spec.eval_steps:
        labels = {w for s, w in evals if s == step}
        expected = {"raw"} if step == 0 else {"raw", "ema@0.1", "ema@20"} | ({"swa@30"} if step > 30 else set())
        assert labels == expected, step
    train = sorted(r["step"] for rows in segments.values() for r in rows if r["split"] == "train")
    assert train == list(range(60))


def test_schedule_free_reports_x_and_averages_of_x():
    spec = gpt_spec(optimizer="sf_adamw", optimizer_params={}, schedule=None, schedule_params={}, peak_lr=3e-3)
    _, segments = collect(spec)
    at_end = {r["weights"]: r["loss"] for rows in segments.values() for r in rows if r["split"] == "eval" and r["step"] == 60}
    assert {"raw", "x", "ema@0.1", "ema@20", "swa@30"} == set(at_end)
    assert at_end["x"] != at_end["raw"]


def reference_wsd_run(spec: LineageSpec, horizon: int) -> dict[tuple[int, str], float]:
    """An independent WSD run straight to ``horizon``: no trunk, no fork, no checkpoint."""
    c = _build(spec)
    plan = BranchPlan(name="ref", parent=None, start=0, end=horizon, schedule_horizon=horizon,
                      horizons=(horizon,), eval_steps=tuple(e for e in spec.eval_steps if e <= horizon))
    out = {}
    for row in _evaluate(c, spec, plan, 0, 0.0) if 0 in plan.eval_steps else []:
        out[(0, row["weights"])] = row["loss"]
    for t in range(horizon):
        mult = _lr_multiplier(c, spec, t, horizon)
        _set_lr(c, mult)
        _train_step(c, t)
        _update_averagers(c, t + 1)
        if t + 1 in plan.eval_steps:
            for row in _evaluate(c, spec, plan, t + 1, 0.0):
                out[(t + 1, row["weights"])] = row["loss"]
    return out


def test_wsd_forks_equal_independent_runs_and_train_fewer_steps():
    horizons = (20, 40, 80)
    spec = gpt_spec(schedule="wsd", schedule_params={"cooldown_fraction": 0.25, "cooldown_shape": "1-sqrt"},
                    horizons=horizons, eval_steps=(10, 20, 30, 40, 50, 60, 70, 80), checkpoint_every=0,
                    averagers=AVERAGERS[:2])
    result, segments = collect(spec)
    by_branch = {b.branch: b for b in result.branches}
    assert set(by_branch) == {"trunk", "h=20", "h=40", "h=80"}
    assert [by_branch[f"h={h}"].fork_step for h in horizons] == [15, 30, 60]
    trained = sum(b.steps_trained for b in result.branches)
    assert trained == 60 + 5 + 10 + 20 < sum(horizons)  # trunk to the last decay start + cooldowns
    rows = {(r["branch"], r["step"], r["weights"]): r["loss"]
            for rs in segments.values() for r in rs if r["split"] == "eval"}
    for h in horizons:
        ref = reference_wsd_run(spec, h)
        start = by_branch[f"h={h}"].fork_step
        for (step, weights), loss in ref.items():
            branch = "trunk" if step <= start else f"h={h}"
            assert rows[(branch, step, weights)] == loss, (h, step, weights)


def test_divergence_is_recorded_not_raised():
    spec = gpt_spec(peak_lr=50.0, optimizer="sgd", optimizer_params={}, averagers=())
    result, segments = collect(spec)
    assert result.status == "diverged"
    assert result.branches[0].status == "diverged"
    assert "step" in result.branches[0].error
    losses = [r["loss"] for rows in segments.values() for r in rows if r["split"] == "train"]
    monitor = DivergenceMonitor(spec.divergence_factor)  # the rule, tested in test_divergence.py
    assert [monitor.diverged(loss) for loss in losses] == [False] * (len(losses) - 1) + [True]
    assert result.branches[0].steps_trained == len(losses) < 60
