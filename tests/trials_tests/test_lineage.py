"""The lineage loop: resume equals an uninterrupted run, WSD forks equal independent runs,
divergence is recorded, schedule-free and averaged weights are evaluated."""

from __future__ import annotations

import pytest
import torch

from trials.checkpoint import CheckpointStore
from trials.divergence import DivergenceMonitor
from trials.lineage import (
    ReplayMismatch,
    _averagers,
    _build,
    _evaluate,
    _lr,
    _train_step,
    _update_averagers,
    run_lineage,
)
from trials.lineage_plan import AveragerPoint, PlanConfig, TrialSetting, plan_lineages
from trials.sinks import MemorySink
from trials.work import wanted_evals

EMA_SWA = (
    AveragerPoint(kind="ema", params={"half_life": 0.1}, label="ema@0.1"),
    AveragerPoint(kind="ema", params={"half_life": 20}, label="ema@20"),
    AveragerPoint(kind="swa", params={"start": 30, "every": 1}, label="swa@30"),
)


def setting(schedule: str | None = "cosine", params: dict | None = None, horizons=(60,), optimizer="adamw",
            **kw) -> TrialSetting:
    base = dict(workload="char_gpt", workload_params={"size": "nano", "block_size": 32, "eval_batches": 2},
                optimizer=optimizer, optimizer_params={"weight_decay": 0.1} if optimizer == "adamw" else {},
                schedule_free=optimizer.startswith("sf_"), schedule=schedule,
                schedule_params=params if params is not None else ({"final_fraction": 0.1} if schedule else {}),
                peak_lr=3e-3, warmup=5, batch_size=8, seed=3, horizons=tuple(horizons))
    base.update(kw)
    return TrialSetting(**base)


def lineage(*settings: TrialSetting, averagers=EMA_SWA, **config):
    lineages, _ = plan_lineages(list(settings), PlanConfig(averagers=averagers, **config))
    assert len(lineages) == 1
    return lineages[0]


class KillingSink(MemorySink):
    """A sink that 'crashes' (raises) when asked to write its n+1-th segment."""

    def __init__(self, after: int | None = None) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def segment(self, branch, key, rows):
        self.calls += 1
        if self.after is not None and self.calls > self.after:
            raise KeyboardInterrupt("simulated kill")
        super().segment(branch, key, rows)


def rows_of(sink: MemorySink) -> list[tuple]:
    return sorted((r["branch"], r["step"], r["split"], r["weights"], r["loss"], r["lr"]) for r in sink.rows())


@pytest.mark.parametrize("optimizer", ["adamw", "sf_adamw"])
def test_resume_after_kill_equals_uninterrupted(tmp_path, optimizer):
    spec = lineage(setting(None if optimizer.startswith("sf") else "cosine", optimizer=optimizer),
                   checkpoint_every=20, checkpoint_grid=0)
    straight = MemorySink()
    run_lineage(spec, sink=straight)
    ck = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    sink = KillingSink(after=2)
    with pytest.raises(KeyboardInterrupt):
        run_lineage(spec, sink=sink, checkpoints=ck)  # dies writing the third segment
    assert set(sink.segments) == {("trunk", "0000000000-0000000020"), ("trunk", "0000000020-0000000040")}
    assert max(ck.trunk_checkpoints()) == 40  # the last checkpoint before the kill
    sink.after = None
    result = run_lineage(spec, sink=sink, checkpoints=ck, stored=sink.stored(ck))  # rerun: resumes
    assert result.resumed_from == 40 and result.run_steps == 20
    assert rows_of(sink) == rows_of(straight)  # exact: same floats, not approximately


def test_curve_has_every_eval_point_and_weights_once():
    spec = lineage(setting())
    sink = MemorySink()
    result = run_lineage(spec, sink=sink)
    assert result.status == "completed"
    evals = [(r["step"], r["weights"]) for r in sink.rows() if r["split"] == "eval"]
    assert len(evals) == len(set(evals))
    assert spec.eval_steps == (1, 2, 3, 6, 10, 18, 32, 56, 60)  # 4 per decade, plus the horizon
    for step in spec.eval_steps:
        labels = {w for s, w in evals if s == step}
        assert labels == {"raw", "ema@0.1", "ema@20"} | ({"swa@30"} if step > 30 else set()), step
    train = sorted(r["step"] for r in sink.rows() if r["split"] == "train")
    assert train == list(range(60))


def test_schedule_free_reports_x_and_averages_of_x():
    spec = lineage(setting(None, optimizer="sf_adamw"))
    sink = MemorySink()
    run_lineage(spec, sink=sink)
    at_end = {r["weights"]: r["loss"] for r in sink.rows() if r["split"] == "eval" and r["step"] == 60}
    assert {"raw", "x", "ema@0.1", "ema@20", "swa@30"} == set(at_end)
    assert at_end["x"] != at_end["raw"]


