"""Torch-style argument validation for the optimizers' ``__init__`` (``Invalid beta2: 1.0 (…)``).

Each check names the argument as torch does, shows the value with ``repr`` and says what was
expected. Strings, booleans, NaN and infinities are rejected as numbers, never compared.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

__all__ = ["check_bool", "check_choice", "check_int", "check_number", "is_real"]


def is_real(value: Any) -> bool:
    """A finite ``int`` or ``float`` (not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(
    label: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Raise ``ValueError("Invalid <label>: <value> (must be in <interval>)")`` unless it fits.

    Args:
        label: the argument as the message names it (``"beta2"``, ``"learning rate"``).
        value: what was passed.
        low, high: bounds (``None``: unbounded).
        low_open, high_open: whether the bound itself is excluded.
    """
    ok = is_real(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(
            f"Invalid {label}: {value!r} (must be {_interval(low, high, low_open, high_open)})"
        )
    return value


def check_int(label: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """Raise unless ``value`` is an ``int`` (not a ``bool``) in ``[low, high)``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value < high
    if not ok:
        bound = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"Invalid {label}: {value!r} (must be an integer {bound})")
    return value


def check_bool(label: str, value: Any) -> bool:
    """Raise unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"Invalid {label}: {value!r} (must be True or False)")
    return value


def check_choice(label: str, value: Any, choices: Collection[Any]) -> Any:
    """Raise unless ``value`` is one of ``choices`` (listed sorted by ``repr``)."""
    if isinstance(value, bool) or value not in choices:
        listed = ", ".join(sorted(repr(c) for c in choices))
        raise ValueError(f"Invalid {label}: {value!r} (must be one of {listed})")
    return value


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a number {'>' if low_open else '>='} {low}"
    if low is None:
        return f"a number {'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
