"""Inverse square root after warmup (docs/equations.md §5.6). Horizon-free."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from trials.errors import ConfigError
from trials.schedules._base import Schedule

__all__ = ["InverseSqrt"]


@dataclass(frozen=True, kw_only=True)
class InverseSqrt(Schedule):
    """``s = sqrt(tau / max(t, tau))`` after warmup; ``tau`` defaults to the warmup (at least 1)."""

    name: ClassVar[str] = "inverse_sqrt"
    horizon_free: ClassVar[bool] = True
    tau: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tau is not None and not (isinstance(self.tau, (int, float)) and self.tau > 0 and math.isfinite(self.tau)):
            raise ConfigError("schedule.tau", self.tau, "a number > 0")

    @property
    def timescale(self) -> float:
        return float(self.tau) if self.tau is not None else float(max(self.warmup, 1))

    def _after_warmup(self, step: int, horizon: int | None) -> float:
        tau = self.timescale
        return math.sqrt(tau / max(float(step), tau))
