"""Throughput of the ``llama`` workload in the lineage loop vs a bare PyTorch loop (issue 16).

Same process, one torch thread, the same model (built by the workload from the same seed), the
same optimizer (``build_optimizer("adamw", ...)``, what the lineage builds) and the same batches
(``workload.batch(step)``) on token shards written here (random ids, vocabulary 2,048, read by
memmap as a prepared corpus would be). Rounds interleave bare and lineage runs; each times only
training steps: the bare loop between its steps 1 and N - 1, the lineage between its progress
callbacks at steps 1 and N - 1 (no evaluation inside that window).

    python benchmarks/llama_throughput.py [--sizes nano micro] [--steps 40] [--rounds 5] [--smoke]

Prints JSON: per size, seconds per step (median over rounds, and each round's) and tokens/s of
both loops and ``ratio`` = lineage tokens/s / bare tokens/s (target >= 0.97). On a loaded
machine the rounds scatter: read the per-round times before the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trials.lineage import run_lineage
from trials.lineage_spec import LineageSpec
from trials.optimizers import build_optimizer
from trials.workloads import build_workload, write_shard

VOCAB = 2048
HYPER = {"weight_decay": 0.1, "betas": (0.9, 0.95)}
LR = 1e-3


def write_corpus(root: Path) -> str:
    rng = np.random.default_rng(0)
    write_shard(root / "train_000000.bin", rng.integers(0, VOCAB, size=400_000))
    write_shard(root / "val_000000.bin", rng.integers(0, VOCAB, size=40_000))
    return str(root)


def params(size: str, corpus: str) -> dict:
    return {"size": size, "corpus": corpus, "vocab_size": VOCAB, "eval_batches": 1, "eval_batch_size": 4}


def bare_loop(size: str, corpus: str, batch: int, steps: int, seed: int) -> float:
    """Seconds per step of zero_grad, forward, backward, AdamW step on the workload's batches."""
    torch.manual_seed(seed)
    w = build_workload("llama", seed=seed, batch_size=batch, **params(size, corpus))
    model = w.model
    opt = build_optimizer("adamw", model, lr=LR, **HYPER)
    model.train()
    marks = []
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = LR
        opt.zero_grad(set_to_none=True)
        x, y = w.batch(t)
        _, loss = model(x, y)
        loss.backward()
        float(loss.detach())
        opt.step()
        marks.append(time.perf_counter())
    return (marks[-2] - marks[0]) / (steps - 2)


def lineage_loop(size: str, corpus: str, batch: int, steps: int, seed: int) -> float:
    spec = LineageSpec(
        lineage_id="bench", workload="llama", workload_params=params(size, corpus), optimizer="adamw",
        optimizer_params=dict(HYPER), peak_lr=LR, warmup=0, batch_size=batch, seed=seed, rule="constant",
        rule_params={}, trunk_end=steps, trunk_horizons=(steps,), eval_steps=(steps,),
    )
    marks: dict[int, float] = {}

    def progress(branch: str, step: int, end: int, loss: float) -> None:
        marks[step] = time.perf_counter()

    run_lineage(spec, progress=progress)
    return (marks[steps - 1] - marks[1]) / (steps - 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["nano", "micro"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny run (< 20 s), the same JSON keys")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.rounds, args.batch = 6, 1, 4
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    out: dict = {"workload": "llama", "threads": 1, "batch": args.batch, "steps_per_round": args.steps,
                 "rounds": args.rounds, "vocab_size": VOCAB, "sizes": {}, "target": "ratio >= 0.97 for every size"}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp))
        for size in args.sizes:
            probe = build_workload("llama", seed=0, batch_size=args.batch, **params(size, corpus))
            times: dict[str, list[float]] = {"bare": [], "lineage": []}
            for r in range(args.rounds):
                times["bare"].append(bare_loop(size, corpus, args.batch, args.steps, r))
                times["lineage"].append(lineage_loop(size, corpus, args.batch, args.steps, r))
            med = {k: statistics.median(v) for k, v in times.items()}
            tps = {k: probe.tokens_per_step / v for k, v in med.items()}
            out["sizes"][size] = {
                "n_params": probe.n_params, "tokens_per_step": probe.tokens_per_step,
                "seconds_per_step": med, "seconds_per_step_by_round": times, "tokens_per_s": tps,
                "ratio": tps["lineage"] / tps["bare"],
            }
    out["min_ratio"] = min(s["ratio"] for s in out["sizes"].values())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
