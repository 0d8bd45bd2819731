"""Loss-curve laws across LR schedules: fit on a few curves, predict any schedule (NOTES §7).

- :func:`fit_multi_power` — the multi-power law (Luo et al. 2025, arXiv 2503.12811, §7.2)
  ``L(s) = L0 + A·S1(s)^(−α) + B·LD(s)`` with the reference code's index convention (see
  ``analysis._curve_terms``);
- :func:`fit_lr_annealing` — the LR-annealing law (Tissue et al. 2024, arXiv 2408.11029, §7.1)
  ``L(s) = L0 + A·S1(s)^(−α) − C·S2(s)``, ``m_0 = 0``, λ = 0.999 by default;
- :func:`law_optima` / :func:`refit` — every multi-start optimum, and a local refit from one
  (what leave-one-schedule-out selection in :mod:`analysis.curve_validation` needs);
- :func:`prediction_error` — how well a prediction matches a measured curve.

Each curve is ``(lr_seq, steps, losses)``: the LR of every update from step 0 (warmup
included, in the units used at predict time — the fitted B, C, γ depend on them), the logged
steps (any sub-sample) and the losses there.

Fitting (both laws): ``Σ Huber_δ(log L − log L̂)``, δ = 1e-3, summed over all points of all
curves, float64. Unlike the references (AdamW for the multi-power law; L-BFGS-B with numeric
gradients for the annealing law) we minimise that same objective with scipy's trust-region
``least_squares(loss="huber", f_scale=δ)`` and the exact Jacobian
(:func:`analysis._curve_fit.minimise`), from a small grid of starts in which the parameters
that enter linearly (L0, A and B or C) are not gridded but solved by non-negative least squares
for each grid point of the others; the ``n_polish`` starts with the lowest objective are
screened and the ``keep`` best converged. A law of p parameters is refused on fewer than p + 1
points (:class:`analysis.fit_checks.FitRefused`); exponents that end on a bound are flagged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from analysis._curve_fit import (
    Curve,
    Optimum,
    best_starts,
    check_curves,
    log_residuals,
    minimise,
    nnls_start,
    score,
)
from analysis._curve_terms import annealing_areas as _annealing_areas
from analysis._curve_terms import check_curve, loss_drop, prepare_curve
from analysis._huber import as_positive_array, check_same_length
from analysis._threads import single_threaded
from analysis.fit_checks import require_points

__all__ = [
    "LAWS",
    "LRAnnealingFit",
    "MultiPowerFit",
    "annealing_areas",
    "fit_lr_annealing",
    "fit_multi_power",
    "law_optima",
    "prediction_error",
    "refit",
]

_MPL_NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
_ANNEALING_NAMES = ("L0", "A", "alpha", "C")
_EXPONENT_MAX = 10.0


@dataclass(frozen=True, kw_only=True)
class MultiPowerFit:
    """A fitted multi-power law ``L(s) = L0 + A·S1^(−α) + B·LD(s)`` (NOTES §7.2).

    Attributes:
        L0, A, alpha, B, C, beta, gamma: the law's parameters (LR units as fitted).
        objective: Σ Huber_δ(log L − log L̂) over all fitted points.
        n_points: points fitted, over all curves.
        start: the start that reached the optimum.
        delta: the Huber threshold used.
        flags: exponents on a bound of [0, 10]; empty for a sound fit.
    """

    L0: float
    A: float
    alpha: float
    B: float
    C: float
    beta: float
    gamma: float
    objective: float = float("nan")
    n_points: int = 0
    start: dict[str, float] | None = None
    delta: float = 1e-3
    flags: tuple[str, ...] = ()

    def predict(self, lr_seq: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Loss at ``steps`` of a run with per-update LRs ``lr_seq`` (from step 0)."""
        lr, st = check_curve("predict", lr_seq, steps)
        order = np.argsort(st, kind="stable")
        curve = prepare_curve(lr, st[order])
        ld, _ = loss_drop(curve, self.C, self.beta, self.gamma)
        out = np.empty(len(st))
        out[order] = self.L0 + self.A * curve.s1 ** (-self.alpha) + self.B * ld
        return out

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form (JSON-serialisable)."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class LRAnnealingFit:
    """A fitted LR-annealing law ``L(s) = L0 + A·S1^(−α) − C·S2`` (NOTES §7.1).

    Attributes:
        L0, A, alpha, C: the law's parameters (LR units as fitted).
        decay: λ of the annealing momentum (fixed, not fitted).
        objective: Σ Huber_δ(log L − log L̂) over all fitted points.
        n_points: points fitted, over all curves.
        start: the start that reached the optimum.
        delta: the Huber threshold used.
        flags: exponents on a bound of [0, 10]; empty for a sound fit.
    """

    L0: float
    A: float
    alpha: float
    C: float
    decay: float = 0.999
    objective: float = float("nan")
    n_points: int = 0
    start: dict[str, float] | None = None
    delta: float = 1e-3
    flags: tuple[str, ...] = ()

    def predict(self, lr_seq: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Loss at ``steps`` of a run with per-update LRs ``lr_seq`` (from step 0)."""
        lr, st = check_curve("predict", lr_seq, steps)
        s1, s2 = _annealing_areas(lr, self.decay)
        return self.L0 + self.A * s1[st] ** (-self.alpha) - self.C * s2[st]

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form (JSON-serialisable)."""
        return asdict(self)


def annealing_areas(lr_seq: np.ndarray, decay: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """Per-step forward area S1 and annealing area S2 of the LR-annealing law (NOTES §7.1).

    ``S1(s) = Σ_{i≤s} η_i``; ``m_0 = 0``, ``m_i = λ·m_{i−1} + (η_{i−1} − η_i)`` with the
    differences counted only after the first step at the peak LR; ``S2(s) = Σ_{i≤s} m_i``.
    Closed form: ``S2(s) = Σ_k (η_{k−1} − η_k)·(1 − λ^(s−k+1))/(1 − λ)``.
    """
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")
    lr, _ = check_curve("annealing_areas", lr_seq, np.array([len(np.atleast_1d(lr_seq)) - 1]))
    return _annealing_areas(lr, decay)


@dataclass(frozen=True)
class _Problem:
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
        elif v > _EXPONENT_MAX * (1 - 1e-6):
            out.append(f"{name} = {v:.3g}: the exponent sits on its upper bound {_EXPONENT_MAX:g}")
    return tuple(out)


def _mpl_problem(curves: Sequence[Curve], delta: float, n_polish: int) -> _Problem:
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
        np.array([np.inf, np.inf, _EXPONENT_MAX, np.inf, np.inf, _EXPONENT_MAX, _EXPONENT_MAX]),
    )

    def values(theta: np.ndarray) -> dict[str, float]:
        l0, a, alpha, b, c, beta, gamma = (float(x) for x in theta)
        return dict(
            zip(
                _MPL_NAMES,
                [np.exp(l0), np.exp(a), alpha, np.exp(b), np.exp(c), beta, gamma],
                strict=True,
            )
        )

    def to_fit(theta: np.ndarray, objective: float, start: np.ndarray) -> MultiPowerFit:
        p = values(theta)
        return MultiPowerFit(
            **{k: float(v) for k, v in p.items()},
            objective=objective,
            n_points=n_points,
            start={k: float(v) for k, v in values(start).items()},
            delta=delta,
            flags=_flags(p, ("alpha", "beta", "gamma")),
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

    return _Problem(
        residuals, best_starts(rows, scores, n_polish), bounds, to_fit, to_theta, n_points, delta
    )


def _annealing_problem(
    curves: Sequence[Curve], delta: float, n_polish: int, decay: float
) -> _Problem:
    checked, delta = check_curves(curves, delta)
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")
    n_points = sum(len(c[1]) for c in checked)
    require_points(n_points, 4, "the LR-annealing law")
    areas = [_annealing_areas(lr, decay) for lr, _, _ in checked]
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
    bounds = (np.zeros(4), np.array([np.inf, np.inf, _EXPONENT_MAX, np.inf]))

    def to_fit(theta: np.ndarray, objective: float, start: np.ndarray) -> LRAnnealingFit:
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

    return _Problem(
        residuals, best_starts(rows, scores, n_polish), bounds, to_fit, to_theta, n_points, delta
    )


LAWS: dict[str, str] = {"multi_power": "multi-power law", "lr_annealing": "LR-annealing law"}
"""The curve laws by registry name."""


def _problem(
    law: str, curves: Sequence[Curve], delta: float, n_polish: int, decay: float
) -> _Problem:
    if law == "multi_power":
        return _mpl_problem(curves, delta, n_polish)
    if law == "lr_annealing":
        return _annealing_problem(curves, delta, n_polish, decay)
    raise ValueError(f"law must be one of {sorted(LAWS)}, got {law!r}")


@single_threaded
def law_optima(
    law: str,
    curves: Sequence[Curve],
    *,
    delta: float = 1e-3,
    n_polish: int = 4,
    keep: int = 3,
    decay: float = 0.999,
) -> list[MultiPowerFit | LRAnnealingFit]:
    """Every distinct optimum the multi-start search converges to, lowest objective first.

    Args:
        law: ``"multi_power"`` or ``"lr_annealing"`` (:data:`LAWS`).
        curves: ``(lr_seq, steps, losses)`` per training curve.
        delta: Huber threshold on log-loss residuals.
        n_polish: grid starts (lowest objective first) that are screened.
        keep: screened starts that are run to convergence.
        decay: λ of the annealing law (ignored by the multi-power law).

    Raises:
        FitRefused: fewer points than parameters + 1 over all curves.
        ValueError: a malformed curve (the message names ``curves[i]`` and the field).
    """
    prob = _problem(law, curves, delta, n_polish, decay)
    found: list[Optimum] = minimise(prob.residuals, prob.starts, prob.bounds, prob.delta, keep=keep)
    return [prob.to_fit(theta, obj, start) for theta, obj, start in found]


@single_threaded
def refit(
    fit: MultiPowerFit | LRAnnealingFit, curves: Sequence[Curve], *, delta: float | None = None
) -> MultiPowerFit | LRAnnealingFit:
    """``fit``'s law refitted to ``curves``, converged from ``fit``'s parameters (no grid).

    Raises:
        FitRefused: fewer points than parameters + 1 over all curves.
    """
    law = "multi_power" if isinstance(fit, MultiPowerFit) else "lr_annealing"
    decay = getattr(fit, "decay", 0.999)
    prob = _problem(law, curves, fit.delta if delta is None else delta, 1, decay)
    theta0 = prob.to_theta(fit)
    theta, obj, _ = minimise(prob.residuals, [theta0], prob.bounds, prob.delta, screen=False)[0]
    out = prob.to_fit(theta, obj, theta0)
    return replace(out, start=fit.start)


def fit_multi_power(
    curves: Sequence[Curve], *, delta: float = 1e-3, n_polish: int = 4, keep: int = 2
) -> MultiPowerFit:
    """Fit the multi-power law to one or more training curves (NOTES §7.2).

    Starts: α ∈ {0.2, …, 1.0} × C ∈ {0.5, 2, 8} × β ∈ {0.3, 0.6} × γ ∈ {0.3, 0.6}, with
    (L0, A, B) solved by non-negative least squares on the loss for each; the ``n_polish``
    with the lowest objective are screened and the ``keep`` best optimised over all 7
    parameters (in log space for L0, A, B, C; exponents bounded to [0, 10]); the lowest
    objective wins. (To choose by prediction instead, see
    :func:`analysis.curve_validation.select_curve_law`.)

    Raises:
        FitRefused: fewer than 8 points over all curves.
        ValueError: a malformed curve (the message names ``curves[i]`` and the field).
    """
    return law_optima("multi_power", curves, delta=delta, n_polish=n_polish, keep=keep)[0]


def fit_lr_annealing(
    curves: Sequence[Curve],
    *,
    decay: float = 0.999,
    delta: float = 1e-3,
    n_polish: int = 3,
    keep: int = 2,
) -> LRAnnealingFit:
    """Fit the LR-annealing law to one or more training curves (NOTES §7.1).

    Starts: α ∈ {0.1, 0.2, …, 1.2} with (L0, A, C) solved by non-negative least squares for
    each; the ``n_polish`` best are screened and the ``keep`` best optimised with bounds
    L0, A, C ≥ 0, α ∈ [0, 10].

    Raises:
        FitRefused: fewer than 5 points over all curves.
        ValueError: a malformed curve, or ``decay`` outside (0, 1).
    """
    return law_optima(
        "lr_annealing", curves, delta=delta, n_polish=n_polish, keep=keep, decay=decay
    )[0]


def prediction_error(pred: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """RMSE, mean and max absolute relative error, and R² of ``pred`` against ``measured``."""
    pred = np.asarray(pred, dtype=np.float64)
    measured = as_positive_array("measured", measured)
    check_same_length(("measured", "pred"), (measured, pred))
    resid = pred - measured
    rel = np.abs(resid) / measured
    total = float(((measured - measured.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt(np.mean(resid**2))),
        "mean_abs_rel_error": float(rel.mean()),
        "max_abs_rel_error": float(rel.max()),
        "r2": float(1 - (resid**2).sum() / total) if total > 0 else float("nan"),
    }
