"""Slow schedule-free twins written straight from the three-sequence equations (tests only).

They store ``x``, ``y`` and ``z`` explicitly and share no code with the fast classes, so a test
that drives both with identical gradients checks the in-place algebra of
:mod:`trials.optimizers._schedule_free` (docs/equations.md §1.1–1.3)::

    lr_k   = lr · min(1, (k + 1)/W);  lr_max = max(lr_max, lr_k)
    w_k    = (k + 1)^r · lr_max^p;    S += w_k;   c = w_k / S
    u      = g / (sqrt(v̂) + eps)   (AdamW; with inner momentum mu: m̂ / (sqrt(v̂) + eps),
                                     m = mu m + (1 − mu) g, m̂ = m / (1 − mu^(k+1)))   or   g (SGD)
    c      ← min(1, c (1 − beta) C)      (refined SF only)
    z      ← z − lr_k (u + lambda y)
    x      ← (1 − c) x + c z
    y      ← beta x + (1 − beta) z;   the parameter holds y (train) or x (eval)

They agree with the fast classes to rounding only (docs/equations.md §1.3: rtol 1e-5, atol 1e-6 in
fp32).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "RefinedScheduleFreeAdamWReference",
    "ScheduleFreeAdamWReference",
    "ScheduleFreeSGDReference",
]


class StoredXYModes(torch.optim.Optimizer):
    """``eval()`` / ``train()`` of a reference that stores x and y explicitly: copy the one the
    mode evaluates at into the parameters (the reference package's behaviour)."""

    @torch.no_grad()
    def eval(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if "x" in self.state[p]:
                    p.copy_(self.state[p]["x"])
            group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if "y" in self.state[p]:
                    p.copy_(self.state[p]["y"])
            group["train_mode"] = True


class _ScheduleFreeReference(StoredXYModes):
    schedule_free = True

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        defaults.update(k=0, train_mode=False, weight_sum=0.0, lr_max=-1.0)
        super().__init__(params, defaults)

    def _beta(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    def _base_direction(
        self, group: dict[str, Any], g: Tensor, state: dict[str, Any], k: int
    ) -> Tensor:
        raise NotImplementedError

    def _refine(self, group: dict[str, Any], c: float) -> float:
        return c

    def interpolation(self, group: dict[str, Any]) -> float:
        return self._beta(group)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if not group["train_mode"]:
                raise RuntimeError("reference step() in eval mode: call optimizer.train()")
            k, w_steps, beta = group["k"], group["warmup_steps"], self._beta(group)
            lr_k = group["lr"] * min(1.0, (k + 1) / w_steps) if w_steps > 0 else group["lr"]
            group["lr_max"] = max(group["lr_max"], lr_k)
            w = (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
            group["weight_sum"] += w
            c = w / group["weight_sum"] if group["weight_sum"] > 0 else 0.0
            c = self._refine(group, c)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "z" not in state:
                    state["x"], state["y"], state["z"] = p.clone(), p.clone(), p.clone()
                x, y, z = state["x"], state["y"], state["z"]
                u = self._base_direction(group, p.grad, state, k)
                z_new = z - lr_k * (u + group["weight_decay"] * y)
                x_new = (1 - c) * x + c * z_new
                y_new = beta * x_new + (1 - beta) * z_new
                state["x"], state["y"], state["z"] = x_new, y_new, z_new
                p.copy_(y_new)
            group["k"] = k + 1
        return loss


class ScheduleFreeAdamWReference(_ScheduleFreeReference):
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
        **extra: Any,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=betas,
                eps=eps,
                weight_decay=weight_decay,
                warmup_steps=warmup_steps,
                r=r,
                weight_lr_power=weight_lr_power,
                inner_momentum=inner_momentum,
                **extra,
            ),
        )

    def _beta(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def _base_direction(
        self, group: dict[str, Any], g: Tensor, state: dict[str, Any], k: int
    ) -> Tensor:
        beta2, mu = group["betas"][1], group["inner_momentum"]
        v = state.get("exp_avg_sq", torch.zeros_like(g))
        state["exp_avg_sq"] = v = beta2 * v + (1 - beta2) * g * g
        v_hat = v / (1 - beta2 ** (k + 1))
        numerator = g
        if mu != 0:
            m = state.get("exp_avg", torch.zeros_like(g))
            state["exp_avg"] = m = mu * m + (1 - mu) * g
            numerator = m / (1 - mu ** (k + 1))
        return numerator / (v_hat.sqrt() + group["eps"])


class RefinedScheduleFreeAdamWReference(ScheduleFreeAdamWReference):
    """Refined SF (Song et al. 2025): the averaging weight becomes min(1, c (1 − beta1) C)."""

    def __init__(
        self, params: Any, lr: float = 0.0025, *, C: float | None = None, **kwargs: Any
    ) -> None:  # noqa: N803
        super().__init__(params, lr, C=C, **kwargs)  # C None: every group dict sets its own

    def _refine(self, group: dict[str, Any], c: float) -> float:
        return min(1.0, c * (1 - group["betas"][0]) * group["C"])


class ScheduleFreeSGDReference(_ScheduleFreeReference):
    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                warmup_steps=warmup_steps,
                r=r,
                weight_lr_power=weight_lr_power,
            ),
        )

    def _beta(self, group: dict[str, Any]) -> float:
        return group["momentum"]

    def _base_direction(
        self, group: dict[str, Any], g: Tensor, state: dict[str, Any], k: int
    ) -> Tensor:
        return g
