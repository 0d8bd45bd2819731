"""The multi-power law's reference fitting procedure (Luo et al. 2025, arXiv 2503.12811), in
numpy/scipy: the fit its authors publish their numbers with (docs/equations.md §7.2).

1. **Proxy start.** The 4-parameter proxy ``L0 + A·S1^(−α) − B·(η_peak − η_s)`` is fitted by
   L-BFGS-B (bounds ≥ 0, scipy's forward-difference gradient with step 1e-8 — evaluated here
   in one batch of five points, to the same digits — ``ftol`` 1e-9, ``gtol`` 1e-6) from a grid
   of 5 × 3 × 3 × 3 = 135 starts: L0 ∈ min L ± 0.2 (5 values), A ∈ e^c ± 0.1 and α ∈ −m ± 0.1
   (3 each) where ``m, c`` are the slope and intercept of a linear regression of
   ``log(L − min L + 0.01)`` on ``log S1``, and B ∈ {100, 550, 1000}; the best of the 135 is
   completed with ``C = 1, β = 0.5, γ = 0.5``.
2. **AdamW** on all 7 parameters (not in log space) of ``Σ Huber_δ(log L − log L̂)``, float64:
   learning rate 5e-2 for L0, A, B, C and 5e-3 for α, β, γ, torch's AdamW defaults otherwise
   (betas 0.9/0.999, eps 1e-8, decoupled weight decay 1e-2), at most 200 steps; it stops once
   20 steps in a row did not lower the objective (checked after step 20) or when the gradient
   norm falls below 1e-5. Kept, as in the authors' loop: the parameters right after the step
   whose (pre-step) objective was the lowest.

The few steps, the early stop and the weight decay regularise the fit: it stays near the proxy
start instead of running into the degenerate corners of the 7-parameter objective (C → 0,
β → 0 with a huge B) that the converged multi-start fit of :mod:`analysis.curves` can reach
when one decaying schedule leaves the four loss-drop parameters under-identified. That is why
:func:`analysis.curve_validation.select_curve_law` takes it as a candidate, and chooses it
when leave-one-schedule-out validation cannot discriminate (fewer than three schedules).

Units. The recipe's constants (the B grid, ``η_peak`` = 3e-4 in the proxy, the AdamW learning
rates, C = 1) were set for the authors' peak LR of 3e-4. The law is equivariant under a change
of LR units η → s·η (A → A·s^(−α), B → B·s, C → C·s^(1−γ) give the same losses), so the
procedure runs on LRs rescaled to a peak of 3e-4 and its parameters are converted back; on the
authors' own curves s = 1 and nothing changes.

Differences from the authors' code, none of which changes a fit: the losses are float64 (their
loader keeps float32), the proxy's prediction is floored at 1e-10 before its log, and the loop
stops at once when the objective or its gradient is not finite (theirs would carry NaN
parameters until the patience runs out, keeping the same best iterate).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analysis._curve_fit import Curve, check_curves
from analysis._curve_terms import loss_drop, prepare_curve
from analysis._huber import huber, huber_psi
from analysis._law_problems import MPL_NAMES, mpl_flags
from analysis._lbfgsb_batch import minimize_many
from analysis._threads import single_threaded
from analysis.curves import MultiPowerFit
from analysis.fit_checks import require_points

__all__ = [
    "ADAMW",
    "AUTHORS_PEAK_LR",
    "AdamWRun",
    "AdamWSettings",
    "adamw_phase",
    "adamw_step",
    "fit_multi_power_regularised",
    "proxy_start",
]

AUTHORS_PEAK_LR = 3e-4
"""The peak LR the recipe's constants were set for (Luo et al.'s runs)."""

_FD_STEP = 1e-8  # L-BFGS-B's default finite-difference step, which the authors keep
_FD_FALLBACK = float(np.sqrt(np.finfo(np.float64).eps))
_LINEAR = np.array([True, True, False, True, True, False, False])  # L0, A, B, C: the larger LR


@dataclass(frozen=True, kw_only=True)
class AdamWSettings:
    """The AdamW phase of the authors' recipe (their ``src/config.py`` and torch defaults)."""

    lr_linear: float = 5e-2  # L0, A, B, C
    lr_exponent: float = 5e-3  # alpha, beta, gamma
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2  # torch.optim.AdamW's default, which the authors keep
    max_steps: int = 200
    patience: int = 20
    grad_norm_threshold: float = 1e-5

    def learning_rates(self) -> np.ndarray:
        """Per-parameter LR in the order L0, A, alpha, B, C, beta, gamma."""
        return np.where(_LINEAR, self.lr_linear, self.lr_exponent)


ADAMW = AdamWSettings()


