"""Loss-curve laws across LR schedules: fit on a few curves, predict any schedule (NOTES §7).

- :func:`fit_multi_power` — the multi-power law (Luo et al. 2025, arXiv 2503.12811, §7.2)
  ``L(s) = L0 + A·S1(s)^(−α) + B·LD(s)`` with the reference code's index convention (see
  ``analysis._curve_terms``);
- :func:`fit_lr_annealing` — the LR-annealing law (Tissue et al. 2024, arXiv 2408.11029, §7.1)
  ``L(s) = L0 + A·S1(s)^(−α) − C·S2(s)``, ``m_0 = 0``, λ = 0.999 by default;
- :func:`prediction_error` — how well a prediction matches a measured curve.

Each curve is ``(lr_seq, steps, losses)``: the LR of every update from step 0 (warmup
included, in the units used at predict time — the fitted B, C, γ depend on them), the logged
steps (any sub-sample) and the losses there.

Fitting (both laws): ``Σ Huber_δ(log L − log L̂)``, δ = 1e-3, summed over all points of all
curves, float64. Unlike the references (AdamW for the multi-power law; L-BFGS-B with numeric
gradients for the annealing law) we minimise that same objective with scipy's trust-region
``least_squares(loss="huber", f_scale=δ)`` and the exact Jacobian (see :func:`_minimise`),
from a small grid of starts in which the parameters that enter linearly (L0, A and B or C) are
not gridded but solved by non-negative least squares for each grid point of the others; the
``n_polish`` starts with the lowest objective are optimised and the best optimum is kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares, nnls

from analysis._curve_terms import annealing_areas as _annealing_areas
from analysis._curve_terms import check_curve, loss_drop, prepare_curve
from analysis._huber import as_positive_array, check_delta, check_same_length, huber

__all__ = [
    "LRAnnealingFit",
    "MultiPowerFit",
    "annealing_areas",
    "fit_lr_annealing",
    "fit_multi_power",
    "prediction_error",
]

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
_TOLERANCES: dict[str, float] = {"ftol": 1e-15, "xtol": 1e-15, "gtol": 1e-15, "max_nfev": 2000}
_SCREEN_NFEV = 40  # evaluations each start gets before only the best _KEEP go on
_KEEP = 2
_PENALTY_LOG = 1e3  # |residual| where a prediction is <= 0 (the log is undefined)
_MPL_NAMES = ("L0", "A", "alpha", "B", "C", "beta", "gamma")
_ANNEALING_NAMES = ("L0", "A", "alpha", "C")


@dataclass(frozen=True, kw_only=True)
class MultiPowerFit:
    """A fitted multi-power law ``L(s) = L0 + A·S1^(−α) + B·LD(s)`` (NOTES §7.2).

    Attributes:
        L0, A, alpha, B, C, beta, gamma: the law's parameters (LR units as fitted).
        objective: Σ Huber_δ(log L − log L̂) over all fitted points.
        n_points: points fitted, over all curves.
        start: the start that reached the optimum.
        delta: the Huber threshold used.
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


def _check_curves(curves: Sequence[Curve], delta: float) -> tuple[list[tuple], float]:
    if len(curves) == 0:
        raise ValueError("curves must hold at least one (lr_seq, steps, losses) tuple, got 0")
    out = []
    for i, item in enumerate(curves):
        if len(item) != 3:
            raise ValueError(f"curves[{i}] must be (lr_seq, steps, losses), got {len(item)} items")
        lr, st = check_curve(f"curves[{i}]", item[0], item[1])
        loss = as_positive_array(f"curves[{i}] losses", item[2])
        check_same_length((f"curves[{i}] steps", f"curves[{i}] losses"), (st, loss))
        out.append((lr, st, loss))
    return out, check_delta(delta)


