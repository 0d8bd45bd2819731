"""Many bounded L-BFGS-B minimisations in lock step, their objective evaluated in one batch.

``scipy.optimize.minimize(method="L-BFGS-B")`` drives scipy's reverse-communication routine
``setulb``: the routine asks for the objective and gradient at a point, the driver evaluates
them and calls back. For a grid of many starts on a small problem (the multi-power law's proxy
start: 135 starts, ~200 evaluations each, a few hundred data points) the driver's Python layers
cost more than the objective. :func:`minimize_many` keeps one ``setulb`` state per start and
evaluates the points the unfinished starts ask for together, so each start receives exactly the
values scipy's own driver would hand it — the same iterates, the same result to the last bit
(tested against ``minimize``) — at a fraction of the cost.

``setulb``'s signature is scipy's since 1.15 (the C translation of L-BFGS-B); on an older scipy,
or where ``setulb`` is missing or refuses those arguments, :func:`minimize_many` runs
``minimize`` on each start instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy
from scipy.optimize import minimize

__all__ = ["batched_setulb_available", "minimize_many"]

BatchFun = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``X (k, n) -> (values (k,), gradients (k, n))``: the objective at k points at once."""

_TASK_FG, _TASK_NEW_X, _TASK_STOP = 3, 1, 5  # setulb's task codes (scipy ≥ 1.15)
_STOP_MAXFUN, _STOP_MAXITER = 502, 504


def _setulb():
    """scipy's C ``setulb`` when its 1.15+ signature is there, else None."""
    try:
        major, minor = (int(x) for x in scipy.__version__.split(".")[:2])
        from scipy.optimize import _lbfgsb
    except (ImportError, ValueError):
        return None
    doc = getattr(_lbfgsb.setulb, "__doc__", "") or ""
    if (major, minor) < (1, 15) or "ln_task" not in doc or "csave" in doc:
        return None
    return _lbfgsb.setulb


def batched_setulb_available() -> bool:
    """Whether :func:`minimize_many` runs in lock step here (else one ``minimize`` per start)."""
    return _setulb() is not None


class _Start:
    """One start's ``setulb`` workspace, as ``scipy.optimize._minimize_lbfgsb`` allocates it."""

    def __init__(self, x0: np.ndarray, m: int) -> None:
        n = len(x0)
        self.x = np.array(x0, dtype=np.float64)
        self.f = np.array(0.0, dtype=np.float64)
        self.g = np.zeros(n, dtype=np.float64)
        self.wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m, np.float64)
        self.iwa = np.zeros(3 * n, dtype=np.int32)
        self.task = np.zeros(2, dtype=np.int32)
        self.ln_task = np.zeros(2, dtype=np.int32)
        self.lsave = np.zeros(4, dtype=np.int32)
        self.isave = np.zeros(44, dtype=np.int32)
        self.dsave = np.zeros(29, dtype=np.float64)
        self.iterations = 0
        self.nfev = 0
        self.cached_x: np.ndarray | None = None  # scipy's ScalarFunction memoises the last point
        self.cached: tuple[float, np.ndarray] | None = None


