"""The lock-step L-BFGS-B driver against scipy's own ``minimize``: the same iterates to the
last bit, start by start, on a bounded problem where starts converge, hit the bound and stop
on ``maxiter``; and the one-by-one fallback used where scipy's ``setulb`` is not the 1.15+ one."""

from __future__ import annotations

import numpy as np
import pytest
import scipy
from scipy.optimize import minimize

from analysis import _lbfgsb_batch
from analysis._lbfgsb_batch import batched_setulb_available, minimize_many

TARGET = np.array([1.5, -3.0, 2.0, 0.7])  # the second coordinate's optimum is below the bound


def batch(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Rosenbrock-like coupled objective, row by row (no cross-row arithmetic)."""
    d = xs - TARGET
    coupled = xs[:, 1:] - xs[:, :-1] ** 2 * 0.3
    values = (d**2).sum(axis=1) + 2.0 * (coupled**2).sum(axis=1) + np.log1p(xs[:, 0] ** 2)
    grads = 2 * d
    grads[:, 1:] += 4.0 * coupled
    grads[:, :-1] += 4.0 * coupled * (-0.6 * xs[:, :-1])
    grads[:, 0] += 2 * xs[:, 0] / (1 + xs[:, 0] ** 2)
    return values, grads


def single(x: np.ndarray) -> tuple[float, np.ndarray]:
    values, grads = batch(x[None, :])
    return float(values[0]), grads[0]


STARTS = [np.array(s) for s in ([3.0, 2.0, 0.1, 5.0], [0.0, 0.0, 0.0, 0.0], [-1.0, 4.0, 9.0, 0.2],
                                [10.0, 10.0, 10.0, 10.0], [0.5, 0.5, 2.5, 0.7])]  # fmt: skip


@pytest.mark.parametrize("maxiter", [100000, 3])
def test_each_start_is_scipys_minimize_to_the_last_bit(maxiter):
    if tuple(int(v) for v in scipy.__version__.split(".")[:2]) >= (1, 15):  # CI's: the lock-step driver runs
        assert batched_setulb_available()
    ours = minimize_many(batch, STARTS, ftol=1e-12, gtol=1e-9, maxiter=maxiter)
    for start, (x, f) in zip(STARTS, ours, strict=True):
        ref = minimize(single, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * 4,
                       options={"ftol": 1e-12, "gtol": 1e-9, "maxiter": maxiter})  # fmt: skip
        assert np.array_equal(x, ref.x) and f == ref.fun
    # the bound is active where the unconstrained optimum is negative; maxiter 3 stops early
    converged = minimize_many(batch, STARTS, ftol=1e-12, gtol=1e-9)
    assert all(x[1] == 0.0 for x, _ in converged)
    if maxiter == 3:
        assert max(f for _, f in ours) > max(f for _, f in converged) + 1.0


def test_starts_outside_the_bounds_are_clipped_as_scipy_does():
    (x, f), = minimize_many(batch, [np.array([-2.0, -1.0, 3.0, 1.0])], ftol=1e-12, gtol=1e-9)
    ref = minimize(single, np.array([-2.0, -1.0, 3.0, 1.0]), jac=True, method="L-BFGS-B",
                   bounds=[(0, None)] * 4, options={"ftol": 1e-12, "gtol": 1e-9})  # fmt: skip
    assert np.array_equal(x, ref.x) and f == ref.fun


def test_the_fallback_gives_the_same_answers(monkeypatch):
    batched = minimize_many(batch, STARTS, ftol=1e-12, gtol=1e-9)
    monkeypatch.setattr(_lbfgsb_batch, "_setulb", lambda: None)
    assert not batched_setulb_available()
    fallback = minimize_many(batch, STARTS, ftol=1e-12, gtol=1e-9)

    def other_signature(*args):  # a future scipy's setulb taking other arguments
        raise TypeError("setulb() takes 18 positional arguments but 17 were given")

    monkeypatch.setattr(_lbfgsb_batch, "_setulb", lambda: other_signature)
    refused = minimize_many(batch, STARTS, ftol=1e-12, gtol=1e-9)
    for (x, f), (y, g), (z, h) in zip(batched, fallback, refused, strict=True):
        assert np.array_equal(x, y) and f == g and np.array_equal(x, z) and f == h
