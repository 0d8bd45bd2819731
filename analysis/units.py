"""Numbers as people read them: counts in readable units (tokens, steps, FLOPs) and every float
a label, legend, table or file name shows — a searched LR, an EMA half-life, a regret — with 3
significant digits and no exponent in the range people meet (``0.028402848718690213`` →
``"0.0284"``, ``409.2`` → ``"409"``). The store and queries keep full precision; only the text
shown is rounded (docs/report.md)."""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["SAMPLE_WORKLOADS", "count_unit", "pct3", "short_numbers", "si", "sig3"]

SAMPLE_WORKLOADS: frozenset[str] = frozenset({"linreg"})
"""Workloads that are not language models: a step consumes samples, not tokens, and a
Chinchilla multiple (20 tokens per parameter) means nothing for them."""


def count_unit(workloads: object) -> str:
    """``"samples"`` when every workload given is one of :data:`SAMPLE_WORKLOADS`, else
    ``"tokens"`` (a language model, or a mix)."""
    names = {str(w) for w in workloads}  # type: ignore[attr-defined]
    return "samples" if names and names <= SAMPLE_WORKLOADS else "tokens"


def si(x: float) -> str:
    """A count in readable units: 819200 → ``"819K"``, 1.2e6 → ``"1.2M"``, 3e9 → ``"3B"``."""
    if x is None or not np.isfinite(x):
        return "?"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _strip(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def sig3(x: float, digits: int = 3) -> str:
    """``x`` rounded to ``digits`` significant digits, written positionally for
    1e-6 ≤ |x| < 1e15 (``0.000123456`` → ``"0.000123"``, ``61234`` → ``"61200"``, ``100`` →
    ``"100"``), in exponent form only outside that range; ``"inf"``/``"-inf"``/``"nan"``."""
    if x is None:
        return "nan"
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    rounded = float(f"{x:.{digits - 1}e}")  # rounding first: 0.09996 → 0.1 has exponent -1
    exp = math.floor(math.log10(abs(rounded)))
    if not -6 <= exp < 15:
        mant, _, power = f"{rounded:.{digits - 1}e}".partition("e")
        return f"{_strip(mant)}e{int(power)}"
    return _strip(f"{rounded:.{max(digits - 1 - exp, 0)}f}")


def pct3(fraction: float, *, sign: bool = False) -> str:
    """A fraction as a percentage with at most 3 significant digits: 4.092 → ``"409%"``,
    0.00523 → ``"0.523%"``, 612.3 → ``"61200%"``; ``sign`` adds ``+`` to positive values."""
    if fraction is None or math.isnan(float(fraction)):
        return "n/a"
    if math.isinf(float(fraction)):
        return "∞" if fraction > 0 else "-∞"
    text = sig3(100.0 * float(fraction))
    return ("+" if sign and fraction > 0 else "") + text + "%"


_NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)(?![\w.])")


def short_numbers(text: str, digits: int = 3) -> str:
    """Every decimal number written in ``text`` rounded to ``digits`` significant digits
    (``"ema@0.028402848718690213"`` → ``"ema@0.0284"``); integers are left as they are."""
    return _NUMBER.sub(lambda m: sig3(float(m.group(1)), digits), text)
