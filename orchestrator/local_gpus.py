"""Refuse, before Ray starts, a sweep asking for GPUs or CPUs that the embedded local Ray would
not have.

An embedded Ray counts the GPUs CUDA shows this process (``torch.cuda.device_count()``, which
honours ``CUDA_VISIBLE_DEVICES``) and ``os.cpu_count()`` CPUs (``orchestrator/ray_local.py``); a
trial asking for more would wait for resources forever.
On a cluster (``--address`` or ``RAY_ADDRESS``) the nodes' GPUs are the cluster's business and
nothing is checked here.
"""

from __future__ import annotations

import math
import os
from typing import Any

from trials.errors import ConfigError

__all__ = ["check_local_cpus", "check_local_gpus", "local_gpu_count"]


def local_gpu_count() -> int:
    """GPUs an embedded Ray would see on this machine (0 without a CUDA build of torch)."""
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def check_local_gpus(spec: Any, address: str | None) -> None:
    """Raise :class:`ConfigError` when a local run asks for more GPUs per trial than are here."""
    if address or os.environ.get("RAY_ADDRESS"):
        return
    gpu, workers = float(spec.resources.gpu), int(spec.resources.workers)
    if gpu == 0:
        return
    have = local_gpu_count()
    need = math.ceil(gpu * workers - 1e-9)
    if have < need:
        per = f"{gpu:g} per worker x {workers} workers" if workers > 1 else f"{gpu:g} per trial"
        raise ConfigError("resources.gpu", spec.resources.gpu,
                          f"at most what this machine has: {per} needs {need} GPU(s), the local Ray would see "
                          f"{have} (torch.cuda.device_count()); set resources.gpu = 0 or run on a cluster (--address)")


def check_local_cpus(spec: Any, address: str | None) -> None:
    """Raise :class:`ConfigError` when a local run asks for more CPUs per trial than are here."""
    if address or os.environ.get("RAY_ADDRESS"):
        return
    cpu, workers = float(spec.resources.cpu), int(spec.resources.workers)
    have = os.cpu_count() or 1
    if cpu * workers > have + 1e-9:
        per = f"{cpu:g} per worker x {workers} workers" if workers > 1 else f"{cpu:g} per trial"
        raise ConfigError("resources.cpu", spec.resources.cpu,
                          f"at most what this machine has: {per} needs {cpu * workers:g} CPUs, the local Ray has "
                          f"{have} (os.cpu_count()); lower resources.cpu or run on a cluster (--address)")
