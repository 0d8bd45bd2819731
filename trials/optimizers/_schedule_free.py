"""What Schedule-Free SGD and AdamW share (Defazio et al. 2024, "The Road Less Scheduled").

Three sequences per parameter (ALGORITHMS.md §2): ``z`` the base iterate, ``x`` the weighted
average of ``z`` (the evaluation point) and ``y = beta x + (1 - beta) z`` where gradients are
taken. Memory-efficient form (ALGORITHMS-NOTES §1.4): the parameter holds ``y`` in train mode
and ``x`` in eval mode; the state holds only ``z`` (and Adam's ``v``); ``x`` is recovered as
``(y - (1 - beta) z) / beta``. Step counters and averaging weights live in the param group so
``state_dict()`` round-trips them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["ScheduleFreeBase"]


class ScheduleFreeBase(torch.optim.Optimizer):
    """Bookkeeping and train/eval switching; subclasses supply the normalised direction."""

    schedule_free = True

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        lr = defaults["lr"]
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= defaults["weight_decay"]:
            raise ValueError(f"Invalid weight_decay value: {defaults['weight_decay']}")
        if not (isinstance(defaults["warmup_steps"], int) and defaults["warmup_steps"] >= 0):
            raise ValueError(f"Invalid warmup_steps: {defaults['warmup_steps']}")
        if not 0.0 <= defaults["r"]:
            raise ValueError(f"Invalid r: {defaults['r']}")
        defaults = dict(defaults, k=0, train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)
        super().__init__(params, defaults)

    # -- the interpolation constant beta (betas[0] for AdamW, momentum for SGD)
    @staticmethod
    def _beta(group: dict[str, Any]) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def eval(self) -> None:
        """Put ``x`` in the parameters: ``x = lerp(y, z, 1 - 1/beta)``."""
        for group in self.param_groups:
            if group["train_mode"]:
                beta = self._beta(group)
                for p in group["params"]:
                    state = self.state[p]
                    if "z" in state:
                        p.lerp_(state["z"], 1.0 - 1.0 / beta)
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Put ``y`` back in the parameters: ``y = lerp(x, z, 1 - beta)``."""
        for group in self.param_groups:
            if not group["train_mode"]:
                beta = self._beta(group)
                for p in group["params"]:
                    state = self.state[p]
                    if "z" in state:
                        p.lerp_(state["z"], 1.0 - beta)
                group["train_mode"] = True

    def _advance(self, group: dict[str, Any]) -> tuple[float, float]:
        """Steps 1–2 of ALGORITHMS.md §2: the warmed-up LR and the averaging weight ``c``."""
        k = group["k"]
        warmup = group["warmup_steps"]
        sched = (k + 1) / warmup if k < warmup else 1.0  # linear warmup, never zero
        lr = group["lr"] * sched
        group["scheduled_lr"] = lr
        group["lr_max"] = lr_max = max(lr, group["lr_max"])
        weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])  # w_k = (k+1)^r lr_max^p
        group["weight_sum"] = weight_sum = group["weight_sum"] + weight
        c = weight / weight_sum if weight_sum != 0 else 0.0  # c = w_k / sum w
        return lr, c

    def _direction(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Overwrite ``grads`` in place with the base direction (``g`` or ``g / denom``)."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError(
                "Schedule-free optimizers must be in train mode to step: call optimizer.train() "
                "before training (and optimizer.eval() before evaluating)"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, c = self._advance(group)
            beta = self._beta(group)
            decay = group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                for p in params:
                    if "z" not in self.state[p]:
                        self._init_state(p)
                grads = [p.grad for p in params]
                zs = [self.state[p]["z"] for p in params]
                self._direction(group, params, grads)  # u <- g (SGD) or g / (sqrt(v_hat) + eps) (Adam)
                if decay != 0:
                    torch._foreach_add_(grads, params, alpha=decay)  # u <- u + lambda y  (decay at y)
                # y <- (1 - c) y + c z          (the x-update folded into y, NOTES §1.3)
                torch._foreach_lerp_(params, zs, c)
                # y <- y + lr (beta (1 - c) - 1) u
                torch._foreach_add_(params, grads, alpha=lr * (beta * (1 - c) - 1))
                # z <- z - lr u
                torch._foreach_add_(zs, grads, alpha=-lr)
            group["k"] += 1
        return loss

    def _init_state(self, p: torch.Tensor) -> None:
        self.state[p]["z"] = p.detach().clone(memory_format=torch.preserve_format)


def _check_beta(name: str, value: float) -> None:
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise ValueError(f"Invalid {name}: {value}")
