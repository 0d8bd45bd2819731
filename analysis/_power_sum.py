"""The log-space "sum of power laws plus a constant" fit shared by the Chinchilla and data laws.

Model: ``L̂ = E + Σ_j A_j · x_j^(−κ_j)``, parametrised as docs/equations.md §8.1 does:
``θ = (c_1 … c_k, e, κ_1 … κ_k)`` with ``c_j = log A_j``, ``e = log E``, and

    log L̂ = LSE(c_1 − κ_1·log x_1, …, c_k − κ_k·log x_k, e)

minimising ``Σ_i Huber_δ(log L_i − log L̂_i)``. For the Chinchilla law (k = 2, x = (N, D)) this
is exactly the order ``(a, b, e, alpha, beta)`` of the Epoch notebook.

Why it is fast (the plain method runs scipy L-BFGS-B with finite differences from each of
4,500 starts): the objective of all starts is evaluated at once in numpy, only the best few are
polished, and the polish uses the exact gradient (the Huber loss is C¹, so L-BFGS-B converges
on it; a last run with ``ftol = 0`` and a tiny ``gtol`` takes the optimum to float precision).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from analysis._huber import huber, huber_psi

__all__ = [
    "batch_objective",
    "fit_from_starts",
    "log_predict",
    "objective_and_grad",
    "polish",
]

# L-BFGS-B settings. _LOOSE ranks the candidate starts (scipy's defaults); _TIGHT takes the
# winner to the bottom of its basin: the default ftol stops ~1e-8 (relative) above the optimum.
_LOOSE: dict[str, float] = {"maxiter": 15000}
_TIGHT: dict[str, float] = {"ftol": 0.0, "gtol": 1e-14, "maxiter": 20000, "maxcor": 30}
_MAX_BATCH_ELEMENTS = 2_000_000  # starts × points evaluated per numpy block (bounds memory)


def _split(theta: np.ndarray, k: int) -> tuple[np.ndarray, float, np.ndarray]:
    return theta[:k], theta[k], theta[k + 1 :]


def log_predict(theta: np.ndarray, logx: np.ndarray) -> np.ndarray:
    """log L̂ for one parameter vector; ``logx`` is (k, n) (log N; log D)."""
    k = logx.shape[0]
    c, e, kappa = _split(np.asarray(theta, dtype=np.float64), k)
    u = np.vstack([c[:, None] - kappa[:, None] * logx, np.full((1, logx.shape[1]), e)])  # (k+1, n)
    m = u.max(axis=0)
    return m + np.log(np.exp(u - m).sum(axis=0))


def objective_and_grad(
    theta: np.ndarray, logx: np.ndarray, log_loss: np.ndarray, delta: float
) -> tuple[float, np.ndarray]:
    """Σ Huber_δ(log L − log L̂) and its exact gradient with respect to θ."""
    k = logx.shape[0]
    c, e, kappa = _split(np.asarray(theta, dtype=np.float64), k)
    u = np.vstack([c[:, None] - kappa[:, None] * logx, np.full((1, logx.shape[1]), e)])  # (k+1, n)
    m = u.max(axis=0)
    w = np.exp(u - m)
    s = w.sum(axis=0)
    w /= s  # softmax weights: d log L̂ / d u_j
    r = log_loss - (m + np.log(s))
    psi = huber_psi(r, delta)
    pw = w * psi  # (k+1, n)
    grad = np.empty(2 * k + 1)
    grad[:k] = -pw[:k].sum(axis=1)  # d/dc_j
    grad[k] = -pw[k].sum()  # d/de
    grad[k + 1 :] = (pw[:k] * logx).sum(axis=1)  # d/dκ_j
    return float(huber(r, delta).sum()), grad


def batch_objective(
    thetas: np.ndarray, logx: np.ndarray, log_loss: np.ndarray, delta: float
) -> np.ndarray:
    """The objective of every row of ``thetas`` (S, 2k+1) at once, in bounded-memory blocks."""
    k, n = logx.shape
    out = np.empty(len(thetas))
    step = max(1, _MAX_BATCH_ELEMENTS // max(n, 1))
    for lo in range(0, len(thetas), step):
        th = thetas[lo : lo + step]
        c, e, kappa = th[:, :k], th[:, k], th[:, k + 1 :]
        u = c[:, :, None] - kappa[:, :, None] * logx[None]  # (S, k, n)
        m = np.maximum(u.max(axis=1), e[:, None])  # (S, n)
        s = np.exp(u - m[:, None, :]).sum(axis=1) + np.exp(e[:, None] - m)
        out[lo : lo + step] = huber(log_loss - (m + np.log(s)), delta).sum(axis=1)
    return out


def polish(
    theta0: np.ndarray,
    logx: np.ndarray,
    log_loss: np.ndarray,
    delta: float,
    *,
    bounds: list[tuple[float | None, float | None]] | None = None,
    tight: bool = False,
) -> tuple[np.ndarray, float]:
    """L-BFGS-B with the exact gradient from ``theta0``; returns (θ, objective)."""
    res = minimize(
        objective_and_grad,
        np.asarray(theta0, dtype=np.float64),
        args=(logx, log_loss, delta),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options=_TIGHT if tight else _LOOSE,
    )
    return res.x, float(res.fun)


def fit_from_starts(
    starts: np.ndarray,
    logx: np.ndarray,
    log_loss: np.ndarray,
    delta: float,
    *,
    n_polish: int,
    bounds: list[tuple[float | None, float | None]] | None = None,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Best optimum reached from the ``n_polish`` starts with the lowest objective.

    Every candidate within 1e-6 (relative) of the best loose optimum is polished tightly, so
    that two starts in one flat basin cannot swap the winner by stopping noise.

    Returns:
        (θ, objective, the start θ came from).
    """
    values = batch_objective(starts, logx, log_loss, delta)
    order = np.argsort(values, kind="stable")[: max(1, n_polish)]
    loose = [polish(starts[i], logx, log_loss, delta, bounds=bounds) for i in order]
    best_loose = min(f for _, f in loose)
    best: tuple[np.ndarray, float, np.ndarray] | None = None
    for i, (theta, f) in zip(order, loose, strict=True):
        if f > best_loose * (1 + 1e-6):
            continue
        theta, f = polish(theta, logx, log_loss, delta, bounds=bounds, tight=True)
        if best is None or f < best[1]:
            best = (theta, f, starts[i])
    if best is None:  # unreachable: the loose winner itself always passes the filter
        raise RuntimeError("no start was polished")
    return best
