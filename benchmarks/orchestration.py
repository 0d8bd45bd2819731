"""Sweep efficiency on local Ray (issue: orchestrator).

A sweep of ~50 short linreg lineages (1-3 s each) run three ways, on one Ray instance started
once (its start-up is reported separately):
  * ``lrsweep``: ``run_sweep`` (Tune, actor reuse, curves to the Parquet store);
  * plain Ray Tune running the same lineage function with ``reuse_actors=True``;
  * the same with ``reuse_actors=False`` (a new worker process per trial).
Efficiency = sum of in-trial lineage training time / (wall time x cores).

    python benchmarks/orchestration.py [--steps 20000] [--seeds 8] [--skip-no-reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

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


def plain_trainable(config: dict) -> None:
    import time as _time

    import torch
    from ray import tune

    from trials.lineage import run_lineage
    from trials.lineage_spec import LineageSpec

    torch.set_num_threads(1)
    began = _time.perf_counter()
    run_lineage(LineageSpec.from_dict(config["lineage"]), report=lambda segment: None)
    tune.report({"train_time_s": _time.perf_counter() - began})


def plain_tune(lineages: list, reuse: bool, cores: int) -> dict:
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
    train = sum(r.metrics.get("train_time_s", 0.0) for r in grid)
    return {
        "wall_s": wall,
        "train_s": train,
        "efficiency": train / (wall * cores),
        "overhead_per_lineage_s": (wall * cores - train) / len(lineages),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--steps",
        type=int,
        default=20000,
        help="longest horizon (steps); 20000 gives ~2 s lineages here",
    )
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--skip-no-reuse", action="store_true")
    args = parser.parse_args()
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
    t0 = time.perf_counter()
    init_ray()
    ray_start = time.perf_counter() - t0
    began = time.perf_counter()
    outcome = run_sweep(spec_path, progress=False)
    wall = time.perf_counter() - began
    ours = {
        "wall_s": wall,
        "train_s": outcome.train_time_s,
        "efficiency": outcome.train_time_s / (wall * cores),
        "overhead_per_lineage_s": (wall * cores - outcome.train_time_s) / len(lineages),
    }
    out = {
        "lineages": len(lineages),
        "cores": cores,
        "ray_init_s": ray_start,
        "mean_lineage_train_s": outcome.train_time_s / len(lineages),
        "lrsweep": ours,
        "plain_tune_reuse": plain_tune(lineages, True, cores),
    }
    if not args.skip_no_reuse:
        out["plain_tune_no_reuse"] = plain_tune(lineages, False, cores)
    out["target"] = "lrsweep efficiency >= 0.90"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
