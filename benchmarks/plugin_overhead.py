"""What the plugin path costs: the same model trained as the built-in ``char_gpt`` and as a
workload plugin, side by side in one process, one torch thread.

The plugin (``CharGPTPlugin`` below, loaded by its dotted name ``plugin_overhead:CharGPTPlugin``
exactly as a sweep file would name it) wraps the built-in's own class, so the two runs train the
same weights on the same batches: the losses must agree bit for bit, and any difference in time
is the plugin path (loading aside: it happens once) — :class:`trials.workloads.PluginWorkload`'s
call per step into ``batch`` and ``loss``. Rounds alternate built-in and plugin; each lineage
loop is timed between its progress callbacks at steps 1 and N - 1 (training only).

    python benchmarks/plugin_overhead.py [--size nano] [--steps 60] [--rounds 7] [--smoke]

Prints JSON: CPU and wall seconds per step of each (median over rounds), ``plugin_over_builtin``
(the ratio of the plugin's CPU time per step to the built-in's; target <= 1.02), the same ratio
of wall times, and whether the losses were identical.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from trials.catalog import GPT_SIZES, WORKLOADS, WorkloadCard  # noqa: E402
from trials.workloads import CharGPT, CharGPTConfig  # noqa: E402

PLUGIN = "plugin_overhead:CharGPTPlugin"


class CharGPTPlugin:
    """The built-in char GPT behind the public plugin contract (docs/workloads.md)."""

    card = WorkloadCard(name="char_gpt_plugin", summary="char_gpt as a plugin",
                        params=WORKLOADS["char_gpt"].params, size_params=WORKLOADS["char_gpt"].size_params,
                        default_size="micro", named_sizes=GPT_SIZES)

    def __init__(self, params: dict[str, Any], *, seed: int, batch_size: int, device: str = "cpu") -> None:
        self.inner = CharGPT(CharGPTConfig(**params), seed=seed, batch_size=batch_size, device=device)
        self.model = self.inner.model
        self.n_params, self.tokens_per_step = self.inner.n_params, self.inner.tokens_per_step
        self.flops_per_step = self.inner.flops_per_step

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.batch(step)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        _, loss = self.model(*batch)
        return loss

    def eval_loss(self) -> float:
        return self.inner.eval_loss()


def _lineage(workload: str, size: str, block: int, batch: int, steps: int) -> Any:
    from trials.lineage_plan import PlanConfig, TrialSetting, plan_lineages

    setting = TrialSetting(
        workload=workload, workload_params={"size": size, "block_size": block, "eval_batches": 1,
                                            "eval_batch_size": 4},
        optimizer="adamw", optimizer_params={"weight_decay": 0.1}, schedule_free=False, schedule="constant",
        schedule_params={}, peak_lr=1e-3, warmup=0, batch_size=batch, seed=0, horizons=(steps,))
    lineages, _ = plan_lineages([setting], PlanConfig(points_per_decade=0))
    return lineages[0]


def timed(spec: Any) -> tuple[float, float, list[float]]:
    """Wall and CPU seconds per training step (steps 1 .. N-1) and the train losses of one run.

    CPU time (``time.thread_time``: the loop and torch run on this one thread) is what the plugin
    path could add; it is also what stays steady on a machine other processes load, where wall
    time swings by more than the 2% being measured.
    """
    from trials.lineage import run_lineage
    from trials.sinks import MemorySink

    marks: dict[int, tuple[float, float]] = {}
    sink = MemorySink()

    def mark(branch: str, step: int, end: int, loss: float) -> None:
        marks[step] = (time.perf_counter(), time.thread_time())

    run_lineage(spec, sink=sink, progress=mark)
    n = spec.trunk_end
    losses = [r["loss"] for r in sorted(sink.rows(), key=lambda r: r["step"]) if r["split"] == "train"]
    (w0, c0), (w1, c1) = marks[1], marks[n - 1]
    return (w1 - w0) / (n - 2), (c1 - c0) / (n - 2), losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="nano")
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: finishes in seconds")
    args = parser.parse_args()
    if args.smoke:
        args.block, args.batch, args.steps, args.rounds = 16, 4, 8, 1
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # `plugin_overhead` importable by name
    specs = {"builtin": _lineage("char_gpt", args.size, args.block, args.batch, args.steps),
             "plugin": _lineage(PLUGIN, args.size, args.block, args.batch, args.steps)}
    timed(specs["plugin"])  # load the plugin and warm both paths up once, untimed
    timed(specs["builtin"])
    wall: dict[str, list[float]] = {"builtin": [], "plugin": []}
    cpu: dict[str, list[float]] = {"builtin": [], "plugin": []}
    losses: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name in (("builtin", "plugin") if r % 2 == 0 else ("plugin", "builtin")):
            w, c, losses[name] = timed(specs[name])
            wall[name].append(w)
            cpu[name].append(c)
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    wall_med = {k: statistics.median(v) for k, v in wall.items()}
    print(json.dumps({
        "model": args.size, "block_size": args.block, "batch": args.batch, "threads": torch.get_num_threads(),
        "steps_per_round": args.steps, "rounds": args.rounds, "smoke": args.smoke,
        "cpu_seconds_per_step": cpu_med, "wall_seconds_per_step": wall_med,
        "plugin_over_builtin": cpu_med["plugin"] / cpu_med["builtin"],
        "plugin_over_builtin_wall": wall_med["plugin"] / wall_med["builtin"],
        "losses_identical": losses["builtin"] == losses["plugin"],
        "target": "plugin_over_builtin <= 1.02 (CPU time per step)",
    }, indent=2))


if __name__ == "__main__":
    main()
