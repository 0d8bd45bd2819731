"""Step time and optimizer-state memory of every registered optimizer vs torch's AdamW (issue 8).

Same process, same model (char-GPT from ``trials.workloads``, default size ``micro``), one torch
thread, the same gradients (one real backward pass, reused): for each optimizer, ``optimizer.step()``
is timed over interleaved rounds (a round steps every optimizer in turn, so machine noise hits
all alike) and the median per-step time is reported, with the bytes of optimizer state per
trainable parameter. The baseline, ``torch.optim.AdamW(fused=True)`` over all parameters, is
measured side by side in the same rounds. One forward + backward is timed too, so the overhead
on a whole training step can be read off (``train_step_ratio``).

    python benchmarks/optimizers.py [--size micro] [--batch 16] [--steps 10] [--rounds 3] [--smoke]

``--smoke`` (CI): the nano model, batch 4, 2 steps, one round; the same JSON keys.

Prints JSON. Newton–Schulz runs in float32 on CPU (the optimizers' CPU default; bfloat16 is
emulated there, docs/platform.md §3).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from typing import Any

import torch

from trials.optimizers import OPTIMIZERS, build_optimizer, is_schedule_free
from trials.workloads import build_workload

BASELINE = "torch.optim.AdamW(fused=True)"
LR = {"sgd": 0.1, "sf_sgd": 0.5, "sf_plus": 1.0, "muon": 0.02, "normuon": 0.02}
HYPER: dict[str, dict[str, Any]] = {"sf_adamw_refined": {"C": 20.0}}


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in ``optimizer.state`` (the parameters themselves not counted)."""
    return sum(
        v.numel() * v.element_size()
        for state in optimizer.state.values()
        for v in state.values()
        if torch.is_tensor(v)
    )


def build_all(model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]:
    """Each optimizer on its own copy of ``model`` (same initial weights)."""
    base = copy.deepcopy(model)
    runs = {
        BASELINE: (
            base,
            torch.optim.AdamW(base.parameters(), lr=1e-3, weight_decay=0.1, fused=True),
        )
    }
    for name in sorted(OPTIMIZERS):
        copy_ = copy.deepcopy(model)
        opt = build_optimizer(name, copy_, lr=LR.get(name, 1e-3), **HYPER.get(name, {}))
        if is_schedule_free(name):
            opt.train()
        runs[name] = (copy_, opt)
    return runs


def one_step(opt: torch.optim.Optimizer, loss: float) -> None:
    if getattr(opt, "needs_loss", False):
        opt.step_func(loss)
    else:
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="micro")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per optimizer per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="CI: nano model, 2 steps, 1 round")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.batch, args.steps, args.rounds = "nano", 4, 2, 1
    torch.set_num_threads(1)
    torch.manual_seed(0)

    workload = build_workload("char_gpt", seed=0, batch_size=args.batch, size=args.size)
    model = workload.model
    n_params = sum(p.numel() for p in model.parameters())
    fwd_bwd = []
    for t in range(3):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = workload.train_loss(t)
        loss.backward()
        fwd_bwd.append(time.perf_counter() - start)
    loss_value = float(loss.detach())
    grads = [p.grad.detach().clone() for p in model.parameters()]

    runs = build_all(model)
    for copy_, opt in runs.values():
        for p, g in zip(copy_.parameters(), grads, strict=True):
            p.grad = g  # the same gradients for everyone (no optimizer here writes p.grad)
        one_step(opt, loss_value)  # one untimed step: lazy state, allocator warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (_, opt) in runs.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                one_step(opt, loss_value)
            times[name].append((time.perf_counter() - start) / args.steps)

    fwd_bwd_s = statistics.median(fwd_bwd)
    base_step = statistics.median(times[BASELINE])
    base_bytes = state_bytes(runs[BASELINE][1])
    rows = {}
    for name, (_, opt) in runs.items():
        step_s = statistics.median(times[name])
        nbytes = state_bytes(opt)
        rows[name] = {
            "step_ms": round(step_s * 1e3, 3),
            "step_ratio": round(step_s / base_step, 2),
            "train_step_ratio": round((fwd_bwd_s + step_s) / (fwd_bwd_s + base_step), 3),
            "state_bytes_per_param": round(nbytes / n_params, 3),
            "state_ratio": round(nbytes / base_bytes, 3),
        }
    print(
        json.dumps(
            {
                "benchmark": "optimizers",
                "baseline": BASELINE,
                "model": {
                    "workload": "char_gpt",
                    "size": args.size,
                    "params": n_params,
                    "batch": args.batch,
                },
                "torch_threads": torch.get_num_threads(),
                "rounds": args.rounds,
                "steps_per_round": args.steps,
                "forward_backward_ms": round(fwd_bwd_s * 1e3, 2),
                "optimizers": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
