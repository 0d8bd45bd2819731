"""Throughput of the lineage loop vs a bare hand-written torch loop (issue: trials).

Same process, same model and batch, interleaved rounds: bare loop, lineage with 0 averagers,
lineage with 4 averagers. Times only training steps (no evaluation) in every variant: the
lineage variants are timed between their progress callbacks at steps 1 and N - 1.

    python benchmarks/trial_throughput.py [--size micro] [--steps 30] [--rounds 5] [--smoke]

Prints JSON: tokens/s of each variant (median over rounds), ratios vs the bare loop, and the
averaging overhead as a fraction of a step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from trials.lineage import run_lineage
from trials.lineage_spec import AveragerSpec, LineageSpec
from trials.workloads import build_workload

FOUR = (
    AveragerSpec(kind="ema", params={"half_life": 0.05}, label="ema@0.05"),
    AveragerSpec(kind="ema", params={"half_life": 200}, label="ema@200"),
    AveragerSpec(kind="swa", params={"start": 0}, label="swa@0"),
    AveragerSpec(kind="lawa", params={"k": 4, "every": 5}, label="lawa@4x5"),
)


def bare_loop(size: str, batch: int, steps: int, seed: int) -> float:
    """Seconds per step of the plain loop: zero_grad, forward, backward, AdamW step."""
    workload = build_workload("char_gpt", seed=seed, batch_size=batch, size=size)
    opt = torch.optim.AdamW(workload.model.parameters(), lr=1e-3, weight_decay=0.1, fused=True)
    workload.model.train()
    marks = []
    for t in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = workload.train_loss(t)
        loss.backward()
        opt.step()
        float(loss.detach())
        marks.append(time.perf_counter())
    return (marks[-2] - marks[0]) / (steps - 2)


def lineage_loop(size: str, batch: int, steps: int, seed: int, averagers: tuple) -> float:
    spec = LineageSpec(
        lineage_id="bench",
        workload="char_gpt",
        workload_params={"size": size},
        optimizer="adamw",
        optimizer_params={"weight_decay": 0.1},
        peak_lr=1e-3,
        warmup=0,
        batch_size=batch,
        seed=seed,
        rule="constant",
        rule_params={},
        trunk_end=steps,
        trunk_horizons=(steps,),
        eval_steps=(steps,),
        averagers=averagers,
    )
    marks: dict[int, float] = {}

    def progress(branch: str, step: int, end: int, loss: float) -> None:
        marks[step] = time.perf_counter()

    run_lineage(spec, progress=progress)
    return (marks[steps - 1] - marks[1]) / (steps - 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="micro")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true",
                        help="CI: nano model, batch 4, 8 steps, 2 rounds, 1 thread")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.batch, args.steps, args.rounds, args.threads = "nano", 4, 8, 2, 1
    torch.set_num_threads(args.threads)
    probe = build_workload("char_gpt", seed=0, batch_size=args.batch, size=args.size)
    tokens_per_step = probe.tokens_per_step
    times: dict[str, list[float]] = {
        "bare": [],
        "lineage_0_averagers": [],
        "lineage_4_averagers": [],
    }
    for r in range(args.rounds):
        times["bare"].append(bare_loop(args.size, args.batch, args.steps, r))
        times["lineage_0_averagers"].append(lineage_loop(args.size, args.batch, args.steps, r, ()))
        times["lineage_4_averagers"].append(
            lineage_loop(args.size, args.batch, args.steps, r, FOUR)
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "model": args.size,
        "n_params": probe.n_params,
        "batch": args.batch,
        "tokens_per_step": tokens_per_step,
        "threads": args.threads,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "seconds_per_step": med,
        "tokens_per_s": {k: tokens_per_step / v for k, v in med.items()},
        "ratio_vs_bare": {k: med["bare"] / v for k, v in med.items()},
        "averaging_overhead_fraction_of_step": (
            med["lineage_4_averagers"] - med["lineage_0_averagers"]
        )
        / med["lineage_0_averagers"],
        "target": "lineage_4_averagers ratio_vs_bare >= 0.95",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
