"""The schedule-dependent terms of the loss-curve laws, computed from the full per-step LR.

Index convention (both laws, as in the multi-power-law reference code ``src/models.py``,
docs/equations.md §7.2): ``lr_seq[i]`` is the LR of update ``i`` (``i = 0, 1, …``, warmup
included) and the loss logged at step ``s`` is predicted from ``lr_seq[0..s]``:

- forward area ``S1(s) = P[s]``, ``P = cumsum(lr_seq)`` (warmup area included, so
  ``S1 + S_W = P`` in the paper's notation);
- multi-power loss drop (sign folded into the gap, negative for LR decreases)
  ``LD(s) = Σ_{k=1}^{s} (η_k − η_{k−1}) · G(η_k^(−γ) · (P[s] − P[k−1]))``,
  ``G(x) = 1 − (1 + C·x)^(−β)``; the law is ``L0 + A·S1^(−α) + B·LD``;
- annealing area (Tissue et al., docs/equations.md §7.1) ``S2(s) = Σ_{i=1}^{s} m_i``,
  ``m_i = λ·m_{i−1} + Δ_i``, ``m_0 = 0``, with ``Δ_i = η_{i−1} − η_i`` counted only after
  warmup (for ``i`` past the first step at the peak LR; docs/equations.md §7.1).

Only the *evaluation* steps may be sub-sampled; the LR sequence is always used in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

__all__ = [
    "Block",
    "CurveData",
    "annealing_areas",
    "check_curve",
    "loss_drop",
    "prepare_curve",
]

_BLOCK_ELEMENTS = 1_000_000  # evaluation steps × LR changes per numpy block (bounds memory)
_MIN_BLOCKS = 16  # row blocks per curve at least, so the triangle's empty half is mostly skipped
_SMALL_ELEMENTS = 100_000  # below this, one block: per-block Python overhead would dominate
_CACHE_ELEMENTS = 8_000_000  # cache a curve's log areas up to this size (64 MB) when fitting
_TINY_LOG = float(np.log(np.finfo(np.float64).tiny))  # log η for η = 0 (η^(−γ) → huge, finite)


@dataclass(frozen=True)
class Block:
    """Rows ``lo:hi`` of the (m, K) triangle; only its first ``cols`` columns have k ≤ s."""

    lo: int
    hi: int
    cols: int
    log_area: np.ndarray | None  # (hi − lo, cols) cached, or None (recomputed on use)


@dataclass(frozen=True)
class CurveData:
    """One curve's precomputed schedule terms at its evaluation steps (sorted ascending)."""

    steps: np.ndarray  # (m,) int evaluation steps, ascending
    log_loss: np.ndarray  # (m,) log of the measured loss (empty when only predicting)
    s1: np.ndarray  # (m,) forward area P[s]
    k: np.ndarray  # (K,) indices k ≥ 1 of LR changes up to max(steps)
    gap: np.ndarray  # (K,) η_k − η_{k−1}
    p_before: np.ndarray  # (K,) P[k−1]
    log_eta: np.ndarray  # (K,) log η_k
    blocks: tuple[Block, ...]


