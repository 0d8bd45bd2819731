"""Synthetic loss curves of known multi-power-law parameters: the schedules and the noise model
the curve-law tests (and ``benchmarks/curve_law.py``) fit and predict."""

from __future__ import annotations

import numpy as np

__all__ = [
    "MPL_400M",
    "PEAK",
    "STEPS",
    "T",
    "W",
    "constant",
    "cosine",
    "law_curve",
    "two_stage",
    "wsd",
]

# Luo et al. 2025, published 400M fit (README table, docs/equations.md §7.2); raw LRs.
MPL_400M = {
    "L0": 2.375,
    "A": 0.654,
    "alpha": 0.429,
    "B": 523.4,
    "C": 2.025,
    "beta": 0.594,
    "gamma": 0.635,
}
T, W, PEAK = 2000, 100, 3e-4
STEPS = np.unique(np.geomspace(W, T - 1, 20).astype(np.int64))  # log-spaced, like eval points
WARM = PEAK * np.arange(1, W + 1) / W


def constant() -> np.ndarray:
    return np.concatenate([WARM, np.full(T - W, PEAK)])


def cosine() -> np.ndarray:
    p = np.arange(T - W) / (T - W - 1)
    return np.concatenate([WARM, PEAK * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)))])


def wsd(shape: str) -> np.ndarray:
    c = T // 5
    q = np.arange(1, c + 1) / c
    decay = PEAK * (1 - 0.9 * (np.sqrt(q) if shape == "1-sqrt" else q))
    return np.concatenate([WARM, np.full(T - W - c, PEAK), decay])


def two_stage() -> np.ndarray:
    return np.concatenate([WARM, np.full(T // 2 - W, PEAK), np.full(T - T // 2, PEAK / 3)])


def law_curve(law, lr: np.ndarray, rng: np.random.Generator, noise: float) -> tuple:
    loss = law.predict(lr, STEPS)
    return lr, STEPS, loss * np.exp(rng.normal(0.0, noise, loss.size))
