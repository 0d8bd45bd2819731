"""Readable units for counts (tokens, steps, FLOPs) in captions, labels and sentences."""

from __future__ import annotations

import numpy as np

__all__ = ["si"]


def si(x: float) -> str:
    """A count in readable units: 819200 → ``"819K"``, 1.2e6 → ``"1.2M"``, 3e9 → ``"3B"``."""
    if x is None or not np.isfinite(x):
        return "?"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"
