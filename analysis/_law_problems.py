"""The fitting problems of the loss-curve laws: residuals with their exact Jacobian, the grid
of starts (linear parameters solved by non-negative least squares), bounds, and the maps
between the parameter vector θ and the fit objects of :mod:`analysis.curves`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analysis._curve_fit import Curve, best_starts, check_curves, log_residuals, nnls_start, score
from analysis._curve_terms import annealing_areas, loss_drop, prepare_curve
from analysis.fit_checks import require_points

if TYPE_CHECKING:
    from analysis.curves import LRAnnealingFit, MultiPowerFit

__all__ = ["EXPONENT_MAX", "MPL_NAMES", "Problem", "annealing_problem", "mpl_flags", "mpl_problem"]

EXPONENT_MAX = 10.0
MPL_NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
_ANNEALING_NAMES = ("L0", "A", "alpha", "C")


@dataclass(frozen=True)
class Problem:
    """One law's fitting problem on given curves: residuals, grid starts, bounds, θ ↔ fit."""

    residuals: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    starts: list[np.ndarray]
    bounds: tuple[np.ndarray, np.ndarray]
    to_fit: Callable[[np.ndarray, float, np.ndarray], MultiPowerFit | LRAnnealingFit]
    to_theta: Callable[[MultiPowerFit | LRAnnealingFit], np.ndarray]
    n_points: int
    delta: float