def minimize_many(
    fun: BatchFun,
    starts: Sequence[np.ndarray],
    *,
    lower: float = 0.0,
    ftol: float = 2.2204460492503131e-09,
    gtol: float = 1e-5,
    maxiter: int = 15000,
    maxfun: int = 15000,
    maxcor: int = 10,
    maxls: int = 20,
) -> list[tuple[np.ndarray, float]]:
    """Minimise ``fun`` from every start with L-BFGS-B, every parameter bounded below by
    ``lower`` (none above), as ``minimize(..., jac=True, method="L-BFGS-B", bounds=...)`` would.

    Args:
        fun: the objective and its gradient at a batch of points (:data:`BatchFun`); each row
            must be computed independently of the others (the same bits whatever the batch).
        starts: one start per minimisation (clipped into the bounds, as scipy does).
        lower, ftol, gtol, maxiter, maxfun, maxcor, maxls: scipy's L-BFGS-B options.

    Returns:
        ``(x, f)`` per start, in the order of ``starts``.
    """
    starts = [np.clip(np.asarray(s, dtype=np.float64).ravel(), lower, np.inf) for s in starts]
    setulb = _setulb()
    if setulb is None:
        return _one_by_one(fun, starts, lower, ftol, gtol, maxiter, maxfun, maxcor, maxls)
    n = len(starts[0])
    low = np.full(n, lower, dtype=np.float64)
    up = np.zeros(n, dtype=np.float64)
    nbd = np.ones(n, dtype=np.int32)  # 1: bounded below only
    factr, m = ftol / np.finfo(float).eps, maxcor
    states = [_Start(s, m) for s in starts]
    try:  # a scipy whose setulb takes other arguments: scipy's own driver, one start at a time
        probe = _Start(starts[0], m)
        setulb(m, probe.x, low, up, nbd, probe.f, probe.g, factr, gtol, probe.wa, probe.iwa,
               probe.task, probe.lsave, probe.isave, probe.dsave, maxls, probe.ln_task)  # fmt: skip
    except TypeError:
        return _one_by_one(fun, starts, lower, ftol, gtol, maxiter, maxfun, maxcor, maxls)
    values, grads = fun(np.stack(starts))  # scipy's ScalarFunction evaluates x0 on creation
    for st, v, g in zip(states, values, grads, strict=True):
        st.cached_x, st.cached, st.nfev = st.x.copy(), (float(v), np.array(g)), 1
    active = list(range(len(states)))
    while active:
        asking, still = [], []
        for i in active:
            st = states[i]
            while True:
                st.g = st.g.astype(np.float64)
                setulb(m, st.x, low, up, nbd, st.f, st.g, factr, gtol, st.wa, st.iwa, st.task,
                       st.lsave, st.isave, st.dsave, maxls, st.ln_task)  # fmt: skip
                if st.task[0] == _TASK_FG:
                    if st.cached_x is not None and np.array_equal(st.x, st.cached_x):
                        st.f, st.g = st.cached
                        continue
                    asking.append(i)
                    break
                if st.task[0] == _TASK_NEW_X:
                    st.iterations += 1
                    if st.iterations >= maxiter:
                        st.task[0], st.task[1] = _TASK_STOP, _STOP_MAXITER
                    elif st.nfev > maxfun:
                        st.task[0], st.task[1] = _TASK_STOP, _STOP_MAXFUN
                    continue
                break  # converged or stopped
            if asking and asking[-1] == i:
                still.append(i)
        if asking:
            values, grads = fun(np.stack([states[i].x for i in asking]))
            for i, v, g in zip(asking, values, grads, strict=True):
                st = states[i]
                st.f, st.g = float(v), np.array(g)
                st.cached_x, st.cached = st.x.copy(), (st.f, st.g)
                st.nfev += 1
        active = still
    return [(st.x.copy(), float(st.f)) for st in states]


def _one_by_one(fun, starts, lower, ftol, gtol, maxiter, maxfun, maxcor, maxls):
    """The same minimisations through ``scipy.optimize.minimize``, one start at a time."""

    def single(x: np.ndarray) -> tuple[float, np.ndarray]:
        values, grads = fun(x[None, :])
        return float(values[0]), np.asarray(grads[0])

    options = {"maxiter": maxiter, "maxfun": maxfun, "ftol": ftol, "gtol": gtol,
               "maxcor": maxcor, "maxls": maxls}  # fmt: skip
    out = []
    for s in starts:
        r = minimize(single, s, jac=True, method="L-BFGS-B",
                     bounds=[(lower, None)] * len(s), options=options)  # fmt: skip
        out.append((np.asarray(r.x, dtype=np.float64), float(r.fun)))
    return out
