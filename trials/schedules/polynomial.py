"""Horizon-free polynomial decay, the anytime schedule of Meterez et al. (arXiv 2602.03702).

``s(t) = (1 + (t - W)/t0)^(-gamma)`` after warmup (docs/equations.md §5.7): gamma = 0 is constant,
gamma = 1/2 the offset inverse-sqrt. Pair it with weight averaging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from trials.errors import ConfigError
from trials.schedules._base import Schedule

__all__ = ["Polynomial"]


@dataclass(frozen=True, kw_only=True)
class Polynomial(Schedule):
    name: ClassVar[str] = "polynomial"
    horizon_free: ClassVar[bool] = True
    gamma: float = 0.5
    t0: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.gamma, (int, float)) and 0 <= self.gamma <= 1):
            raise ConfigError("schedule.gamma", self.gamma, "a number in [0, 1]")
        if not (isinstance(self.t0, (int, float)) and self.t0 > 0 and math.isfinite(self.t0)):
            raise ConfigError("schedule.t0", self.t0, "a number > 0")

    def _after_warmup(self, step: int, horizon: int | None) -> float:
        return (1.0 + (step - self.warmup) / self.t0) ** (-self.gamma)
