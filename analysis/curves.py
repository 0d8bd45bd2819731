"""Loss-curve laws across LR schedules: fit on a few curves, predict any schedule (docs/equations.md §7).

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

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from analysis._curve_fit import (
    Curve,
    Optimum,
    minimise,
)
from analysis._curve_terms import annealing_areas as _annealing_areas
from analysis._curve_terms import check_curve, loss_drop, prepare_curve
from analysis._huber import as_positive_array, check_same_length
from analysis._law_problems import Problem, annealing_problem, mpl_problem
from analysis._threads import single_threaded

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


@dataclass(frozen=True, kw_only=True)
class MultiPowerFit:
    """A fitted multi-power law ``L(s) = L0 + A·S1^(−α) + B·LD(s)`` (docs/equations.md §7.2).

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
    """A fitted LR-annealing law ``L(s) = L0 + A·S1^(−α) − C·S2`` (docs/equations.md §7.1).

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
    """Per-step forward area S1 and annealing area S2 of the LR-annealing law (docs/equations.md §7.1).

    ``S1(s) = Σ_{i≤s} η_i``; ``m_0 = 0``, ``m_i = λ·m_{i−1} + (η_{i−1} − η_i)`` with the
    differences counted only after the first step at the peak LR; ``S2(s) = Σ_{i≤s} m_i``.
    Closed form: ``S2(s) = Σ_k (η_{k−1} − η_k)·(1 − λ^(s−k+1))/(1 − λ)``.
    """
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")
    lr, _ = check_curve("annealing_areas", lr_seq, np.array([len(np.atleast_1d(lr_seq)) - 1]))
    return _annealing_areas(lr, decay)


LAWS: dict[str, str] = {"multi_power": "multi-power law", "lr_annealing": "LR-annealing law"}
"""The curve laws by registry name."""


def _problem(
    law: str, curves: Sequence[Curve], delta: float, n_polish: int, decay: float
) -> Problem:
    if law == "multi_power":
        return mpl_problem(curves, delta, n_polish)
    if law == "lr_annealing":
        return annealing_problem(curves, delta, n_polish, decay)
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
    """Fit the multi-power law to one or more training curves (docs/equations.md §7.2).

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
    """Fit the LR-annealing law to one or more training curves (docs/equations.md §7.1).

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
