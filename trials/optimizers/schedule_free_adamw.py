"""Schedule-Free AdamW (Defazio et al. 2024), written from ALGORITHMS.md §2 / NOTES §1.3.

Matches the ``schedulefree`` package's ``AdamWScheduleFree`` (v1.4.1: bias correction in the
denominator, weight decay evaluated at ``y``) to float32 tolerance; see
tests/trials_tests/test_optimizers.py. Like the reference, ``step()`` overwrites ``p.grad`` with
the normalised direction: clip and log gradients before stepping.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from trials.optimizers._schedule_free import ScheduleFreeBase, _check_beta

__all__ = ["ScheduleFreeAdamW"]


class ScheduleFreeAdamW(ScheduleFreeBase):
    """Args mirror ``schedulefree.AdamWScheduleFree``: ``betas[0]`` is the interpolation beta."""

    def __init__(
        self, params: Iterable[Any], lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
        weight_lr_power: float = 2.0, foreach: bool | None = None,
    ) -> None:
        _check_beta("beta parameter at index 0", betas[0])
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                                      foreach=foreach))

    @staticmethod
    def _beta(group: dict[str, Any]) -> float:
        return group["betas"][0]

    def _init_state(self, p: torch.Tensor) -> None:
        super()._init_state(p)
        self.state[p]["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _direction(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        beta2 = group["betas"][1]
        bias_correction2 = 1 - beta2 ** (group["k"] + 1)
        vs = [self.state[p]["exp_avg_sq"] for p in params]
        # v <- beta2 v + (1 - beta2) g^2
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
        # denom = sqrt(v / (1 - beta2^(k+1))) + eps      (eps outside the sqrt)
        denom = torch._foreach_div(vs, bias_correction2)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, group["eps"])
        # u = g / denom   (in place in p.grad, as the reference does)
        torch._foreach_div_(grads, denom)
