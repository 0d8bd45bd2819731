"""Schedule-Free SGD (Defazio et al. 2024; docs/equations.md §1.5).

The base direction is the gradient plus weight decay evaluated at ``y``: ``u = g + lambda y``.
``momentum`` is the schedule-free interpolation ``y = (1 - momentum) z + momentum x``. Agrees with
``schedulefree.SGDScheduleFree`` 1.4.1 to float32 rounding; ``p.grad`` is never modified.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trials.optimizers._schedule_free import ScheduleFreeOptimizer, _is_real

__all__ = ["ScheduleFreeSGD"]


class ScheduleFreeSGD(ScheduleFreeOptimizer):
    """Schedule-Free SGD; call ``train()`` before stepping and ``eval()`` before evaluating.

    Args:
        params: parameters or param-group dicts.
        lr: peak learning rate (the README advises 10–50x a scheduled SGD's).
        momentum: the interpolation ``beta``, in (0, 1) (``eval()`` divides by it).
        weight_decay: ``lambda``, evaluated at ``y``.
        warmup_steps, r, weight_lr_power, foreach: as for :class:`ScheduleFreeAdamW`.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = None,
    ) -> None:
        if not _is_real(momentum) or not 0.0 < momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum!r} (must be in (0, 1))")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["momentum"]

    def _directions(
        self,
        group: dict[str, Any],
        ys: list[Tensor],
        grads: list[Tensor],
        states: list[dict],
        k: int,
    ) -> list[Tensor] | tuple[Tensor, ...]:
        decay = group["weight_decay"]
        if decay == 0:
            return grads  # u = g (only read by the caller)
        # u = g + lambda y
        return torch._foreach_add(grads, ys, alpha=decay)

    def _direction(
        self, group: dict[str, Any], y: Tensor, grad: Tensor, state: dict, k: int
    ) -> Tensor:
        decay = group["weight_decay"]
        if decay == 0:
            return grad
        # u = g + lambda y
        return grad.add(y, alpha=decay)