def reference_wsd_run(spec, horizon: int, cooldown: float) -> dict[tuple[int, str], float]:
    """An independent WSD run straight to ``horizon``: no trunk, no fork, no checkpoint; the
    multiplier from docs/equations.md §5.5 written out here."""
    c = _build(spec)
    averagers = _averagers(c, spec, [a.key for a in spec.averagers if a.eval_at is None])
    start = max(spec.warmup, horizon - round(cooldown * horizon))
    out = {}
    for t in range(horizon):
        if t < spec.warmup:
            mult = (t + 1) / spec.warmup
        elif t < start:
            mult = 1.0
        else:
            mult = 1.0 - ((t - start) / (horizon - start)) ** 0.5  # 1-sqrt, final fraction 0
        _train_step(c, t, mult)
        _update_averagers(c, averagers, t + 1)
        if t + 1 in spec.eval_steps or t + 1 == horizon:
            labels = ["raw"] + [averagers.weights_label(k) for k in averagers.labels
                                if averagers.is_ready(k, t + 1)]
            for row in _evaluate(c, spec, averagers, "ref", t + 1, 0.0, labels):
                out[(t + 1, row["weights"])] = row["loss"]
    return out


def test_wsd_forks_equal_independent_runs_and_train_fewer_steps():
    horizons = (20, 40, 80)
    wsd = {"cooldown_fraction": 0.25, "cooldown_shape": "1-sqrt", "final_fraction": 0.0}
    spec = lineage(setting("wsd", wsd, horizons), averagers=EMA_SWA[:2])
    sink = MemorySink()
    result = run_lineage(spec, sink=sink)
    by_branch = {b.branch: b for b in result.branches}
    names = {h: f"h={h}/1-sqrt@{s}" for h, s in ((20, 15), (40, 30), (80, 60))}
    assert set(by_branch) == {"trunk", *names.values()}
    assert result.run_steps == 60 + 5 + 10 + 20 < sum(horizons)  # trunk to the last decay start + cooldowns
    rows = {(r["branch"], r["step"], r["weights"]): r["loss"] for r in sink.rows() if r["split"] == "eval"}
    for h in horizons:
        ref = reference_wsd_run(spec, h, 0.25)
        fork = by_branch[names[h]].fork_step
        for (step, weights), loss in ref.items():
            if step in spec.eval_steps or step == h:
                branch = "trunk" if step <= fork else names[h]
                if (branch, step, weights) in rows:
                    assert rows[(branch, step, weights)] == loss, (h, step, weights)
        assert rows[(names[h], h, "raw")] == ref[(h, "raw")]  # bit for bit at the horizon


def test_divergence_is_recorded_not_raised():
    spec = lineage(setting(peak_lr=50.0, optimizer="sgd"), averagers=())
    sink = MemorySink()
    result = run_lineage(spec, sink=sink)
    assert result.status == "diverged"
    trunk = result.branches[-1]
    assert trunk.status == "diverged" and "step" in trunk.error
    losses = [r["loss"] for r in sink.rows() if r["split"] == "train"]
    monitor = DivergenceMonitor(spec.divergence_factor)  # the loop stops at the monitor's first trip
    trips = [monitor.diverged(loss) for loss in losses]
    assert trips.index(True) == len(losses) - 1 and trunk.max_step == len(losses) < 60


# ------------------------------------------------------------------------------------------------
# Extending a trained lineage: the result equals a fresh run of the extended lineage, bit for bit.
LINREG = dict(workload="linreg", workload_params={"dim": 24}, optimizer="sgd", optimizer_params={},
              schedule_free=False, peak_lr=0.05, warmup=2, batch_size=4, seed=1)
WSD = {"cooldown_fraction": 0.2, "cooldown_shape": "1-sqrt", "final_fraction": 0.0}
AVERAGERS = (AveragerPoint(kind="ema", params={"half_life": 0.1}, label="ema@0.1"),
             AveragerPoint(kind="swa", params={"every": 1}, label="swa@0.5", start_fraction=0.5))


def linreg(schedule, params, horizons, **kw) -> TrialSetting:
    return TrialSetting(**{**LINREG, **kw}, schedule=schedule, schedule_params=params, horizons=tuple(horizons))


def keyed(sink: MemorySink) -> dict[tuple, tuple]:
    out = {}
    for r in sink.rows():
        key = (r["branch"], r["step"], r["split"], r["weights"])
        assert key not in out, f"row {key} stored twice"
        out[key] = (r["loss"], r["lr"])
    return out