def _log_residuals(
    preds: list[np.ndarray], dpreds: list[np.ndarray], log_losses: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals log L − log L̂ over all curves, and their Jacobian (n, p) in θ.

    A prediction <= 0 has no log: it gets a residual of −_PENALTY_LOG (a huge Huber loss the
    trust region backs away from) and a zero Jacobian row (NOTES §7.1: "a large penalty").
    """
    pred, dpred = np.concatenate(preds), np.hstack(dpreds)
    ok = pred > 0
    safe = np.where(ok, pred, 1.0)
    r = np.where(ok, np.concatenate(log_losses) - np.log(safe), -_PENALTY_LOG)
    jac = np.where(ok[:, None], -(dpred / safe).T, 0.0)
    return r, jac


def _minimise(
    residuals: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    starts: list[np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
    delta: float,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Minimise Σ Huber_δ(r(θ)) from each start; returns (θ, objective, winning start).

    scipy's ``least_squares(loss="huber", f_scale=δ)`` has cost ½·Σ δ²·ρ(r²/δ²) with
    ρ(z) = z (z ≤ 1) or 2√z − 1, which is exactly Σ Huber_δ(r); its trust-region reflective
    method uses the Jacobian (Gauss-Newton curvature). On noiseless multi-power curves it
    reaches an objective of ~1e-30 in a few hundred evaluations; L-BFGS-B on this badly scaled
    7-parameter problem stalled near 1e-8 at several times the cost.
    """
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def both(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = theta.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = residuals(theta)
        return cache[key]

    def run(x0: np.ndarray, **options: float) -> tuple[np.ndarray, float]:
        res = least_squares(
            lambda th: both(th)[0],
            np.clip(x0, *bounds),
            jac=lambda th: both(th)[1],
            bounds=bounds,
            loss="huber",
            f_scale=delta,
            x_scale="jac",
            **(_TOLERANCES | options),
        )
        return res.x, float(huber(both(res.x)[0], delta).sum())

    # Screen every start for a few dozen evaluations, then converge the _KEEP most promising.
    screened = sorted(
        ((*run(s, max_nfev=_SCREEN_NFEV), i) for i, s in enumerate(starts)), key=lambda t: t[1]
    )
    finals = [(*run(x), i) for x, _, i in screened[:_KEEP]]
    theta, objective, i = min(finals, key=lambda t: t[1])
    return theta, objective, starts[i]


def _best_starts(rows: list[np.ndarray], scores: list[float], n: int) -> list[np.ndarray]:
    return [rows[i] for i in np.argsort(scores, kind="stable")[:n]]


def _score(pred: np.ndarray, log_loss: np.ndarray, delta: float) -> float:
    """The objective of a grid start from its predictions (inf where one is <= 0)."""
    if (pred <= 0).any():
        return float("inf")
    return float(huber(log_loss - np.log(pred), delta).sum())


def _nnls_start(columns: list[np.ndarray], loss: np.ndarray) -> np.ndarray:
    coef, _ = nnls(np.column_stack(columns), loss)
    return np.maximum(coef, 1e-10 * loss.mean())


def fit_multi_power(
    curves: Sequence[Curve], *, delta: float = 1e-3, n_polish: int = 4
) -> MultiPowerFit:
    """Fit the multi-power law to one or more training curves (NOTES §7.2).

    Starts: α ∈ {0.2, …, 1.0} × C ∈ {0.5, 2, 8} × β ∈ {0.3, 0.6} × γ ∈ {0.3, 0.6}, with
    (L0, A, B) solved by non-negative least squares on the loss for each; the ``n_polish``
    with the lowest objective are optimised over all 7 parameters (in log space for L0, A, B, C;
    exponents bounded to [0, 10]).

    Args:
        curves: ``(lr_seq, steps, losses)`` per training curve.
        delta: Huber threshold on log-loss residuals.
        n_polish: how many of the best grid starts are optimised.

    Returns:
        The fit with its objective and the winning start.

    Raises:
        ValueError: a malformed curve (the message names ``curves[i]`` and the field).
    """
    checked, delta = _check_curves(curves, delta)
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
                    [
                        np.full_like(ld, l0),
                        power,
                        -power * np.log(cd.s1),
                        b * ld,
                        b * dld[0],
                        b * dld[1],
                        b * dld[2],
                    ]
                )
            )  # (7, m)
        return _log_residuals(preds, dpreds, [cd.log_loss for cd in data])

    s1_all = np.concatenate([cd.s1 for cd in data])
    log_loss_all = np.concatenate([cd.log_loss for cd in data])
    loss_all = np.exp(log_loss_all)
    rows, scores = [], []
    for c, beta, gamma in itertools.product((0.5, 2.0, 8.0), (0.3, 0.6), (0.3, 0.6)):
        ld_all = np.concatenate([loss_drop(cd, c, beta, gamma)[0] for cd in data])
        for alpha in (0.2, 0.4, 0.6, 0.8, 1.0):
            l0, a, b = _nnls_start([np.ones_like(s1_all), s1_all**-alpha, ld_all], loss_all)
            rows.append(np.array([np.log(l0), np.log(a), alpha, np.log(b), np.log(c), beta, gamma]))
            scores.append(_score(l0 + a * s1_all**-alpha + b * ld_all, log_loss_all, delta))
    bounds = (
        np.array([-np.inf, -np.inf, 0.0, -np.inf, -np.inf, 0.0, 0.0]),
        np.array([np.inf, np.inf, 10.0, np.inf, np.inf, 10.0, 10.0]),
    )
    starts = _best_starts(rows, scores, n_polish)
    theta, objective, start = _minimise(residuals, starts, bounds, delta)
    p = dict(zip(_MPL_NAMES, _mpl_values(theta), strict=True))
    return MultiPowerFit(
        **p,
        objective=objective,
        n_points=len(loss_all),
        start=dict(zip(_MPL_NAMES, _mpl_values(start), strict=True)),
        delta=delta,
    )


