"""Evaluation points of schedule-free optimizers without disturbing training.

Schedule-free keeps ``y`` in the parameters and ``z`` in the state; the evaluation point is
``x = (y - (1 - beta) z) / beta`` (docs/equations.md §1.4). ``optimizer.eval()``/``train()`` move
the parameters there and back, but that round trip is not bit-exact (docs/equations.md §1.4), which
would make a run with more evaluations drift from one with fewer. Here ``x`` is computed into
scratch tensors and ``y`` is restored by copy, so evaluating never changes the trajectory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

__all__ = ["is_schedule_free", "schedule_free_x", "swapped_in"]


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    return bool(getattr(optimizer, "schedule_free", False))


def _interpolation(optimizer: torch.optim.Optimizer, group: dict) -> float:
    """The schedule-free interpolation beta of ``group`` (``y = (1 - beta) z + beta x``): the
    optimizer says which of its hyperparameters it is (ScheduleFree+ anneals it)."""
    if hasattr(optimizer, "interpolation"):
        return float(optimizer.interpolation(group))
    if "betas" in group:
        return float(group["betas"][0])
    return float(group["momentum"])


@torch.no_grad()
def schedule_free_x(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``x`` for each of ``params`` (a new tensor; ``y`` itself where no ``z`` exists yet)."""
    beta_of: dict[int, float] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            beta_of[id(p)] = _interpolation(optimizer, group)
    out: list[torch.Tensor] = []
    for p in params:
        state = optimizer.state.get(p, {})
        z = state.get("z")
        if z is None:
            out.append(p.detach().clone())
            continue
        beta = beta_of[id(p)]
        # x = (y - (1 - beta) z) / beta  ==  lerp(y, z, 1 - 1/beta)
        out.append(torch.lerp(p.detach(), z, 1.0 - 1.0 / beta))
    return out


@contextmanager
def swapped_in(params: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> Iterator[None]:
    """Copy ``values`` into ``params`` for the duration; restore the originals bit-exactly."""
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        torch._foreach_copy_(list(params), list(values))
    try:
        yield
    finally:
        with torch.no_grad():
            torch._foreach_copy_(list(params), saved)
