"""Constant LR after a linear warmup (docs/equations.md §5.2). Horizon-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trials.schedules._base import Schedule

__all__ = ["Constant"]


@dataclass(frozen=True, kw_only=True)
class Constant(Schedule):
    name: ClassVar[str] = "constant"
    horizon_free: ClassVar[bool] = True

    def _after_warmup(self, step: int, horizon: int | None) -> float:
        return 1.0