def _flags(values: dict[str, float], exponents: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for name in exponents:
        v = values[name]
        if v < 1e-3:
            out.append(f"{name} ≈ 0 ({v:.3g}): the exponent sits on its lower bound")
        elif v > EXPONENT_MAX * (1 - 1e-6):
            out.append(f"{name} = {v:.3g}: the exponent sits on its upper bound {EXPONENT_MAX:g}")
    return tuple(out)


def mpl_flags(values: dict[str, float]) -> tuple[str, ...]:
    """The bound flags of multi-power-law parameters (its exponents α, β, γ)."""
    return _flags(values, ("alpha", "beta", "gamma"))


def mpl_problem(curves: Sequence[Curve], delta: float, n_polish: int) -> Problem:
    checked, delta = check_curves(curves, delta)
    n_points = sum(len(c[1]) for c in checked)
    require_points(n_points, 7, "the multi-power law")
    data = []
    for lr, st, loss in checked:
        order = np.argsort(st, kind="stable")
        data.append(prepare_curve(lr, st[order], loss[order], cache=True))

    def residuals(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_l0, log_a, alpha, log_b, log_c, beta, gamma = theta
        l0, a, b, c = np.exp([log_l0, log_a, log_b, log_c])
        preds, dpreds = [], []
        for cd in data:
            ld, dld = loss_drop(cd, c, beta, gamma, with_grad=True)
            power = a * cd.s1 ** (-alpha)
            preds.append(l0 + power + b * ld)
            dpreds.append(
                np.vstack(
                    [np.full_like(ld, l0), power, -power * np.log(cd.s1), b * ld,
                     b * dld[0], b * dld[1], b * dld[2]]
                )
            )  # (7, m)  # fmt: skip
        return log_residuals(preds, dpreds, [cd.log_loss for cd in data])

    s1_all = np.concatenate([cd.s1 for cd in data])
    log_loss_all = np.concatenate([cd.log_loss for cd in data])
    loss_all = np.exp(log_loss_all)
    rows, scores = [], []
    for c, beta, gamma in itertools.product((0.5, 2.0, 8.0), (0.3, 0.6), (0.3, 0.6)):
        ld_all = np.concatenate([loss_drop(cd, c, beta, gamma)[0] for cd in data])
        for alpha in (0.2, 0.4, 0.6, 0.8, 1.0):
            l0, a, b = nnls_start([np.ones_like(s1_all), s1_all**-alpha, ld_all], loss_all)
            rows.append(np.array([np.log(l0), np.log(a), alpha, np.log(b), np.log(c), beta, gamma]))
            scores.append(score(l0 + a * s1_all**-alpha + b * ld_all, log_loss_all, delta))
    bounds = (
        np.array([-np.inf, -np.inf, 0.0, -np.inf, -np.inf, 0.0, 0.0]),
        np.array([np.inf, np.inf, EXPONENT_MAX, np.inf, np.inf, EXPONENT_MAX, EXPONENT_MAX]),
    )

    def values(theta: np.ndarray) -> dict[str, float]:
        l0, a, alpha, b, c, beta, gamma = (float(x) for x in theta)
        return dict(
            zip(
                MPL_NAMES,
                [np.exp(l0), np.exp(a), alpha, np.exp(b), np.exp(c), beta, gamma],
                strict=True,
            )
        )

    def to_fit(theta: np.ndarray, objective: float, start: np.ndarray) -> MultiPowerFit:
        from analysis.curves import MultiPowerFit

        p = values(theta)
        return MultiPowerFit(
            **{k: float(v) for k, v in p.items()},
            objective=objective,
            n_points=n_points,
            start={k: float(v) for k, v in values(start).items()},
            delta=delta,
            flags=mpl_flags(p),
        )

    def to_theta(fit: MultiPowerFit) -> np.ndarray:
        return np.array(
            [
                np.log(fit.L0),
                np.log(fit.A),
                fit.alpha,
                np.log(fit.B),
                np.log(fit.C),
                fit.beta,
                fit.gamma,
            ]
        )

    return Problem(
        residuals, best_starts(rows, scores, n_polish), bounds, to_fit, to_theta, n_points, delta
    )


def annealing_problem(
    curves: Sequence[Curve], delta: float, n_polish: int, decay: float
) -> Problem:
    checked, delta = check_curves(curves, delta)
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")
    n_points = sum(len(c[1]) for c in checked)
    require_points(n_points, 4, "the LR-annealing law")
    areas = [annealing_areas(lr, decay) for lr, _, _ in checked]
    s1 = [a[0][st] for a, (_, st, _) in zip(areas, checked, strict=True)]
    s2 = [a[1][st] for a, (_, st, _) in zip(areas, checked, strict=True)]
    log_losses = [np.log(loss) for _, _, loss in checked]

    def residuals(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        l0, a, alpha, c = theta
        preds, dpreds = [], []
        for x1, x2 in zip(s1, s2, strict=True):
            power = x1 ** (-alpha)
            preds.append(l0 + a * power - c * x2)
            dpreds.append(np.vstack([np.ones_like(x1), power, -a * power * np.log(x1), -x2]))
        return log_residuals(preds, dpreds, log_losses)

    loss_all, s1_all, s2_all = (np.concatenate(x) for x in ([loss for *_, loss in checked], s1, s2))
    rows, scores = [], []
    for alpha in np.arange(1, 13) / 10:
        l0, a, c = nnls_start([np.ones_like(s1_all), s1_all**-alpha, -s2_all], loss_all)
        rows.append(np.array([l0, a, alpha, c]))
        scores.append(score(l0 + a * s1_all**-alpha - c * s2_all, np.log(loss_all), delta))
    bounds = (np.zeros(4), np.array([np.inf, np.inf, EXPONENT_MAX, np.inf]))

    def to_fit(theta: np.ndarray, objective: float, start: np.ndarray) -> LRAnnealingFit:
        from analysis.curves import LRAnnealingFit

        p = dict(zip(_ANNEALING_NAMES, (float(x) for x in theta), strict=True))
        return LRAnnealingFit(
            **p,
            decay=decay,
            objective=objective,
            n_points=n_points,
            start=dict(zip(_ANNEALING_NAMES, (float(x) for x in start), strict=True)),
            delta=delta,
            flags=_flags(p, ("alpha",)),
        )

    def to_theta(fit: LRAnnealingFit) -> np.ndarray:
        return np.array([fit.L0, fit.A, fit.alpha, fit.C])

    return Problem(
        residuals, best_starts(rows, scores, n_polish), bounds, to_fit, to_theta, n_points, delta
    )
