"""The fitting machinery shared by the loss-curve laws of :mod:`analysis.curves`.

Objective: ``Σ Huber_δ(log L − log L̂)`` over every point of every curve, minimised with scipy's
trust-region ``least_squares(loss="huber", f_scale=δ)`` and the exact Jacobian
(:func:`minimise`); every converged optimum is returned (not only the best), so that
:mod:`analysis.curve_validation` can choose among them by leave-one-schedule-out error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares, nnls

from analysis._curve_terms import check_curve
from analysis._huber import as_positive_array, check_delta, check_same_length, huber

__all__ = [
    "Curve",
    "Optimum",
    "best_starts",
    "check_curves",
    "log_residuals",
    "minimise",
    "nnls_start",
    "score",
]

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
Optimum = tuple[np.ndarray, float, np.ndarray]  # (θ, objective, the start it came from)
_TOLERANCES: dict[str, float] = {"ftol": 1e-8, "xtol": 1e-8, "gtol": 1e-8, "max_nfev": 300}
_SCREEN_NFEV = 40  # evaluations each start gets before only the best `keep` go on
_PENALTY_LOG = 1e3  # |residual| where a prediction is <= 0 (the log is undefined)


def check_curves(curves: Sequence[Curve], delta: float) -> tuple[list[tuple], float]:
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


def log_residuals(
    preds: list[np.ndarray], dpreds: list[np.ndarray], log_losses: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals log L − log L̂ over all curves, and their Jacobian (n, p) in θ.

    A prediction <= 0 has no log: it gets a residual of −_PENALTY_LOG (a huge Huber loss the
    trust region backs away from) and a zero Jacobian row (docs/equations.md §7.1: "a large
    penalty").
    """
    pred, dpred = np.concatenate(preds), np.hstack(dpreds)
    ok = pred > 0
    safe = np.where(ok, pred, 1.0)
    r = np.where(ok, np.concatenate(log_losses) - np.log(safe), -_PENALTY_LOG)
    jac = np.where(ok[:, None], -(dpred / safe).T, 0.0)
    return r, jac


def minimise(
    residuals: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    starts: list[np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
    delta: float,
    *,
    keep: int = 2,
    screen: bool = True,
) -> list[Optimum]:
    """Minimise Σ Huber_δ(r(θ)) from each start; every converged optimum, best first.

    With ``screen`` every start first gets a few dozen evaluations and only the ``keep`` most
    promising are run to convergence; without it (refits from a nearby optimum) each start is
    converged. An optimum whose residuals (log L − log L̂ at every point) are within 1e-5 of a
    better one's is the same fit to the data (the parameters of a flat basin drift) and dropped.

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

    if screen:
        screened = sorted(
            ((*run(s, max_nfev=_SCREEN_NFEV), i) for i, s in enumerate(starts)), key=lambda t: t[1]
        )[: max(1, keep)]
    else:
        screened = [(s, 0.0, i) for i, s in enumerate(starts)]
    finals = sorted(((*run(x), i) for x, _, i in screened), key=lambda t: t[1])
    out: list[Optimum] = []
    kept: list[np.ndarray] = []
    for theta, objective, i in finals:
        r = both(theta)[0]
        if any(np.max(np.abs(r - k)) <= 1e-5 for k in kept):
            continue
        kept.append(r)
        out.append((theta, objective, starts[i]))
    return out


def best_starts(rows: list[np.ndarray], scores: list[float], n: int) -> list[np.ndarray]:
    return [rows[i] for i in np.argsort(scores, kind="stable")[:n]]


def score(pred: np.ndarray, log_loss: np.ndarray, delta: float) -> float:
    """The objective of a grid start from its predictions (inf where one is <= 0)."""
    if (pred <= 0).any():
        return float("inf")
    return float(huber(log_loss - np.log(pred), delta).sum())


def nnls_start(columns: list[np.ndarray], loss: np.ndarray) -> np.ndarray:
    coef, _ = nnls(np.column_stack(columns), loss)
    return np.maximum(coef, 1e-10 * loss.mean())