def extend(tmp_path, before, after, averagers=AVERAGERS, after_averagers=None):
    """Run lineage ``before``, then ``after`` on what it stored; return (work, extended, fresh)."""
    from trials.work import plan_work

    a = lineage(*before, averagers=averagers)
    b = lineage(*after, averagers=after_averagers or averagers)
    assert a.lineage_id == b.lineage_id  # a trunk's id ignores horizons, cooldowns and averagers
    ck = CheckpointStore(tmp_path / "ck", a.lineage_id)
    sink = MemorySink()
    run_lineage(a, sink=sink, checkpoints=ck)
    work = plan_work(b, sink.stored(ck))
    run_lineage(b, sink=sink, checkpoints=ck, stored=sink.stored(ck))
    assert plan_work(b, sink.stored(ck)).empty  # nothing left to do
    fresh = MemorySink()
    run_lineage(b, sink=fresh)
    assert keyed(sink) == keyed(fresh)  # same rows, same floats, none twice
    return work


def test_longer_horizon_continues_the_trunk(tmp_path):
    work = extend(tmp_path, [linreg("constant", {}, (40, 80)), linreg("wsd", WSD, (40, 80))],
                  [linreg("constant", {}, (40, 80, 160)), linreg("wsd", WSD, (40, 80, 160))])
    # continue 80 -> 160 from the checkpoint at 80; the new cooldown 128 -> 160; the SWA window
    # for 160 starts at 80, so nothing is replayed
    assert [(p.start, p.end) for p in work.passes] == [(80, 160)]
    assert work.run_steps == 80 + 32 and work.replay_steps == 0


def test_middle_horizon_replays_from_the_checkpoint_it_needs(tmp_path):
    work = extend(tmp_path, [linreg("constant", {}, (40, 200)), linreg("wsd", WSD, (40, 200))],
                  [linreg("constant", {}, (40, 120, 200)), linreg("wsd", WSD, (40, 120, 200))])
    # kept checkpoints: 32 (grid, fork of 40), 64, 128 (grid), 160 (fork of 200), 200 (end).
    # Horizon 120 needs the trunk at 96 (its fork) and 120 (constant's eval) with its SWA window
    # (updates after 60), so the replay starts at the latest checkpoint <= 60: 32.
    assert [(p.start, p.end) for p in work.passes] == [(32, 120)]
    assert work.run_steps == (120 - 32) + 24 and work.replay_steps == 88


def test_new_cooldown_variant_forks_from_the_nearest_checkpoint(tmp_path):
    linear = {**WSD, "cooldown_shape": "linear", "cooldown_fraction": 0.3}
    work = extend(tmp_path, [linreg("wsd", WSD, (100, 200))],
                  [linreg("wsd", WSD, (100, 200)), linreg("wsd", linear, (100, 200))])
    # new forks at 70 and 140; nearest kept checkpoints 64 and 128 (the swa windows of 100 and
    # 200 start at 50 and 100: held by those checkpoints)
    assert [(p.start, p.end) for p in work.passes] == [(64, 70), (128, 140)]
    assert work.run_steps == 6 + 30 + 12 + 60


def test_added_averager_replays_from_where_it_is_empty(tmp_path):
    lawa = AveragerPoint(kind="lawa", params={"k": 3, "every": 5}, label="lawa@3x5")
    poly = AveragerPoint(kind="poly", params={"q": 1.0}, label="poly@1")
    work = extend(tmp_path, [linreg("constant", {}, (50, 100)), linreg("wsd", WSD, (50, 100))],
                  [linreg("constant", {}, (50, 100)), linreg("wsd", WSD, (50, 100))],
                  after_averagers=(*AVERAGERS, lawa, poly))
    assert work.passes[0].start == 0  # poly averages every iterate from the first
    assert work.run_steps == 100 + 10 + 20 and work.replay_steps == work.run_steps


def test_schedule_free_lineage_extends(tmp_path):
    sf = dict(optimizer="sf_sgd", schedule_free=True, peak_lr=0.5)
    work = extend(tmp_path, [linreg(None, {}, (30, 60), **sf)], [linreg(None, {}, (30, 60, 90), **sf)])
    # the SWA window of 90 takes the updates after 45, inside the trained trunk (frontier 60):
    # continue from the kept checkpoint at 32 (the grid), the last one before 45
    assert [(p.start, p.end, p.emit_from) for p in work.passes] == [(32, 90, 60)]
    assert work.run_steps == 58 and work.replay_steps == 28


def test_a_replay_that_disagrees_with_the_stored_run_stops(tmp_path):
    a = lineage(linreg("wsd", WSD, (100,)), averagers=())
    b = lineage(linreg("wsd", WSD, (100,)), linreg("wsd", {**WSD, "cooldown_fraction": 0.3}, (100,)), averagers=())
    ck = CheckpointStore(tmp_path / "ck", a.lineage_id)
    sink = MemorySink()
    run_lineage(a, sink=sink, checkpoints=ck)
    for rows in sink.segments.values():  # as if another machine had trained the stored trunk
        for r in rows:
            if r["split"] == "train" and r["step"] == 66:
                r["loss"] += 1e-12
    with pytest.raises(ReplayMismatch, match="replayed trunk step 66"):
        run_lineage(b, sink=sink, checkpoints=ck, stored=sink.stored(ck))


