"""Scaling-law fits: the Chinchilla law L(N, D) and the data law L(D) of one model.

- :func:`fit_chinchilla` — ``L(N, D) = E + A/N^alpha + B/D^beta``, Hoffmann et al. 2022
  approach 3 exactly as Epoch AI replicated it (docs/equations.md §8.1–8.2):
  log-space LSE parametrisation, objective ``Σ Huber_δ(log L − log L̂)`` (a sum, δ = 1e-3),
  L-BFGS from the 4,500-point grid of starts, lowest objective wins. It reaches the same optimum
  as the plain method in well under a second (see ``analysis._power_sum`` for how, and
  ``benchmarks/chinchilla_fit.py`` for the comparison).
- :func:`fit_data_law` — ``L(D) = E + B/D^beta`` (docs/equations.md §8.3), same objective, bounded
  ``E ∈ (0, min L)``.

Both report the objective, the winning start and, with ``bootstrap > 0``, percentile confidence
intervals from refits on data points resampled with replacement; derived quantities (the
compute-optimal exponents) are computed per replicate, not from the point estimate
(docs/equations.md §8.4), and the replicates are kept so a prediction band can be drawn
(:meth:`DataLawFit.band`).

Honesty (:mod:`analysis.fit_checks`): a law of p parameters is refused on fewer than p + 1
points (:class:`~analysis.fit_checks.FitRefused`), and a fit whose ``E`` or an exponent sits on a
bound carries a ``flags`` entry saying so. Every fit runs with one BLAS thread
(:mod:`analysis._threads`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from analysis._huber import as_positive_array, check_delta, check_same_length
from analysis._power_sum import fit_from_starts, polish
from analysis._threads import single_threaded
from analysis.fit_checks import flag_bounds, require_points
from analysis.scaling_fits import ChinchillaFit, DataLawFit

__all__ = [
    "CHINCHILLA_GRID",
    "ChinchillaFit",
    "DataLawFit",
    "fit_chinchilla",
    "fit_data_law",
]

_ALPHAS = _BETAS = (0.0, 0.5, 1.0, 1.5, 2.0)
_ES = (-1.0, -0.5, 0.0, 0.5, 1.0)
_AS = _BS = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
CHINCHILLA_GRID: np.ndarray = np.array(
    [(a, b, e, al, be) for al, be, e, a, b in itertools.product(_ALPHAS, _BETAS, _ES, _AS, _BS)]
)
"""The 4,500 starts (a, b, e, alpha, beta) of Hoffmann et al. / the Epoch notebook, in its order."""


def _check_counts(n: int, n_params: int, bootstrap: int, ci_level: float, law: str) -> None:
    require_points(n, n_params, law)
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"bootstrap must be an integer >= 0, got {bootstrap!r}")
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level!r}")


def _bootstrap(
    refit: Callable[[np.ndarray], dict[str, float]],
    n: int,
    bootstrap: int,
    seed: int,
    ci_level: float,
    min_distinct: int,
) -> tuple[dict[str, tuple[float, float]], tuple[dict[str, float], ...]]:
    """Percentile intervals of every quantity ``refit(indices)`` returns over resampled points,
    and the replicates themselves.

    A resample with fewer than ``min_distinct`` distinct points (parameters + 1) cannot
    determine the law — it would be interpolated exactly — and is drawn again.
    """
    if bootstrap == 0:
        return {}, ()
    rng = np.random.default_rng(seed)
    rows: list[dict[str, float]] = []
    for _ in range(50 * bootstrap):
        idx = rng.integers(0, n, size=n)
        if len(np.unique(idx)) >= min_distinct:
            rows.append(refit(idx))
            if len(rows) == bootstrap:
                break
    tail = 100 * (1 - ci_level) / 2
    ci = {
        key: tuple(float(q) for q in np.percentile([r[key] for r in rows], [tail, 100 - tail]))
        for key in rows[0]
    }
    return ci, tuple(rows)


def _chinchilla_values(theta: np.ndarray) -> dict[str, float]:
    a, b, e, alpha, beta = (float(x) for x in theta)
    return {
        "E": float(np.exp(e)),
        "A": float(np.exp(a)),
        "B": float(np.exp(b)),
        "alpha": alpha,
        "beta": beta,
        "n_opt_exponent": beta / (alpha + beta),
        "d_opt_exponent": alpha / (alpha + beta),
    }


@single_threaded
def fit_chinchilla(
    N: np.ndarray,
    D: np.ndarray,
    loss: np.ndarray,
    *,
    delta: float = 1e-3,
    exclude_highest: int = 0,
    bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    n_polish: int = 32,
) -> ChinchillaFit:
    """Fit ``L(N, D) = E + A/N^alpha + B/D^beta`` by Chinchilla approach 3.

    All 4,500 grid starts (:data:`CHINCHILLA_GRID`) are scored at once; the ``n_polish`` best
    are run to convergence with L-BFGS-B and the exact gradient, and the winner is polished to
    float precision. Bootstrap refits start from the point estimate.

    Args:
        N: parameters per run.
        D: training tokens per run (C/(6N) for compute C).
        loss: final loss per run.
        delta: Huber threshold on log-loss residuals.
        exclude_highest: drop the k highest-loss points first, by Epoch AI's rule
            ``loss < sorted(loss)[-k]`` (ties with the k-th highest go too).
        bootstrap: number of bootstrap replicates for ``ci`` (0: none).
        seed: seed of the bootstrap resampling.
        ci_level: coverage of the percentile intervals.
        n_polish: how many of the best-scoring grid starts are optimised.

    Returns:
        The fit, with its objective, winning start and (optionally) confidence intervals.

    Raises:
        FitRefused: fewer than 6 points (5 parameters + 1).
        ValueError: inputs of different lengths, non-positive or non-finite values.
    """
    N, D, loss = (as_positive_array(k, v) for k, v in (("N", N), ("D", D), ("loss", loss)))
    check_same_length(("N", "D", "loss"), (N, D, loss))
    delta = check_delta(delta)
    if int(exclude_highest) != exclude_highest or not 0 <= exclude_highest < len(loss):
        raise ValueError(
            f"exclude_highest must be an integer in [0, {len(loss)}), got {exclude_highest!r}"
        )
    if exclude_highest:
        keep = loss < np.sort(loss)[-int(exclude_highest)]
        N, D, loss = N[keep], D[keep], loss[keep]
    _check_counts(len(loss), 5, bootstrap, ci_level, "L(N, D) = E + A/N^alpha + B/D^beta")

    logx, log_loss = np.vstack([np.log(N), np.log(D)]), np.log(loss)
    theta, objective, start = fit_from_starts(
        CHINCHILLA_GRID, logx, log_loss, delta, n_polish=n_polish
    )

    def refit(idx: np.ndarray) -> dict[str, float]:
        return _chinchilla_values(polish(theta, logx[:, idx], log_loss[idx], delta, tight=True)[0])

    values = _chinchilla_values(theta)
    ci, replicates = _bootstrap(refit, len(loss), int(bootstrap), seed, ci_level, 6)
    return ChinchillaFit(
        E=values["E"],
        A=values["A"],
        B=values["B"],
        alpha=values["alpha"],
        beta=values["beta"],
        objective=objective,
        n_points=len(loss),
        start=dict(zip(("a", "b", "e", "alpha", "beta"), (float(x) for x in start), strict=True)),
        delta=delta,
        ci=ci,
        n_bootstrap=len(replicates),
        flags=flag_bounds(
            E=values["E"],
            min_loss=float(loss.min()),
            exponents={"alpha": values["alpha"], "beta": values["beta"]},
        ),
        replicates=replicates,
    )


def _data_law_starts(log_d: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Starts (b, e, beta): beta ∈ {0.1, …, 1}, E ∈ {0.5, …, 0.95}·min L (docs/equations.md §8.3).

    b is not gridded but profiled: the least-squares b of log(L − E) = b − beta·log D, which
    puts every start on the data whatever the units of D.
    """
    rows = []
    for beta in np.arange(1, 11) / 10:
        for frac in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
            e = frac * loss.min()
            b = float(np.mean(np.log(loss - e) + beta * log_d))
            rows.append((b, np.log(e), beta))
    return np.array(rows)


