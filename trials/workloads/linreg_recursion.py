"""Power-law linear regression: the problem instance and its exact expected-risk recursions
(of the last SGD iterate, and of a running average of the iterates).

docs/equations.md §10, §5.7 (Meterez et al. 2026, arXiv 2602.03702, code
``synthetics/figure3_exact_recursion.py``): ``H = diag(lambda_i)``, ``lambda_i = i^(-a)``;
``(w*_i)^2 = i^(-(b - a))`` so ``lambda_i (w*_i)^2 = i^(-b)``; ``w*_i > 0``; ``w_0 = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["averaged_risk_recursion", "expected_risk_recursion", "power_law_problem"]


def power_law_problem(dim: int, capacity: float, source: float) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(lam, w_star)`` in float64: ``lam_i = i^-a``, ``w*_i = i^(-(b - a)/2)``, i = 1..dim."""
    i = np.arange(1, dim + 1, dtype=np.float64)
    return i ** (-capacity), i ** (-(source - capacity) / 2.0)


def expected_risk_recursion(
    lrs: Sequence[float] | np.ndarray, *, dim: int, capacity: float, source: float, noise: float,
    batch_size: int = 1,
) -> np.ndarray:
    """Exact expected excess risk ``E R(w_t)`` of the last SGD iterate, t = 0 .. len(lrs).

    SGD on ``1/2 mean_k (<w, x_k> - y_k)^2`` over a batch of ``B`` fresh Gaussian samples, from
    ``w_0 = 0``, with learning rate ``lrs[t]`` for update ``t``. Only the diagonal second moments
    ``s_i = E (w_i - w*_i)^2`` are needed (Isserlis: ``E[x x^T V x x^T] = 2 H V H + tr(HV) H``,
    whose diagonal involves only ``diag V``), and they evolve exactly as

        s_i <- (1 - 2 eta l_i + (1 + 1/B) eta^2 l_i^2) s_i + (eta^2 / B) l_i (sum_j l_j s_j + sigma^2)

    which for ``B = 1`` is docs/equations.md §10's recursion. ``R = 1/2 sum_i l_i s_i``.

    Returns:
        float64 array of length ``len(lrs) + 1``; entry ``t`` is the risk after ``t`` updates.
    """
    lam, w_star = power_law_problem(dim, capacity, source)
    s = w_star**2  # w_0 = 0
    sigma2 = float(noise) ** 2
    inv_b = 1.0 / batch_size
    lrs = np.asarray(lrs, dtype=np.float64)
    risks = np.empty(len(lrs) + 1)
    weighted = float(lam @ s)
    risks[0] = 0.5 * weighted
    lam2 = lam * lam
    for t, eta in enumerate(lrs):
        s = (1.0 - 2.0 * eta * lam + (1.0 + inv_b) * eta * eta * lam2) * s \
            + (eta * eta * inv_b) * lam * (weighted + sigma2)
        weighted = float(lam @ s)
        risks[t + 1] = 0.5 * weighted
    return risks


def averaged_risk_recursion(
    lrs: Sequence[float] | np.ndarray, eval_steps: Sequence[int], *, dim: int, capacity: float,
    source: float, noise: float, batch_size: int = 1, q: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected excess risk of the last iterate and of the polynomial average of iterates.

    The average is the one :class:`trials.averaging.Poly` keeps: over the iterates ``w_1 .. w_t``
    (after each update; ``w_0`` excluded), iterate ``w_j`` weighted by
    ``alpha_j = Gamma(j + q) / Gamma(j)`` (``q = 0``: the uniform mean). With ``e_t = w_t - w*``,
    ``E[e_t | e_s] = P(s, t) e_s`` where ``P(s, t) = prod_{k=s}^{t-1} (I - eta_k H)`` (each update
    is unbiased), and ``H`` is diagonal, so the averaged error's diagonal second moments need only
    the diagonal ``s_i(t) = E e_{t,i}^2`` of :func:`expected_risk_recursion`:

        E ebar_i^2 = (1/Z^2) [sum_t alpha_t^2 s_i(t) + 2 sum_{s<t} alpha_s alpha_t P_i(s, t) s_i(s)]

    accumulated in one pass with ``V_i(t) = sum_{s<t} alpha_s P_i(s, t) s_i(s)``,
    ``V_i(t+1) = (1 - eta_t l_i)(V_i(t) + alpha_t s_i(t))``; ``Z = sum_t alpha_t``.

    Args:
        lrs: learning rate of update ``t`` (shape ``(T,)``), or several schedules at once
            (shape ``(k, T)``, rows independent; one pass serves them all).
        eval_steps: numbers of updates (in ``[1, T]``) at which to report.
        dim, capacity, source, noise, batch_size: the problem, as :func:`expected_risk_recursion`.
        q: the averaging order (``>= 0``).

    Returns:
        ``(last, averaged)``: float64 arrays of shape ``(len(eval_steps),)`` (or
        ``(k, len(eval_steps))`` for 2-D ``lrs``): ``E R(w_t)`` and ``E R(wbar_t)``.
    """
    rates = np.asarray(lrs, dtype=np.float64)
    single = rates.ndim == 1
    rates = np.atleast_2d(rates)
    k, horizon = rates.shape
    wanted = sorted(set(int(t) for t in eval_steps))
    if not wanted or wanted[0] < 1 or wanted[-1] > horizon:
        raise ValueError(f"eval_steps must lie in [1, {horizon}], got {list(eval_steps)!r}")
    if q < 0:
        raise ValueError(f"q must be >= 0, got {q!r}")
    lam, w_star = power_law_problem(dim, capacity, source)
    lam2 = lam * lam
    sigma2 = float(noise) ** 2
    inv_b = 1.0 / batch_size
    s = np.tile(w_star**2, (k, 1))  # E e_0^2, w_0 = 0      (k, d)
    cross = np.zeros((k, dim))  # V(t)                      (k, d)
    acc = np.zeros((k, dim))  # sum over absorbed alpha (alpha s + 2 V)
    z = 0.0
    index = {t: n for n, t in enumerate(wanted)}
    last = np.empty((k, len(wanted)))
    averaged = np.empty((k, len(wanted)))
    for t in range(horizon):
        eta = rates[:, t : t + 1]  # (k, 1)
        weighted = s @ lam  # (k,)
        cross *= 1.0 - eta * lam
        s = (1.0 - 2.0 * eta * lam + (1.0 + inv_b) * eta * eta * lam2) * s \
            + (eta * eta * inv_b) * lam * (weighted[:, None] + sigma2)
        alpha = 1.0 if q == 0 else math.exp(math.lgamma(t + 1 + q) - math.lgamma(t + 1))
        acc += alpha * (alpha * s + 2.0 * cross)
        cross += alpha * s
        z += alpha
        n = index.get(t + 1)
        if n is not None:
            last[:, n] = 0.5 * (s @ lam)
            averaged[:, n] = 0.5 * (acc @ lam) / (z * z)
    order = [index[int(t)] for t in eval_steps]
    last, averaged = last[:, order], averaged[:, order]
    return (last[0], averaged[0]) if single else (last, averaged)