def test_forks_the_diverged_trunk_never_reached_are_recorded():
    spec = lineage(linreg("wsd", WSD, (40, 400), peak_lr=3.0), averagers=())
    sink = MemorySink()
    result = run_lineage(spec, sink=sink)
    by = {b.branch: b for b in result.branches}
    assert by["trunk"].status == "diverged" and by["trunk"].max_step < 320
    assert by["h=400/1-sqrt@320"].status == "diverged" and "before the fork at 320" in by["h=400/1-sqrt@320"].error


def test_wanted_evals_match_what_the_averagers_hold():
    """The planner's view (first_update) of when an averager has data agrees with the runtime."""
    points = (*AVERAGERS, AveragerPoint(kind="lawa", params={"k": 2, "every": 4}, label="lawa@2x4"),
              AveragerPoint(kind="swa", params={"start": 7, "every": 3}, label="swa@7/3"),
              AveragerPoint(kind="poly", params={"q": 0.5}, label="poly@0.5"))
    spec = lineage(linreg("constant", {}, (12, 30)), averagers=points, points_per_decade=0, eval_every=1)
    c = _build(spec)
    averagers = _averagers(c, spec, [a.key for a in spec.averagers])
    for t in range(30):
        _train_step(c, t, _lr(c, spec, t, None))
        _update_averagers(c, averagers, t + 1)
        runtime = {"raw"} | {averagers.weights_label(k) for k in averagers.labels
                             if averagers.is_ready(k, t + 1) and (spec.averager(k).eval_at is None
                                                                   or spec.averager(k).eval_at in spec.trunk_horizons)}
        assert {w for w, _ in wanted_evals(spec, "trunk", t + 1)} == runtime, t + 1
    assert torch.isfinite(torch.tensor(c.workload.eval_loss()))


@pytest.mark.parametrize("name", sorted(__import__("trials.optimizers", fromlist=["OPTIMIZERS"]).OPTIMIZERS))
def test_every_registered_optimizer_trains_through_the_lineage_loop(name, tmp_path):
    """The loop's contract with each optimizer: the Muon family gets the model (roles), ScheduleFree+
    gets the loss, schedule-free ones are evaluated at x; a checkpointed resume is bit-exact."""
    from trials.optimizers import is_schedule_free

    sf = is_schedule_free(name)
    params = {"sf_adamw_refined": {"C": 10.0}, "sf_plus": {"lr": 0.1}}.get(name, {})
    s = setting(None if sf else "constant", {} if sf else {}, horizons=(12,), optimizer=name,
                optimizer_params={k: v for k, v in params.items() if k != "lr"},
                peak_lr=params.get("lr", 3e-3 if name not in ("muon", "normuon", "sf_normuon") else 0.02))
    spec = lineage(s, averagers=EMA_SWA[:1], checkpoint_every=6, checkpoint_grid=0, divergence_factor=1e6)
    straight = MemorySink()
    result = run_lineage(spec, sink=straight)
    assert result.status == "completed"
    at_end = {r["weights"] for r in straight.rows() if r["split"] == "eval" and r["step"] == 12}
    assert at_end == ({"raw", "x", "ema@0.1"} if sf else {"raw", "ema@0.1"})
    ck = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    sink = KillingSink(after=1)
    with pytest.raises(KeyboardInterrupt):
        run_lineage(spec, sink=sink, checkpoints=ck)
    sink.after = None
    run_lineage(spec, sink=sink, checkpoints=ck, stored=sink.stored(ck))
    assert rows_of(sink) == rows_of(straight)


def test_an_evaluation_lost_at_a_checkpoint_step_is_recomputed_there(tmp_path):
    """A pass that starts at the kept checkpoint holding the missing evaluation's step (0 steps of
    training) still evaluates there, with the lr of the update before it, as a fresh run does."""
    spec = lineage(linreg("constant", {}, (40, 80)), averagers=AVERAGERS)
    ck = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    sink = MemorySink()
    run_lineage(spec, sink=sink, checkpoints=ck)
    fresh = keyed(sink)
    for key, rows in sink.segments.items():  # lose the evaluations at step 32 (a kept checkpoint)
        sink.segments[key] = [r for r in rows if not (r["split"] == "eval" and r["step"] == 32)]
    from trials.work import plan_work

    work = plan_work(spec, sink.stored(ck))
    assert [(p.start, p.end, sorted(p.evals)) for p in work.passes] == [(32, 32, [32])] and work.run_steps == 0
    run_lineage(spec, sink=sink, checkpoints=ck, stored=sink.stored(ck))
    assert keyed(sink) == fresh
