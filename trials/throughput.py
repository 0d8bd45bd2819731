"""Throughput of a lineage: tokens per second, step time and model FLOPs utilisation (MFU).

Definitions (``docs/gpus.md``):

- **train time** of a branch (or the trunk): the wall time of its updates only — forward,
  backward, gradient all-reduce and optimizer step, timed around each update by
  :class:`StepClock` — never evaluation, averaging, checkpoints or row writes.
- **step time** = train time / updates timed; **tokens/s** = updates x global tokens per
  update / train time (with data-parallel workers, the whole global batch: one update of N
  workers consumes ``tokens_per_step`` tokens).
- **MFU** = ``flops_per_step`` / step time / (peak FLOP/s of one device x devices used), with
  the workload's own FLOPs count (``6 N`` per token for the GPT workloads: the attention term
  is left out, so MFU is a slight underestimate) and the device's dense peak **at the
  precision the lineage runs** (:data:`PEAK_TFLOPS`). Undefined (``None``, shown "n/a") on
  CPU and on GPUs missing from the table: a CPU's peak depends on its vector units, clock and
  cores in use, none of which torch reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["PEAK_TFLOPS", "StepClock", "device_name", "mfu", "peak_flops"]

T = TypeVar("T")

# Dense (no 2:4 sparsity) peak tensor throughput per device, TFLOP/s, by precision: fp32 is the
# plain (non-tensor-core) float32 rate, tf32 and bf16 the tensor-core rates. Keys are matched as
# substrings of torch.cuda.get_device_name(), first match wins (so "H100 PCIe" precedes "H100",
# "A100" precedes "A10", "L40S" precedes "L4"). Sources: NVIDIA data sheets —
#   H100 / H100 NVL: https://www.nvidia.com/en-us/data-center/h100/ (SXM 989 bf16, 494 tf32,
#       67 fp32; PCIe 756 / 378 / 51; NVL 835 / 418 / 60; the sheet lists sparse figures, 2x)
#   H200: https://www.nvidia.com/en-us/data-center/h200/ (SXM: 989 / 494 / 67)
#   A100: https://www.nvidia.com/en-us/data-center/a100/ (312 bf16, 156 tf32, 19.5 fp32)
#   L40S: https://www.nvidia.com/en-us/data-center/l40s/ (362 / 183 / 91.6)
#   L4:   https://www.nvidia.com/en-us/data-center/l4/ (121 / 60 / 30.3)
#   A10:  https://www.nvidia.com/en-us/data-center/products/a10-gpu/ (125 / 62.5 / 31.2)
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    ("H100 NVL", {"bf16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),
    ("H200", {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}),
    ("A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    ("L40S", {"bf16": 362.0, "tf32": 183.0, "fp32": 91.6}),
    ("L4", {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    ("A10", {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2}),
)


def device_name(device: str) -> str:
    """``"cpu"``, or the CUDA device's marketing name (``"NVIDIA H100 80GB HBM3"``)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return dev.type
    return str(torch.cuda.get_device_name(dev.index if dev.index is not None else torch.cuda.current_device()))


def peak_flops(name: str, precision: str) -> float | None:
    """Dense peak FLOP/s of one device named ``name`` at ``precision``; ``None`` when unknown
    (every CPU, and GPUs not in :data:`PEAK_TFLOPS`)."""
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks[precision] * 1e12 if precision in peaks else None
    return None


def mfu(flops_per_step: float, step_time_s: float | None, peak: float | None, devices: int = 1) -> float | None:
    """Model FLOPs utilisation in [0, 1]: ``flops_per_step / step_time_s / (peak * devices)``."""
    if peak is None or not step_time_s or step_time_s <= 0 or devices < 1:
        return None
    return float(flops_per_step) / step_time_s / (peak * devices)


@dataclass
class StepClock:
    """Wall time and count of the updates run, per branch (``"trunk"`` or a cooldown name)."""

    seconds: dict[str, float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], float] = time.perf_counter

    def timed(self, branch: str, update: Callable[..., T], *args: Any) -> T:
        """Run one update of ``branch`` (``update(*args)``) and add its wall time."""
        began = self.clock()
        out = update(*args)
        self.seconds[branch] = self.seconds.get(branch, 0.0) + (self.clock() - began)
        self.steps[branch] = self.steps.get(branch, 0) + 1
        return out

    def of(self, branch: str) -> tuple[int, float]:
        """``(updates, seconds)`` timed for ``branch`` so far."""
        return self.steps.get(branch, 0), self.seconds.get(branch, 0.0)