def _mpl_values(theta: np.ndarray) -> list[float]:
    l0, a, alpha, b, c, beta, gamma = (float(x) for x in theta)
    return [
        float(np.exp(l0)),
        float(np.exp(a)),
        alpha,
        float(np.exp(b)),
        float(np.exp(c)),
        beta,
        gamma,
    ]


def fit_lr_annealing(
    curves: Sequence[Curve], *, decay: float = 0.999, delta: float = 1e-3, n_polish: int = 3
) -> LRAnnealingFit:
    """Fit the LR-annealing law to one or more training curves (NOTES §7.1).

    Starts: α ∈ {0.1, 0.2, …, 1.2} with (L0, A, C) solved by non-negative least squares for
    each; the ``n_polish`` best are optimised with bounds L0, A, C ≥ 0, α ∈ [0, 10].

    Args:
        curves: ``(lr_seq, steps, losses)`` per training curve.
        decay: λ of the annealing momentum, in (0, 1).
        delta: Huber threshold on log-loss residuals.
        n_polish: how many of the best grid starts are optimised.

    Returns:
        The fit with its objective and the winning start.

    Raises:
        ValueError: a malformed curve, or ``decay`` outside (0, 1).
    """
    checked, delta = _check_curves(curves, delta)
    if not 0 < decay < 1:
        raise ValueError(f"decay must be in (0, 1), got {decay!r}")
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
        return _log_residuals(preds, dpreds, log_losses)

    loss_all, s1_all, s2_all = (np.concatenate(x) for x in ([loss for *_, loss in checked], s1, s2))
    rows, scores = [], []
    for alpha in np.arange(1, 13) / 10:
        l0, a, c = _nnls_start([np.ones_like(s1_all), s1_all**-alpha, -s2_all], loss_all)
        rows.append(np.array([l0, a, alpha, c]))
        scores.append(_score(l0 + a * s1_all**-alpha - c * s2_all, np.log(loss_all), delta))
    bounds = (np.zeros(4), np.array([np.inf, np.inf, 10.0, np.inf]))
    starts = _best_starts(rows, scores, n_polish)
    theta, objective, start = _minimise(residuals, starts, bounds, delta)
    return LRAnnealingFit(
        **dict(zip(_ANNEALING_NAMES, (float(x) for x in theta), strict=True)),
        decay=decay,
        objective=objective,
        n_points=len(loss_all),
        start=dict(zip(_ANNEALING_NAMES, (float(x) for x in start), strict=True)),
        delta=delta,
    )


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
