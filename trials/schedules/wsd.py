"""Warmup–stable–decay (Hägele et al. 2024, arXiv 2405.18392; docs/equations.md §5.5).

The stable phase is a constant-LR *trunk* shared by every horizon with the same warmup and
peak LR; :meth:`WSD.decay_start` tells the planner where each horizon's cooldown forks off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from trials.errors import ConfigError
from trials.schedules._base import Schedule, _check_fraction, _cos_decay

__all__ = ["WSD", "COOLDOWN_SHAPES"]

COOLDOWN_SHAPES: dict[str, object] = {
    "linear": lambda q: 1.0 - q,
    "cosine": _cos_decay,
    "1-sqrt": lambda q: 1.0 - math.sqrt(q),
}


@dataclass(frozen=True, kw_only=True)
class WSD(Schedule):
    """Cooldown over the last ``round(c T)`` steps, starting at ``S = max(W, T - round(c T))``.

    With ``q = (t - S)/(T - S)``: ``s = f + (1 - f) shape(q)``; ``s = f`` from ``T`` on.
    """

    name: ClassVar[str] = "wsd"
    horizon_free: ClassVar[bool] = False
    cooldown_fraction: float = 0.2
    cooldown_shape: str = "1-sqrt"
    final_fraction: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction("schedule.cooldown_fraction", self.cooldown_fraction, low_open=True, high_open=False)
        _check_fraction("schedule.final_fraction", self.final_fraction, low_open=False, high_open=False)
        if self.cooldown_shape not in COOLDOWN_SHAPES:
            raise ConfigError("schedule.cooldown_shape", self.cooldown_shape, f"one of {sorted(COOLDOWN_SHAPES)}")

    def decay_start(self, horizon: int) -> int:
        """``S = T - round(c T)``, never before the end of warmup (Python's round: half to even)."""
        self.check_horizon(horizon)
        return max(self.warmup, horizon - round(self.cooldown_fraction * horizon))

    def _after_warmup(self, step: int, horizon: int | None) -> float:
        assert horizon is not None
        start = self.decay_start(horizon)
        if step < start:
            return 1.0
        q = min(1.0, (step - start) / (horizon - start))
        f = self.final_fraction
        return f + (1.0 - f) * COOLDOWN_SHAPES[self.cooldown_shape](q)  # type: ignore[operator]
