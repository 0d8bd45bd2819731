"""Many tiny lineages (issue 24): lrsweep's per-lineage overhead vs a process pool's.

A sweep of N tiny linreg lineages (a few hundred SGD steps each, a cosine trunk) is run, in one
invocation, side by side:

  * ``lrsweep``: ``run_sweep`` on a local Ray (2 CPUs, 2 concurrent trials, small lineages
    bundled per trial by ``orchestrator/bundles.py``), rows to the Parquet store, compaction
    at the end — everything ``lrsweep run`` does. Ray's own start-up is timed separately.
  * ``pool``: ``concurrent.futures.ProcessPoolExecutor(2)`` running ``trials.lineage.run_lineage``
    (rows kept in memory) on the same lineages.
  * ``pool_store``: the same pool running lrsweep's trial body
    (``orchestrator.trainable.run_lineage_to_store``: rows to a Parquet store, checkpoints), so
    the difference to ``lrsweep`` is the orchestration alone (Ray Tune, bundles, planning).
  * ``--unbundled`` adds ``lrsweep`` with bundling off (one Tune trial per lineage).

Method: *isolated compute* = the mean time of ``run_lineage`` (memory sink, one thread) over a
sample of the lineages, run one after another in this process in the same invocation (all of
them when N <= --sample), times N. Per-lineage overhead of a runner = (wall - isolated compute /
2 workers) / N, in seconds of wall time per lineage; ratio = lrsweep's / the pool's.

    python benchmarks/many_lineages.py [--smoke] [--lineages 10000] [--steps 400] [--unbundled]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import orchestrator.ray_local  # noqa: E402,F401  (loopback)

SPEC = """
name = "many"
store = "{store}"
warmup = 0
batch_size = 4
seeds = {seeds}
[workload]
name = "linreg"
sizes = [{{ dim = 100 }}]
[[optimizers]]
name = "sgd"
lr = {lrs}
[[schedules]]
name = "cosine"
[horizons]
steps = [{steps}]
[eval]
points_per_decade = 2
[resources]
cpu = 1
concurrency = 2
retries = 1
"""

WORKERS = 2


def _pool_lineage(spec_dict: dict) -> float:
    import torch

    from trials.lineage import run_lineage
    from trials.lineage_spec import LineageSpec
    from trials.sinks import MemorySink

    torch.set_num_threads(1)
    began = time.perf_counter()
    run_lineage(LineageSpec.from_dict(spec_dict), sink=MemorySink())
    return time.perf_counter() - began


def _pool_store_lineage(args: tuple[dict, str, str]) -> float:
    import torch

    from orchestrator.trainable import run_lineage_to_store

    torch.set_num_threads(1)
    spec_dict, root, size = args
    began = time.perf_counter()
    run_lineage_to_store(spec_dict, store_root=root, sweep_id="many", model_size=size)
    return time.perf_counter() - began


def write_spec(folder: Path, n: int, steps: int) -> Path:
    lrs = [round(0.01 + 0.002 * i, 4) for i in range(10)]
    seeds = list(range((n + len(lrs) - 1) // len(lrs)))
    path = folder / "many.toml"
    path.write_text(SPEC.format(store=folder / "store", seeds=seeds, lrs=lrs, steps=steps))
    return path


def isolated_compute(lineages: list, sample: int) -> dict:
    step = max(1, len(lineages) // sample)
    chosen = lineages[::step][:sample]
    _pool_lineage(chosen[0].to_dict())  # warm-up: first-call costs are not compute
    times = [_pool_lineage(lin.to_dict()) for lin in chosen]
    mean = sum(times) / len(times)
    return {"sampled": len(times), "mean_lineage_s": mean, "total_s": mean * len(lineages)}


def overhead(wall: float, compute_total: float, n: int) -> float:
    return (wall - compute_total / WORKERS) / n


def run_lrsweep(folder: Path, n: int, steps: int, bundled: bool) -> dict:
    import shutil

    from orchestrator import bundles
    from orchestrator.execution import run_sweep

    spec_path = write_spec(folder, n, steps)
    shutil.rmtree(folder / "store", ignore_errors=True)
    saved = bundles.SMALL_S
    if not bundled:
        bundles.SMALL_S = 0.0  # nothing counts as small: one trial per lineage
    try:
        began = time.perf_counter()
        outcome = run_sweep(spec_path, progress=False, max_concurrent=WORKERS)
        wall = time.perf_counter() - began
    finally:
        bundles.SMALL_S = saved
    done = sum(1 for k, v in outcome.statuses.items() if ":" not in k and v == "completed")
    return {"wall_s": wall, "completed": done, "in_trial_train_s": outcome.train_time_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="~50 lineages of 40 steps")
    parser.add_argument("--lineages", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=400, help="SGD steps per lineage (~0.3 s unloaded)")
    parser.add_argument("--sample", type=int, default=200, help="lineages timed alone for isolated compute")
    parser.add_argument("--unbundled", action="store_true", help="also run lrsweep with one trial per lineage")
    args = parser.parse_args()
    n, steps = (50, 40) if args.smoke else (args.lineages, args.steps)
    import torch

    torch.set_num_threads(1)
    from orchestrator.bundles import make_bundles
    from orchestrator.planner import plan
    from orchestrator.ray_local import init_ray
    from orchestrator.spec import load_spec

    with tempfile.TemporaryDirectory(prefix="many-lineages-") as tmp_name:
        folder = Path(tmp_name)
        the_plan = plan(load_spec(write_spec(folder, n, steps)))
        lineages = the_plan.lineages[:n]
        n = len(the_plan.lineages)
        trials = len(make_bundles(the_plan.todo(), the_plan, WORKERS))
        compute = isolated_compute(lineages, min(args.sample, n))
        began = time.perf_counter()
        init_ray(num_cpus=WORKERS)
        ray_start = time.perf_counter() - began
        runs = {"lrsweep": run_lrsweep(folder, n, steps, bundled=True)}
        if args.unbundled:
            runs["lrsweep_unbundled"] = run_lrsweep(folder, n, steps, bundled=False)
        began = time.perf_counter()
        with ProcessPoolExecutor(WORKERS) as pool:
            pool_times = list(pool.map(_pool_lineage, [lin.to_dict() for lin in the_plan.lineages]))
        runs["pool"] = {"wall_s": time.perf_counter() - began, "completed": len(pool_times),
                        "in_worker_train_s": sum(pool_times)}
        from orchestrator.store import ResultsStore

        root = str(folder / "pool-store")
        began = time.perf_counter()
        ResultsStore(root).write_sweep("many", name="many", spec_text="", plan_json={}, code_version="bench")
        jobs = [(lin.to_dict(), root, the_plan.compute_of(lin.lineage_id).size) for lin in the_plan.lineages]
        with ProcessPoolExecutor(WORKERS) as pool:
            pool_times = list(pool.map(_pool_store_lineage, jobs))
        ResultsStore(root).compact("many")
        runs["pool_store"] = {"wall_s": time.perf_counter() - began, "completed": len(pool_times),
                              "in_worker_train_s": sum(pool_times)}
    for r in runs.values():
        r["overhead_per_lineage_s"] = overhead(r["wall_s"], compute["total_s"], n)
    pool_over = runs["pool"]["overhead_per_lineage_s"]
    out = {
        "benchmark": "many_lineages", "smoke": args.smoke, "lineages": n, "steps": steps, "workers": WORKERS,
        "lrsweep_trials": trials, "ray_start_s": ray_start, "isolated_compute": compute, "runs": runs,
        "overhead_ratio_lrsweep_vs_pool": runs["lrsweep"]["overhead_per_lineage_s"] / pool_over if pool_over > 0 else None,
        "overhead_ratio_lrsweep_vs_pool_store": (runs["lrsweep"]["overhead_per_lineage_s"]
                                                 / runs["pool_store"]["overhead_per_lineage_s"]),
        "method": ("isolated compute = mean run_lineage time (memory sink, 1 thread) of a sample of the lineages run "
                   "one after another in this process, in this invocation, x N; overhead per lineage = (wall - "
                   "isolated compute / 2 workers) / N; lrsweep's wall excludes Ray's start-up (ray_start_s) and "
                   "includes planning, the store's writes and the final compaction; runs are sequential on a "
                   "shared machine, so other load shows in every figure"),
    }
    if args.unbundled and pool_over > 0:
        out["overhead_ratio_unbundled_vs_pool"] = runs["lrsweep_unbundled"]["overhead_per_lineage_s"] / pool_over
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
