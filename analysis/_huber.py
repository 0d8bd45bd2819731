"""Huber loss on log-loss residuals, and the input checks every law fit shares.

All laws in :mod:`analysis.scaling` and :mod:`analysis.curves` minimise
``Σ_i Huber_δ(log L_i − log L̂_i)`` with δ = 1e-3 (Hoffmann et al. 2022, approach 3; Epoch AI's
replication sums, not averages, over points — docs/equations.md §8.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["as_positive_array", "check_delta", "check_same_length", "huber", "huber_psi"]


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber_δ(r) = ½r² for |r| ≤ δ, else δ(|r| − ½δ), elementwise."""
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def huber_psi(r: np.ndarray, delta: float) -> np.ndarray:
    """dHuber_δ/dr = clip(r, −δ, δ) (the Huber loss is C¹, so this is its exact gradient)."""
    return np.clip(r, -delta, delta)


def as_positive_array(name: str, values: object) -> np.ndarray:
    """``values`` as a finite, strictly positive 1-D float64 array, or a ValueError naming it."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite, got {float(arr[bad][0])!r}")
    bad = arr <= 0
    if bad.any():
        raise ValueError(f"{name} must be > 0, got {float(arr[bad][0])!r}")
    return arr


def check_same_length(names: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
    """Raise if the arrays do not all have the length of the first."""
    n = len(arrays[0])
    for name, arr in zip(names[1:], arrays[1:], strict=True):
        if len(arr) != n:
            raise ValueError(
                f"{name} must have the same length as {names[0]} ({n}), got {len(arr)}"
            )


def check_delta(delta: float) -> float:
    """The Huber threshold as a positive finite float."""
    delta = float(delta)
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
    return delta