def check_curve(name: str, lr_seq: object, steps: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated (lr_seq float64, steps int64) of one curve, or a ValueError naming it."""
    lr = np.asarray(lr_seq, dtype=np.float64)
    st = np.asarray(steps)
    if lr.ndim != 1 or len(lr) == 0:
        raise ValueError(f"{name} lr_seq must be a non-empty 1-D array, got shape {lr.shape}")
    if not np.isfinite(lr).all() or (lr < 0).any():
        bad = float(lr[~(np.isfinite(lr) & (lr >= 0))][0])
        raise ValueError(f"{name} lr_seq must be finite and >= 0, got {bad!r}")
    if st.ndim != 1 or len(st) == 0 or not np.issubdtype(st.dtype, np.integer):
        raise ValueError(
            f"{name} steps must be a non-empty 1-D integer array, got {st.dtype} {st.shape}"
        )
    if st.min() < 0 or st.max() >= len(lr):
        raise ValueError(
            f"{name} steps must be in [0, {len(lr)}) (the length of lr_seq), "
            f"got {int(st.min())}..{int(st.max())}"
        )
    p = np.cumsum(lr)
    if (p[st] <= 0).any():
        raise ValueError(
            f"{name} steps must have a positive LR area (sum of lr_seq up to the step), "
            f"got step {int(st[p[st] <= 0][0])} with area 0"
        )
    return lr, st.astype(np.int64)


def prepare_curve(
    lr: np.ndarray, steps: np.ndarray, loss: np.ndarray | None = None, *, cache: bool = False
) -> CurveData:
    """Precompute the terms of one curve (inputs already validated; steps must be ascending).

    With ``cache`` (for fitting, where LD is evaluated many times) the log areas are kept
    when they fit in ``_CACHE_ELEMENTS``.
    """
    p = np.cumsum(lr)
    gap = np.diff(lr)[: steps.max()]  # gap[k−1] = η_k − η_{k−1}, k = 1..max(steps)
    k = np.flatnonzero(gap) + 1
    with np.errstate(divide="ignore"):
        log_eta = np.maximum(np.log(lr[k]), _TINY_LOG)
    m = len(steps)
    if m * len(k) <= _SMALL_ELEMENTS:
        rows = max(m, 1)
    else:
        rows = max(1, min(-(-m // _MIN_BLOCKS), _BLOCK_ELEMENTS // max(len(k), 1)))
    spans = [(lo, min(lo + rows, m)) for lo in range(0, m, rows)]
    cols = [int(np.searchsorted(k, steps[hi - 1], side="right")) for _, hi in spans]
    keep = (
        cache
        and sum((hi - lo) * c for (lo, hi), c in zip(spans, cols, strict=True)) <= _CACHE_ELEMENTS
    )
    s1 = p[steps]
    blocks = tuple(
        Block(lo, hi, c, _log_area(s1[lo:hi], steps[lo:hi], k[:c], p[k[:c] - 1]) if keep else None)
        for (lo, hi), c in zip(spans, cols, strict=True)
    )
    return CurveData(
        steps=steps,
        log_loss=np.log(loss) if loss is not None else np.empty(0),
        s1=s1,
        k=k,
        gap=gap[k - 1],
        p_before=p[k - 1],
        log_eta=log_eta,
        blocks=blocks,
    )


def _log_area(s1: np.ndarray, steps: np.ndarray, k: np.ndarray, p_before: np.ndarray) -> np.ndarray:
    """log(P[s] − P[k−1]) for rows s and columns k; −inf where k > s (G = 0 there)."""
    area = s1[:, None] - p_before[None, :]
    live = (steps[:, None] >= k[None, :]) & (area > 0)
    with np.errstate(divide="ignore"):
        return np.where(live, np.log(np.where(live, area, 1.0)), -np.inf)


def loss_drop(
    curve: CurveData, C: float, beta: float, gamma: float, *, with_grad: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """LD at the curve's steps, and optionally d LD/d(log C, beta, gamma) as (3, m).

    Works block by block on the triangle of log LR areas ``log(P[s] − P[k−1])``; per element
    three transcendentals (x = C·η^−γ·area, log(1 + x), (1 + x)^−β).
    """
    m = len(curve.steps)
    ld = np.zeros(m)
    grad = np.zeros((3, m)) if with_grad else None
    shift = np.log(C) - gamma * curve.log_eta  # (K,)
    gap_log_eta = -curve.gap * curve.log_eta  # (K,) for d/dγ
    for blk in curve.blocks:
        if blk.cols == 0:
            continue
        sl, c = slice(blk.lo, blk.hi), blk.cols
        log_area = blk.log_area
        if log_area is None:
            log_area = _log_area(curve.s1[sl], curve.steps[sl], curve.k[:c], curve.p_before[:c])
        x = np.exp(np.minimum(log_area + shift[:c], 700.0))  # (b, c); 0 off the triangle
        l1p = np.log1p(x)
        h = np.exp(-beta * l1p)  # (1 + x)^−β
        ld[sl] = (1.0 - h) @ curve.gap[:c]
        if grad is not None:
            dg = beta * h * (x / (1.0 + x))  # dG/dlog x
            grad[0, sl] = dg @ curve.gap[:c]
            grad[1, sl] = (h * l1p) @ curve.gap[:c]
            grad[2, sl] = dg @ gap_log_eta[:c]
    return ld, grad


def annealing_areas(lr: np.ndarray, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-step (S1, S2) of the LR-annealing law for the whole ``lr`` sequence.

    ``m_i = λ·m_{i−1} + Δ_i`` is a first-order IIR filter (``lfilter``), ``S2 = cumsum(m)``.
    """
    delta = np.zeros_like(lr)
    delta[1:] = lr[:-1] - lr[1:]
    delta[: int(np.argmax(lr)) + 1] = 0.0  # differences start after warmup (docs/equations.md §7.1)
    momentum = lfilter([1.0], [1.0, -decay], delta)
    return np.cumsum(lr), np.cumsum(momentum)
