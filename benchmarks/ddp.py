"""Data-parallel lineage on CPU: step time of 2 gloo workers vs 1 worker at the same global batch.

Same lineage (char_gpt, AdamW, constant LR, global batch B) run three ways, interleaved over
rounds: 1 worker with 1 torch thread (the baseline), 2 workers with 1 thread each (B/2 rows
per worker, one gradient all-reduce per update; ``trials/data_parallel.py``), and 1 worker
with 2 threads (the same cores spent without processes). Step time is the store's own
measure (``trials/throughput.py``): wall time of the updates alone over the updates timed.

    python benchmarks/ddp.py [--size micro] [--batch 32] [--steps 40] [--rounds 2] [--smoke]

Prints JSON: median step time of each variant, ratios against the 1-worker baseline (ideal
for 2 workers: 0.5) and the largest train-loss gap between 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from trials.lineage import run_lineage
from trials.lineage_plan import PlanConfig, TrialSetting, plan_lineages
from trials.sinks import MemorySink


def spec(size: str, batch: int, steps: int, workers: int):
    setting = TrialSetting(workload="char_gpt", workload_params={"size": size, "eval_batches": 1}, optimizer="adamw",
                           optimizer_params={"weight_decay": 0.1}, schedule_free=False, schedule="constant",
                           schedule_params={}, peak_lr=1e-3, warmup=0, batch_size=batch, seed=0, horizons=(steps,))
    (lineage,), _ = plan_lineages([setting], PlanConfig(points_per_decade=0, workers=workers))
    return lineage


def run(size: str, batch: int, steps: int, workers: int, threads: int) -> tuple[float, dict[int, float]]:
    """(seconds per update, train loss by step) of one run."""
    torch.set_num_threads(threads)  # rank 0; the other ranks inherit this count
    sink = MemorySink()
    run_lineage(spec(size, batch, steps, workers), sink=sink)
    trunk = sink.results["trunk"]
    losses = {r["step"]: r["loss"] for r in sink.rows() if r["split"] == "train"}
    return trunk["train_time_s"] / trunk["timed_steps"], losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="micro")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: nano, batch 8, 6 steps, 1 round")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.batch, args.steps, args.rounds = "nano", 8, 6, 1
    torch.manual_seed(0)
    times: dict[str, list[float]] = {"one_worker": [], "two_workers": [], "one_worker_two_threads": []}
    gap = 0.0
    for _ in range(args.rounds):
        t1, l1 = run(args.size, args.batch, args.steps, workers=1, threads=1)
        t2, l2 = run(args.size, args.batch, args.steps, workers=2, threads=1)
        t12, _ = run(args.size, args.batch, args.steps, workers=1, threads=2)
        times["one_worker"].append(t1)
        times["two_workers"].append(t2)
        times["one_worker_two_threads"].append(t12)
        gap = max(gap, max(abs(l1[k] - l2[k]) for k in l1))
    step = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "size": args.size, "global_batch": args.batch, "steps": args.steps, "rounds": args.rounds,
        "step_time_s": step,
        "ratio_two_workers_vs_one_worker": step["two_workers"] / step["one_worker"],
        "ratio_one_worker_two_threads_vs_one_worker": step["one_worker_two_threads"] / step["one_worker"],
        "max_abs_train_loss_gap_one_vs_two_workers": gap,
    }, indent=2))


if __name__ == "__main__":
    main()