@single_threaded
def fit_data_law(
    D: np.ndarray,
    loss: np.ndarray,
    *,
    delta: float = 1e-3,
    bootstrap: int = 0,
    seed: int = 0,
    ci_level: float = 0.95,
    n_polish: int = 8,
) -> DataLawFit:
    """Fit ``L(D) = E + B/D^beta`` for one model (docs/equations.md §8.3).

    Same objective as :func:`fit_chinchilla`; L-BFGS-B with bounds ``E ∈ (0, min L]``,
    ``beta ≥ 0`` from a grid of 60 starts (:func:`_data_law_starts`), the best ``n_polish``
    optimised. Bootstrap refits (resampled horizons) start from the point estimate.

    Args:
        D: tokens (or steps) at each horizon.
        loss: final loss at each horizon.
        delta: Huber threshold on log-loss residuals.
        bootstrap: number of bootstrap replicates for ``ci`` (0: none).
        seed: seed of the bootstrap resampling.
        ci_level: coverage of the percentile intervals.
        n_polish: how many of the best-scoring starts are optimised.

    Returns:
        The fit, with its objective, winning start and (optionally) confidence intervals.

    Raises:
        FitRefused: fewer than 4 points (3 parameters + 1).
        ValueError: inputs of different lengths, non-positive or non-finite values.
    """
    D, loss = as_positive_array("D", D), as_positive_array("loss", loss)
    check_same_length(("D", "loss"), (D, loss))
    delta = check_delta(delta)
    _check_counts(len(loss), 3, bootstrap, ci_level, "L(D) = E + B/D^beta")

    logx, log_loss = np.log(D)[None, :], np.log(loss)
    bounds: list[tuple[float | None, float | None]] = [
        (None, None),
        (None, float(np.log(loss.min()))),
        (0.0, None),
    ]
    starts = _data_law_starts(logx[0], loss)
    theta, objective, start = fit_from_starts(
        starts, logx, log_loss, delta, n_polish=n_polish, bounds=bounds
    )

    def values(th: np.ndarray) -> dict[str, float]:
        return {"E": float(np.exp(th[1])), "B": float(np.exp(th[0])), "beta": float(th[2])}

    def refit(idx: np.ndarray) -> dict[str, float]:
        sub_bounds = [bounds[0], (None, float(log_loss[idx].min())), bounds[2]]
        th0 = np.minimum(theta, [np.inf, sub_bounds[1][1], np.inf])  # type: ignore[list-item]
        return values(
            polish(th0, logx[:, idx], log_loss[idx], delta, bounds=sub_bounds, tight=True)[0]
        )

    point = values(theta)
    ci, replicates = _bootstrap(refit, len(loss), int(bootstrap), seed, ci_level, 4)
    return DataLawFit(
        E=point["E"],
        B=point["B"],
        beta=point["beta"],
        objective=objective,
        n_points=len(loss),
        start=dict(zip(("b", "e", "beta"), (float(x) for x in start), strict=True)),
        delta=delta,
        ci=ci,
        n_bootstrap=len(replicates),
        flags=flag_bounds(
            E=point["E"], min_loss=float(loss.min()), exponents={"beta": point["beta"]}
        ),
        replicates=replicates,
    )
