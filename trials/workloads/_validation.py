"""Field checks shared by the workload configs; each raises :class:`ConfigError` naming the field."""

from __future__ import annotations

import math
from typing import Any

from trials.errors import ConfigError

__all__ = ["check_int", "check_float", "check_bool"]


def check_int(field: str, value: Any, *, low: int, allow_none: bool = False) -> None:
    """``value`` must be an int >= ``low`` (bools are rejected), or None when allowed."""
    if allow_none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(field, value, f"an integer >= {low}" + (" or None" if allow_none else ""))


def check_float(field: str, value: Any, *, low: float, high: float = math.inf,
                low_open: bool = False, high_open: bool = False) -> None:
    """``value`` must be a finite real in the stated interval."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lo = f"({low}" if low_open else f"[{low}"
        hi = "inf)" if math.isinf(high) else (f"{high})" if high_open else f"{high}]")
        raise ConfigError(field, value, f"a finite number in {lo}, {hi}")


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(field, value, "true or false")
