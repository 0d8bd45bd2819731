"""LR schedules: pure functions of the step returning a multiplier of the peak LR.

>>> s = build_schedule("wsd", warmup=10, cooldown_fraction=0.2)
>>> s.decay_start(100), s.multiplier(0, 100), s.multiplier(50, 100)
(80, 0.1, 1.0)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trials.errors import ConfigError
from trials.schedules._base import Schedule, warmup_multiplier
from trials.schedules.constant import Constant
from trials.schedules.cosine import Cosine
from trials.schedules.inverse_sqrt import InverseSqrt
from trials.schedules.linear import Linear
from trials.schedules.polynomial import Polynomial
from trials.schedules.wsd import COOLDOWN_SHAPES, WSD

__all__ = [
    "COOLDOWN_SHAPES",
    "SCHEDULES",
    "Constant",
    "Cosine",
    "InverseSqrt",
    "Linear",
    "Polynomial",
    "Schedule",
    "WSD",
    "build_schedule",
    "warmup_multiplier",
]

SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Cosine, Linear, WSD, InverseSqrt, Polynomial)
}


def build_schedule(name: str, *, warmup: int = 0, **params: Any) -> Schedule:
    """Build a schedule by registry name; unknown names and parameters raise :class:`ConfigError`."""
    if name not in SCHEDULES:
        raise ConfigError("schedule.name", name, f"one of {sorted(SCHEDULES)}")
    cls = SCHEDULES[name]
    allowed = {f.name for f in dataclasses.fields(cls)} - {"warmup"}
    for key in params:
        if key not in allowed:
            raise ConfigError(f"schedule.{key}", params[key], f"a parameter of {name!r}: one of {sorted(allowed)}")
    return cls(warmup=warmup, **params)
