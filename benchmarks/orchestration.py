"""Sweep efficiency on local Ray (issue: orchestrator), against isolated lineage compute.

A sweep of ~50 short linreg lineages (1-3 s each) run three ways, on one Ray instance started
once (its start-up is reported separately):
  * ``lrsweep``: ``run_sweep`` (Tune, actor reuse, curves to the Parquet store);
  * plain Ray Tune running the same lineage function with ``reuse_actors=True``;
  * the same with ``reuse_actors=False`` (a new worker process per trial).

The baseline is **isolated lineage compute, measured in the same run**: every lineage's
training body (``trials.lineage.run_lineage`` into memory, one torch thread) is timed alone,
sequentially, in this process, after one untimed warm-up lineage. Efficiency of a way =
isolated compute / (wall time x cores): a trial's own start-up (worker process, imports,
reading what the store holds, writing fragments) is overhead, not compute. What each trial
times itself (``in_trial_train_s``) is reported beside it, with its ratio to isolated compute.

    python benchmarks/orchestration.py [--steps 20000] [--seeds 8] [--skip-no-reuse] [--smoke]

``--smoke``: 6 lineages of 200/400 steps (2 of them without reuse; CI runs it), the same JSON
keys.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orchestrator.ray_local  # noqa: F401  (loopback)

SPEC = """
name = "bench"
store = "{store}"
warmup = 0
batch_size = 4
seeds = {seeds}
[workload]
name = "linreg"
sizes = [{{ dim = 200 }}]
[[optimizers]]
name = "sgd"
lr = [0.05, 0.1, 0.2]
[[schedules]]
name = "cosine"
[horizons]
steps = {horizons}
[[averagers]]
kind = "ema"
half_life = 0.1
[eval]
points_per_decade = 4
[resources]
cpu = 1
retries = 0
"""

METHOD = (
    "efficiency = isolated lineage compute / (wall x cores); isolated compute = sum over lineages "
    "of run_lineage (memory sink, 1 torch thread) timed alone, sequentially, in the benchmark "
    "process after one untimed warm-up lineage, in the same run; trial start-up and store I/O "
    "count as overhead"
)


def plain_trainable(config: dict) -> None:
    import time as _time

    import torch
    from ray import tune

    from trials.lineage import run_lineage
    from trials.lineage_spec import LineageSpec

    torch.set_num_threads(1)
    began = _time.perf_counter()
    run_lineage(LineageSpec.from_dict(config["lineage"]))
    tune.report({"train_time_s": _time.perf_counter() - began})


def isolated_compute(lineages: list) -> dict[str, Any]:
    """Seconds of each lineage's training body alone, sequentially, in this process."""
    import torch

    from trials.lineage import run_lineage

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_lineage(lineages[0])  # untimed warm-up: imports, allocator, caches
        times = []
        for spec in lineages:
            began = time.perf_counter()
            run_lineage(spec)
            times.append(time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)
    return {"total_s": sum(times), "mean_s": sum(times) / len(times), "min_s": min(times),
            "max_s": max(times), "per_lineage_s": times}


def figures(wall: float, in_trial: float, isolated: float, n: int, cores: int) -> dict[str, float]:
    """Efficiency and overhead of one way of running the sweep, against isolated compute."""
    return {
        "wall_s": wall,
        "efficiency": isolated / (wall * cores),
        "overhead_per_lineage_s": (wall * cores - isolated) / n,
        "in_trial_train_s": in_trial,
        "in_trial_over_isolated": in_trial / isolated,
    }


def plain_tune(lineages: list, reuse: bool, cores: int, isolated: float) -> dict[str, float]:
    from ray import tune

    began = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(plain_trainable, {"cpu": 1}),
        param_space={"lineage": tune.grid_search([spec.to_dict() for spec in lineages])},
        tune_config=tune.TuneConfig(reuse_actors=reuse),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="bench-tune-"), verbose=0),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - began
    errors = [r.error for r in grid if r.error is not None]
    if errors:  # a broken trial must fail the benchmark, not read as a low efficiency
        raise SystemExit(f"plain Tune: {len(errors)} of {len(lineages)} trials failed: {errors[0]!r}")
    train = sum(r.metrics.get("train_time_s", 0.0) for r in grid)
    return figures(wall, train, isolated, len(lineages), cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=20000,
        help="longest horizon (steps); 20000 gives ~2 s lineages here",
    )
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--skip-no-reuse", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="6 lineages of 400 steps (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.seeds = 400, 1
    from orchestrator.execution import run_sweep
    from orchestrator.planner import plan
    from orchestrator.ray_local import init_ray
    from orchestrator.spec import load_spec

    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    horizons = [args.steps // 2, args.steps]
    spec_path = tmp / "bench.toml"
    spec_path.write_text(
        SPEC.format(store=tmp / "store", seeds=list(range(args.seeds)), horizons=horizons)
    )
    lineages = plan(load_spec(spec_path)).lineages
    isolated = isolated_compute(lineages)
    t0 = time.perf_counter()
    init_ray()
    ray_start = time.perf_counter() - t0
    began = time.perf_counter()
    outcome = run_sweep(spec_path, progress=False)
    wall = time.perf_counter() - began
    if outcome.ran != len(lineages):
        raise SystemExit(f"lrsweep ran {outcome.ran} of {len(lineages)} lineages")
    out: dict[str, Any] = {
        "method": METHOD,
        "lineages": len(lineages),
        "steps": horizons,
        "cores": cores,
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "ray_init_s": ray_start,
        "isolated_compute": isolated,
        "mean_lineage_isolated_s": isolated["mean_s"],
        "lrsweep": figures(wall, outcome.train_time_s, isolated["total_s"], len(lineages), cores),
        "plain_tune_reuse": plain_tune(lineages, True, cores, isolated["total_s"]),
    }
    if not args.skip_no_reuse:  # --smoke: its first 2 lineages (a worker process each)
        some = 2 if args.smoke else len(lineages)
        out["plain_tune_no_reuse"] = plain_tune(lineages[:some], False, cores,
                                                sum(isolated["per_lineage_s"][:some]))
        out["plain_tune_no_reuse"]["lineages"] = some
    out["lrsweep_over_plain_tune_reuse"] = (
        out["lrsweep"]["efficiency"] / out["plain_tune_reuse"]["efficiency"]
    )
    out["target"] = "lrsweep efficiency >= 0.90"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
