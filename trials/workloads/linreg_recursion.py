"""Power-law linear regression: the problem instance and its exact expected-risk recursion.

ALGORITHMS.md §5 / ALGORITHMS-NOTES.md §5.7 (Meterez et al. 2026, arXiv 2602.03702, code
``synthetics/figure3_exact_recursion.py``): ``H = diag(lambda_i)``, ``lambda_i = i^(-a)``;
``(w*_i)^2 = i^(-(b - a))`` so ``lambda_i (w*_i)^2 = i^(-b)``; ``w*_i > 0``; ``w_0 = 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["power_law_problem", "expected_risk_recursion"]


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

    which for ``B = 1`` is ALGORITHMS.md §5's recursion. ``R = 1/2 sum_i l_i s_i``.

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
