"""Schedule-Free AdamW (Defazio et al. 2024), written from docs/equations.md §1.3.

The base direction is Adam's normalised gradient without a first moment, with the bias
correction in the denominator (the ``schedulefree`` package's behaviour since v1.3,
docs/equations.md §1.6) and weight decay evaluated at ``y``::

    v ← beta2 v + (1 - beta2) g²
    u = g / (sqrt(v / (1 - beta2^(k+1))) + eps) + lambda y

With ``inner_momentum`` mu ≠ 0 (added to the reference at git HEAD ``43e5c2d``, not in PyPI
1.4.1; docs/equations.md §1.7) the numerator is Adam's bias-corrected first moment instead of
``g``::

    m ← mu m + (1 - mu) g;   u = (m / (1 - mu^(k+1))) / (sqrt(v / (1 - beta2^(k+1))) + eps) + lambda y

With ``inner_momentum=0`` (the default) it agrees bit for bit with ``schedulefree.AdamWScheduleFree``
1.4.1 and allocates no first moment; with mu ≠ 0 it matches the HEAD class step by step
(tests/trials_tests/test_optimizers.py, tests/data/optimizers). Unlike the reference, ``p.grad``
is not overwritten (docs/equations.md §1.3 pitfall), at the cost of one temporary per parameter per
step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trials.optimizers._arguments import check_number
from trials.optimizers._schedule_free import ScheduleFreeOptimizer

__all__ = ["ScheduleFreeAdamW"]


class ScheduleFreeAdamW(ScheduleFreeOptimizer):
    """Schedule-Free AdamW; call ``train()`` before stepping and ``eval()`` before evaluating.

    Args:
        params: parameters or param-group dicts, as for any ``torch.optim`` optimizer.
        lr: peak learning rate (reached after ``warmup_steps``); the z-step uses it constantly.
        betas: ``(beta1, beta2)``; ``beta1`` is the schedule-free interpolation
            ``y = (1 - beta1) z + beta1 x``, not an Adam momentum; ``beta2`` averages ``g²``.
        eps: added outside the square root of the bias-corrected second moment.
        weight_decay: decoupled decay ``lambda``, evaluated at ``y`` and applied to ``z``.
        warmup_steps: linear warmup ``lr_k = lr (k + 1) / W`` for ``k < W``.
        r: polynomial weighting of the average, ``w_k ∝ (k + 1)^r``.
        weight_lr_power: ``p`` in ``w_k = (k + 1)^r · lr_max^p`` (2: the paper's squared-LR rule).
        inner_momentum: ``mu`` of an Adam first moment inside the z-step, in [0, 1); 0 (default)
            disables it (the reference recommends 0.9 when enabling it).
        foreach: ``True``: the ``torch._foreach_*`` path; ``False``: a per-tensor loop; ``None``:
            foreach on CUDA, per-tensor elsewhere (faster on CPU).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        inner_momentum: float = 0.0,
        foreach: bool | None = None,
    ) -> None:
        beta1, beta2 = _check_betas(betas)
        check_number("epsilon value", eps, 0)
        check_number("inner_momentum", inner_momentum, 0, 1, high_open=True)
        defaults = dict(
            lr=lr,
            betas=(beta1, beta2),
            eps=eps,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            inner_momentum=inner_momentum,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def _init_state(self, p: Tensor, state: dict[str, Any]) -> None:
        super()._init_state(p, state)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _directions(
        self,
        group: dict[str, Any],
        ys: list[Tensor],
        grads: list[Tensor],
        states: list[dict],
        k: int,
    ) -> list[Tensor] | tuple[Tensor, ...]:
        beta2, eps, decay = group["betas"][1], group["eps"], group["weight_decay"]
        bias_correction2 = 1.0 - beta2 ** (k + 1)
        vs = [s["exp_avg_sq"] for s in states]
        # v ← beta2 v + (1 - beta2) g ⊙ g
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)
        # d = sqrt(v / (1 - beta2^(k+1))) + eps        (eps outside the square root)
        denom = torch._foreach_div(vs, bias_correction2)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, eps)
        mu = group.get("inner_momentum", 0.0)
        if mu != 0:
            ms = [_first_moment(s, y) for s, y in zip(states, ys, strict=True)]
            # m ← mu m + (1 - mu) g
            torch._foreach_mul_(ms, mu)
            torch._foreach_add_(ms, grads, alpha=1.0 - mu)
            # u = (m / (1 - mu^(k+1))) ⊘ d
            us = torch._foreach_div(ms, 1.0 - mu ** (k + 1))
            torch._foreach_div_(us, denom)
        else:
            # u = g ⊘ d   (a new tensor: p.grad stays the raw gradient)
            us = torch._foreach_div(grads, denom)
        if decay != 0:
            # u ← u + lambda y    (decay evaluated at y)
            torch._foreach_add_(us, ys, alpha=decay)
        return us

    def _direction(
        self, group: dict[str, Any], y: Tensor, grad: Tensor, state: dict, k: int
    ) -> Tensor:
        beta2, eps, decay = group["betas"][1], group["eps"], group["weight_decay"]
        v = state["exp_avg_sq"]
        # v ← beta2 v + (1 - beta2) g ⊙ g
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        # d = sqrt(v / (1 - beta2^(k+1))) + eps
        denom = v.div(1.0 - beta2 ** (k + 1)).sqrt_().add_(eps)
        mu = group.get("inner_momentum", 0.0)
        if mu != 0:
            m = _first_moment(state, y)
            # m ← mu m + (1 - mu) g
            m.mul_(mu).add_(grad, alpha=1.0 - mu)
            # u = (m / (1 - mu^(k+1))) ⊘ d
            u = m.div(1.0 - mu ** (k + 1)).div_(denom)
        else:
            # u = g ⊘ d, computed into d's buffer (p.grad untouched)
            u = torch.div(grad, denom, out=denom)
        if decay != 0:
            # u ← u + lambda y
            u.add_(y, alpha=decay)
        return u


def _first_moment(state: dict[str, Any], p: Tensor) -> Tensor:
    """``state["exp_avg"]``, created at zero the first time (only when inner momentum is on)."""
    if "exp_avg" not in state:
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state["exp_avg"]


def _check_betas(betas: Any) -> tuple[float, float]:
    """``(beta1, beta2)``: beta1 in (0, 1) (``eval()`` divides by it), beta2 in [0, 1)."""
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"Invalid betas: {betas!r} (must be a pair (beta1, beta2))")
    check_number("beta1", betas[0], 0, 1, low_open=True, high_open=True)
    check_number("beta2", betas[1], 0, 1, high_open=True)
    return betas[0], betas[1]
