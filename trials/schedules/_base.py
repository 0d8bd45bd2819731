"""What every schedule is: a pure function of the step returning a multiplier of the peak LR.

Indexing (pinned by tests/trials_tests/test_schedules.py): ``step`` counts optimizer steps
already taken, starting at 0, and ``multiplier(step, horizon)`` is the factor applied to the
peak LR *for* the update made at that step. Warmup is linear and never zero:
``s(t) = (t + 1) / W`` for ``t < W`` (so ``s(W - 1) = 1``), as in the schedule_free package
(docs/equations.md §5.1). A horizon ``T`` means ``T`` updates, steps ``0 .. T - 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from trials.errors import ConfigError

__all__ = ["Schedule", "warmup_multiplier"]


def warmup_multiplier(step: int, warmup: int) -> float:
    """Linear warmup factor ``(t + 1) / W`` for ``t < W``; 1 afterwards."""
    if step < warmup:
        return (step + 1) / warmup
    return 1.0


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Base class: subclasses set ``name``/``horizon_free`` and implement ``_after_warmup``."""

    name: ClassVar[str] = ""
    horizon_free: ClassVar[bool] = True
    warmup: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 0:
            raise ConfigError("schedule.warmup", self.warmup, "an integer >= 0")

    def multiplier(self, step: int, horizon: int | None = None) -> float:
        """The LR multiplier for the update at ``step`` of a run of ``horizon`` steps."""
        if step < 0:
            raise ConfigError("step", step, "an integer >= 0")
        if not self.horizon_free:
            self.check_horizon(horizon)
        if step < self.warmup:
            return warmup_multiplier(step, self.warmup)
        return self._after_warmup(step, horizon)

    def check_horizon(self, horizon: int | None) -> None:
        """Raise unless ``horizon`` is usable with this schedule (longer than the warmup)."""
        if horizon is None:
            if not self.horizon_free:
                raise ConfigError("horizon", horizon, f"an integer for the horizon-dependent schedule {self.name!r}")
            return
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon <= self.warmup:
            raise ConfigError("horizon", horizon, f"an integer > warmup ({self.warmup})")

    def decay_start(self, horizon: int) -> int | None:
        """First step at which the schedule departs from a horizon-free trunk, if it has one.

        ``None`` for schedules without a shareable trunk; WSD overrides it.
        """
        return None

    def _after_warmup(self, step: int, horizon: int | None) -> float:
        raise NotImplementedError

    def params(self) -> dict[str, object]:
        """The schedule's parameters as plain values (for storage as columns)."""
        from dataclasses import asdict

        return asdict(self)


def _cos_decay(p: float) -> float:
    """(1 + cos(pi p)) / 2 for p in [0, 1]."""
    return 0.5 * (1.0 + math.cos(math.pi * p))


def _check_fraction(field: str, value: float, *, low_open: bool, high_open: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        lo = "(0" if low_open else "[0"
        hi = "1)" if high_open else "1]"
        raise ConfigError(field, value, f"a number in {lo}, {hi}")