@dataclass(frozen=True)
class AdamWRun:
    """What the AdamW phase did.

    Attributes:
        params: the kept parameters (right after the step of the lowest objective).
        value: that lowest (pre-step) objective.
        steps: steps taken.
        stop: ``"patience"``, ``"grad_norm"``, ``"max_steps"`` or ``"not finite"``.
        history: the objective at every step, before its update.
    """

    params: np.ndarray
    value: float
    steps: int
    stop: str
    history: tuple[float, ...]


def adamw_step(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    t: int,
    lr: np.ndarray,
    settings: AdamWSettings = ADAMW,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of torch's AdamW (decoupled weight decay, bias-corrected), step count ``t`` ≥ 1.

    Returns:
        (new parameters, new first moment, new second moment).
    """
    b1, b2 = settings.betas
    p = p * (1.0 - lr * settings.weight_decay)  # decoupled decay: θ ← θ·(1 − lr·λ)
    m = b1 * m + (1.0 - b1) * g  # m ← β1·m + (1 − β1)·g
    v = b2 * v + (1.0 - b2) * g * g  # v ← β2·v + (1 − β2)·g²
    denom = np.sqrt(v) / np.sqrt(1.0 - b2**t) + settings.eps  # √v̂ + ε
    return p - (lr / (1.0 - b1**t)) * m / denom, m, v  # θ ← θ − lr·m̂/(√v̂ + ε)


def adamw_phase(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    p0: np.ndarray,
    settings: AdamWSettings = ADAMW,
) -> AdamWRun:
    """The authors' AdamW loop with early stopping on ``fun(p) -> (objective, gradient)``.

    Per step, in their order: evaluate at p, step to p'; count a step without improvement;
    stop after ``patience`` of them (from step ``patience + 1`` on) or when the gradient norm
    at p is below the threshold; otherwise, if p's objective is the lowest so far, keep p'.
    """
    lr = settings.learning_rates()
    p = np.asarray(p0, dtype=np.float64).copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    best_value, best_p, since, history, stop = np.inf, p.copy(), 0, [], "max_steps"
    for step in range(settings.max_steps):
        value, grad = fun(p)
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            stop = "not finite"
            break
        history.append(float(value))
        p_next, m, v = adamw_step(p, grad, m, v, step + 1, lr, settings)
        improved = value < best_value
        since = 0 if improved else since + 1
        if step > settings.patience and since >= settings.patience:
            stop = "patience"
            break
        if float(np.linalg.norm(grad)) < settings.grad_norm_threshold:
            stop = "grad_norm"
            break
        if improved:
            best_value, best_p = float(value), p_next
        p = p_next
    return AdamWRun(best_p, float(best_value), len(history), stop, tuple(history))


def proxy_start(curves: Sequence[Curve], delta: float = 1e-3) -> np.ndarray:
    """(L0, A, alpha, B): the best L-BFGS-B fit of the 4-parameter proxy from the 135-start
    grid (step 1 of the module docstring), on LRs in the recipe's units (peak 3e-4; the B grid
    assumes them) — :func:`fit_multi_power_regularised` rescales before calling it."""
    min_loss = min(float(loss.min()) for _, _, loss in curves)
    peak = max(float(lr.max()) for lr, _, _ in curves)
    log_s1 = np.concatenate([np.log(np.cumsum(lr)[st]) for lr, st, _ in curves])
    log_excess = np.concatenate([np.log(loss - min_loss + 0.01) for _, _, loss in curves])
    slope, intercept = _line(log_s1, log_excess)
    s1 = np.concatenate([np.cumsum(lr)[st] for lr, st, _ in curves])
    below = np.concatenate([peak - lr[st] for lr, st, _ in curves])
    log_loss = np.log(np.concatenate([loss for _, _, loss in curves]))
    ends = np.cumsum([len(st) for _, st, _ in curves])
    spans = list(zip([0, *ends[:-1]], ends, strict=True))

    def proxy(qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The objective at each row of qs and its forward-difference gradient, as scipy's
        2-point scheme with absolute step ``eps`` forms it, every point and its four shifted
        copies evaluated in one batch. Summed curve by curve, as the authors do: the finite
        differences see every rounding, and this keeps their optimum to the last digit."""
        k = len(qs)
        rows = np.repeat(qs, 5, axis=0).reshape(k, 5, 4)  # per point: q, then q + h·e_i
        shifted = qs + _fd_steps(qs)
        idx = np.arange(4)
        rows[:, 1 + idx, idx] = shifted
        flat = rows.reshape(5 * k, 4)
        pred = flat[:, :1] + flat[:, 1:2] * s1 ** (-flat[:, 2:3]) - flat[:, 3:4] * below
        terms = huber(log_loss - np.log(np.maximum(pred, 1e-10)), delta)  # (5k, n)
        total = np.zeros(5 * k)
        for lo, hi in spans:
            total = total + terms[:, lo:hi].sum(axis=1)
        total = total.reshape(k, 5)
        return total[:, 0], (total[:, 1:] - total[:, :1]) / (shifted - qs)

    a0, alpha0 = float(np.exp(intercept)), float(-slope)
    grid = itertools.product(
        np.linspace(min_loss - 0.2, min_loss + 0.2, 5),
        np.linspace(a0 - 0.1, a0 + 0.1, 3),
        np.linspace(alpha0 - 0.1, alpha0 + 0.1, 3),
        np.linspace(100, 1000, 3),
    )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        fits = minimize_many(proxy, [np.array(g) for g in grid], ftol=1e-9, gtol=1e-6,
                             maxiter=100000)  # fmt: skip
    best_x, _ = min(fits, key=lambda r: r[1])  # the first of equal optima, as min() over scipy's
    return np.asarray(best_x, dtype=np.float64)


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept, computed as ``scipy.stats.linregress`` computes them
    (the same bits; importing scipy.stats would cost the report ~0.3 s)."""
    ssxm, ssxym, _, _ = np.cov(x, y, bias=1).flat
    slope = ssxym / ssxm
    return float(slope), float(np.mean(y) - slope * np.mean(x))


def _fd_steps(q: np.ndarray) -> np.ndarray:
    """scipy's forward-difference steps for an absolute step of ``_FD_STEP`` (its fallback
    where q + h rounds back to q; upward, as the bounds are [0, ∞))."""
    h = np.full_like(q, _FD_STEP)
    return np.where((q + h) - q == 0, _FD_FALLBACK * np.maximum(1.0, np.abs(q)), h)


def _objective(curves: Sequence[Curve], delta: float) -> Callable:
    """``p -> (Σ Huber_δ(log L − log L̂), gradient)`` in the raw 7 parameters (NaN outside the
    law's domain: C ≤ 0 or a prediction ≤ 0)."""
    data = []
    for lr, st, loss in curves:
        order = np.argsort(st, kind="stable")
        data.append(prepare_curve(lr, st[order], loss[order], cache=True))

    def fun(p: np.ndarray) -> tuple[float, np.ndarray]:
        l0, a, alpha, b, c, beta, gamma = (float(x) for x in p)
        if not c > 0:
            return float("nan"), np.full(7, np.nan)
        value, grad = 0.0, np.zeros(7)
        for cd in data:
            ld, dld = loss_drop(cd, c, beta, gamma, with_grad=True)
            power = cd.s1 ** (-alpha)
            pred = l0 + a * power + b * ld
            if (pred <= 0).any():
                return float("nan"), np.full(7, np.nan)
            r = cd.log_loss - np.log(pred)
            value += float(huber(r, delta).sum())
            w = -huber_psi(r, delta) / pred  # dHuber/dpred
            dpred = (1.0, power, -a * power * np.log(cd.s1), ld, b * dld[0] / c, b * dld[1],
                     b * dld[2])  # fmt: skip
            grad += np.array([float(np.sum(w * d)) for d in dpred])
        return value, grad

    return fun


def _to_units(p: np.ndarray, s: float) -> np.ndarray:
    """Parameters fitted on LRs s·η, for LRs η (the law's equivariance; module docstring)."""
    if s == 1.0:
        return p.copy()
    l0, a, alpha, b, c, beta, gamma = p
    return np.array([l0, a * s**-alpha, alpha, b * s, c * s ** (1 - gamma), beta, gamma])


@single_threaded
def fit_multi_power_regularised(
    curves: Sequence[Curve], *, delta: float = 1e-3, settings: AdamWSettings = ADAMW
) -> MultiPowerFit:
    """The multi-power law fitted by its authors' procedure (see the module docstring).

    Args:
        curves: ``(lr_seq, steps, losses)`` per training curve.
        delta: Huber threshold on log-loss residuals.
        settings: the AdamW phase (the authors' by default).

    Returns:
        The fit; ``objective`` is that of the kept parameters, ``start`` the 7-parameter start
        (proxy optimum + C, β, γ), both in the caller's LR units.

    Raises:
        FitRefused: fewer than 8 points over all curves.
        ValueError: a malformed curve (the message names ``curves[i]`` and the field).
    """
    checked, delta = check_curves(curves, delta)
    n_points = sum(len(c[1]) for c in checked)
    require_points(n_points, 7, "the multi-power law")
    s = AUTHORS_PEAK_LR / max(float(lr.max()) for lr, _, _ in checked)
    scaled = [(lr * s, st, loss) for lr, st, loss in checked] if s != 1.0 else checked
    start = np.concatenate([proxy_start(scaled, delta), [1.0, 0.5, 0.5]])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        run = adamw_phase(_objective(scaled, delta), start, settings)
        params = _to_units(run.params, s)
        objective, _ = _objective(checked, delta)(params)
    values = dict(zip(MPL_NAMES, (float(x) for x in params), strict=True))
    return MultiPowerFit(
        **values,
        objective=float(objective),
        n_points=n_points,
        start=dict(zip(MPL_NAMES, (float(x) for x in _to_units(start, s)), strict=True)),
        delta=delta,
        flags=mpl_flags(values),
    )
