"""Schedule-Free SGD (Defazio et al. 2024): the z-step is plain SGD, ``u = g + lambda y``.

Matches ``schedulefree.SGDScheduleFree`` (v1.4.1); ``momentum`` is the interpolation beta.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from trials.optimizers._schedule_free import ScheduleFreeBase, _check_beta

__all__ = ["ScheduleFreeSGD"]


class ScheduleFreeSGD(ScheduleFreeBase):
    def __init__(
        self, params: Iterable[Any], lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
        warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0, foreach: bool | None = None,
    ) -> None:
        _check_beta("momentum", momentum)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                                      foreach=foreach))

    @staticmethod
    def _beta(group: dict[str, Any]) -> float:
        return group["momentum"]

    def _direction(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        return None  # u = g
