"""Cosine decay to a final fraction of the peak (docs/equations.md §5.3). Horizon-dependent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trials.schedules._base import Schedule, _check_fraction, _cos_decay

__all__ = ["Cosine"]


@dataclass(frozen=True, kw_only=True)
class Cosine(Schedule):
    """``s = f + (1 - f)(1 + cos(pi p))/2`` with ``p = (t - W)/(T - W)``; ``s = f`` after T."""

    name: ClassVar[str] = "cosine"
    horizon_free: ClassVar[bool] = False
    final_fraction: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction("schedule.final_fraction", self.final_fraction, low_open=False, high_open=False)

    def _after_warmup(self, step: int, horizon: int | None) -> float:
        assert horizon is not None  # checked by multiplier()
        p = min(1.0, (step - self.warmup) / (horizon - self.warmup))
        f = self.final_fraction
        return f + (1.0 - f) * _cos_decay(p)
