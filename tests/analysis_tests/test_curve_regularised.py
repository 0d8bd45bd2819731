"""The multi-power law's reference fitting procedure in numpy/scipy: AdamW steps by hand and
against torch.optim.AdamW, the early stop, the proxy start against scipy's own finite
differences, the objective against the law written as its authors' code does, and the units."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import linregress

from analysis._huber import huber
from analysis.curve_regularised import (
    ADAMW,
    AdamWSettings,
    _line,
    _objective,
    adamw_phase,
    adamw_step,
    fit_multi_power_regularised,
    proxy_start,
)
from analysis.curves import MultiPowerFit
from tests.analysis_tests._law_curves import MPL_400M, constant, cosine, law_curve

LR = np.array([5e-2, 5e-2, 5e-3, 5e-2, 5e-2, 5e-3, 5e-3])  # L0, A, alpha, B, C, beta, gamma


@pytest.fixture(scope="module")
def two_curves():
    true, rng = MultiPowerFit(**MPL_400M), np.random.default_rng(0)
    return [law_curve(true, constant(), rng, 0.003), law_curve(true, cosine(), rng, 0.003)]


def test_the_learning_rates_split_linear_parameters_from_exponents():
    np.testing.assert_array_equal(ADAMW.learning_rates(), LR)


def test_first_two_adamw_steps_by_hand():
    p0 = np.array([2.0, 0.5, 0.4, 500.0, 1.0, 0.5, 0.5])
    g1 = np.array([0.3, -0.2, 0.1, 1e-3, -4.0, 2.0, -1e-4])
    m, v = np.zeros(7), np.zeros(7)
    p1, m, v = adamw_step(p0, g1, m, v, 1, ADAMW.learning_rates())
    # Step 1: m̂ = g, v̂ = g², so θ1 = θ0·(1 − lr·0.01) − lr·g/(|g| + 1e-8).
    expected = [
        2.0 * (1 - 5e-4) - 5e-2 * 0.3 / (0.3 + 1e-8),  # L0: 1.9490000016666667
        0.5 * (1 - 5e-4) + 5e-2 * 0.2 / (0.2 + 1e-8),  # A: 0.5497499975000001
        0.4 * (1 - 5e-5) - 5e-3 * 0.1 / (0.1 + 1e-8),  # alpha: 0.39498000050000003
        500.0 * (1 - 5e-4) - 5e-2 * 1e-3 / (1e-3 + 1e-8),  # B: 499.70000049999
        1.0 * (1 - 5e-4) + 5e-2 * 4.0 / (4.0 + 1e-8),  # C
        0.5 * (1 - 5e-5) - 5e-3 * 2.0 / (2.0 + 1e-8),  # beta
        0.5 * (1 - 5e-5) + 5e-3 * 1e-4 / (1e-4 + 1e-8),  # gamma
    ]
    np.testing.assert_allclose(p1, expected, rtol=1e-13, atol=0)
    assert p1[0] == pytest.approx(1.9490000016666667, rel=1e-13)
    # Step 2 with g2 = −g1 (for L0): m = 0.9·0.03 − 0.1·0.3 = −0.003, m̂ = −0.003/0.19;
    # v = 0.999·0.00009 + 0.001·0.09 = 0.00017991, v̂ = v/(1 − 0.999²).
    p2, m, v = adamw_step(p1, -g1, m, v, 2, ADAMW.learning_rates())
    m_hat, v_hat = -0.003 / 0.19, 0.00017991 / (1 - 0.999**2)
    assert m[0] == pytest.approx(-0.003, rel=1e-12) and v[0] == pytest.approx(0.00017991, rel=1e-12)
    assert p2[0] == pytest.approx(
        p1[0] * (1 - 5e-4) - 5e-2 * m_hat / (np.sqrt(v_hat) + 1e-8), rel=1e-13
    )


def test_adamw_matches_torch_step_by_step():
    torch = pytest.importorskip("torch")
    target = np.array([2.3, 0.6, 0.45, 450.0, 2.0, 0.6, 0.65])
    scale = np.array([1.0, 3.0, 10.0, 1e-4, 0.5, 2.0, 5.0])

    def grad(p: np.ndarray) -> np.ndarray:  # of Σ scale·(p − target)² + a coupling
        return 2 * scale * (p - target) + 0.3 * np.roll(p - target, 1)

    p = np.array([2.5, 0.7, 0.4, 541.0, 1.0, 0.5, 0.5])
    params = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in p]
    opt = torch.optim.AdamW(
        [{"params": [params[i] for i in (0, 1, 3, 4)], "lr": 5e-2},
         {"params": [params[i] for i in (2, 5, 6)], "lr": 5e-3}]
    )  # fmt: skip
    m, v = np.zeros(7), np.zeros(7)
    for t in range(1, 61):
        g = grad(p)
        for param, gi in zip(params, g, strict=True):
            param.grad = torch.tensor(float(gi), dtype=torch.float64)
        opt.step()
        p, m, v = adamw_step(p, g, m, v, t, ADAMW.learning_rates())
        ref = np.array([float(x.detach()) for x in params])
        np.testing.assert_allclose(p, ref, rtol=1e-13, atol=1e-15, err_msg=f"step {t}")
        exp_avg = np.array([float(opt.state[x]["exp_avg"]) for x in params])
        np.testing.assert_allclose(m, exp_avg, rtol=1e-12, atol=1e-18, err_msg=f"step {t}")


def _scripted(values: list[float], grad_norms: list[float] | None = None):
    """A fake objective: the i-th call returns values[i] and a gradient of ones (or of the
    given norm), so AdamW's steps have a closed form."""
    calls = {"n": 0}

    def fun(p: np.ndarray) -> tuple[float, np.ndarray]:
        i = calls["n"]
        calls["n"] += 1
        g = np.ones(7) if grad_norms is None else np.full(7, grad_norms[i] / np.sqrt(7))
        return values[i], g

    return fun


def _after(n: int, p0: np.ndarray) -> np.ndarray:
    """θ after n AdamW steps on a constant gradient of ones: m̂ = v̂ = 1, so
    θ_t = a·θ_{t−1} − c with a = 1 − lr·0.01, c = lr/(1 + 1e-8)."""
    a, c = 1 - LR * 0.01, LR / (1 + 1e-8)
    return a**n * p0 - c * (1 - a**n) / (1 - a)


def test_early_stop_after_20_steps_without_improvement_keeps_the_post_step_iterate():
    p0 = np.array([2.5, 0.7, 0.4, 541.0, 1.0, 0.5, 0.5])
    # improves on steps 0..9, then never again: steps 10..29 are the 20 without improvement
    values = [1.0 - 0.01 * i for i in range(10)] + [0.95] * 190
    run = adamw_phase(_scripted(values), p0)
    assert (run.steps, run.stop) == (30, "patience")
    assert run.value == pytest.approx(0.91)
    np.testing.assert_allclose(run.params, _after(10, p0), rtol=1e-12)  # after step 9's update
    # the patience is only checked after step 20: a run that never improves after step 0
    run = adamw_phase(_scripted([1.0] + [2.0] * 199), p0)
    assert (run.steps, run.stop) == (22, "patience")
    np.testing.assert_allclose(run.params, _after(1, p0), rtol=1e-12)
    # without a stop it runs its 200 steps
    run = adamw_phase(_scripted([1.0 - 1e-3 * i for i in range(200)]), p0)
    assert (run.steps, run.stop) == (200, "max_steps")
    np.testing.assert_allclose(run.params, _after(200, p0), rtol=1e-11)


def test_gradient_norm_stop_comes_before_keeping_the_step():
    p0 = np.array([2.5, 0.7, 0.4, 541.0, 1.0, 0.5, 0.5])
    norms = [1.0] * 5 + [5e-6] + [1.0] * 194
    run = adamw_phase(_scripted([1.0 - 0.01 * i for i in range(200)], norms), p0)
    # step 5 improves but its gradient norm is below 1e-5: the loop ends without keeping it
    assert (run.steps, run.stop, run.value) == (6, "grad_norm", pytest.approx(0.96))
    ref = adamw_phase(_scripted([1.0 - 0.01 * i for i in range(200)], norms),
                      p0, AdamWSettings(max_steps=5))  # fmt: skip
    np.testing.assert_array_equal(run.params, ref.params)


def test_objective_and_gradient_match_the_law_written_as_the_authors_code(two_curves):
    p = np.array([2.37, 0.65, 0.43, 520.0, 2.0, 0.59, 0.63])
    l0, a, alpha, b, c, beta, gamma = p

    def direct(q: np.ndarray) -> float:  # their models.py loop, one step at a time
        l0, a, alpha, b, c, beta, gamma = q
        total = 0.0
        for lr, steps, loss in two_curves:
            lr_sum, gap = np.cumsum(lr), np.diff(lr, prepend=lr[0])
            pred = []
            for s in steps:
                x = c * lr[1 : s + 1] ** (-gamma) * (lr_sum[s] - lr_sum[:s])
                ld = np.sum(gap[1 : s + 1] * (1 - (1 + x) ** (-beta)))
                pred.append(l0 + a * lr_sum[s] ** (-alpha) + b * ld)
            total += huber(np.log(loss) - np.log(np.array(pred)), 1e-3).sum()
        return total

    value, grad = _objective(two_curves, 1e-3)(p)
    assert value == pytest.approx(direct(p), rel=1e-11)
    for i in range(7):
        h = 1e-6 * abs(p[i])
        e = np.zeros(7)
        e[i] = h
        assert grad[i] == pytest.approx((direct(p + e) - direct(p - e)) / (2 * h), rel=1e-5)
    # outside the law's domain (C ≤ 0) the objective is not finite, as torch's would be
    assert np.isnan(_objective(two_curves, 1e-3)(np.array([*p[:4], -0.1, *p[5:]]))[0])


def test_proxy_start_is_scipys_own_finite_difference_fit(two_curves):
    # The proxy fit as the recipe states it, with scipy's finite differences (not batched).
    min_loss = min(loss.min() for _, _, loss in two_curves)
    s1 = [np.cumsum(lr)[st] for lr, st, _ in two_curves]
    slope, intercept, *_ = linregress(
        np.log(np.concatenate(s1)),
        np.log(np.concatenate([loss - min_loss + 0.01 for *_, loss in two_curves])),
    )

    def proxy(q: np.ndarray) -> float:
        total = 0.0
        for x, (lr, st, loss) in zip(s1, two_curves, strict=True):
            pred = q[0] + q[1] * x ** (-q[2]) - q[3] * (3e-4 - lr[st])
            total += huber(np.log(loss) - np.log(np.maximum(pred, 1e-10)), 1e-3).sum()
        return float(total)

    grid = itertools.product(
        np.linspace(min_loss - 0.2, min_loss + 0.2, 5),
        np.linspace(np.exp(intercept) - 0.1, np.exp(intercept) + 0.1, 3),
        np.linspace(-slope - 0.1, -slope + 0.1, 3),
        np.linspace(100, 1000, 3),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fits = [
            minimize(proxy, np.array(g), method="L-BFGS-B", bounds=[(0, None)] * 4,
                     options={"maxiter": 100000, "ftol": 1e-9, "gtol": 1e-6, "eps": 1e-8})
            for g in grid
        ]  # fmt: skip
        ours = proxy_start(two_curves)
    best = min(fits, key=lambda r: r.fun)
    # the batched finite differences and the lock-step driver (analysis._lbfgsb_batch) are
    # scipy's to the last bit (an analytic gradient instead moves the optimum by ~1e-6 relative)
    np.testing.assert_array_equal(ours, best.x)
    assert proxy(ours) == pytest.approx(best.fun, rel=1e-12)


def test_the_fit_does_not_depend_on_the_lr_units(two_curves):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = fit_multi_power_regularised(two_curves)
        scaled = fit_multi_power_regularised([(lr * 8, st, loss) for lr, st, loss in two_curves])
    # the procedure runs in the recipe's units (peak 3e-4) either way (×8 and ÷8 are exact):
    # the same losses predicted, the parameters converted by the law's equivariance
    for lr, st, _ in two_curves:
        np.testing.assert_allclose(scaled.predict(lr * 8, st), fit.predict(lr, st), rtol=1e-12)
    assert scaled.B == pytest.approx(fit.B / 8, rel=1e-12)
    assert scaled.A == pytest.approx(fit.A * 8**fit.alpha, rel=1e-12)
    assert scaled.C == pytest.approx(fit.C * 8 ** (fit.gamma - 1), rel=1e-12)
    assert (scaled.alpha, scaled.beta, scaled.gamma) == (fit.alpha, fit.beta, fit.gamma)
    assert fit.start is not None and (fit.start["C"], fit.start["beta"]) == (1.0, 0.5)
    assert fit.objective == pytest.approx(_objective(two_curves, 1e-3)(
        np.array([fit.L0, fit.A, fit.alpha, fit.B, fit.C, fit.beta, fit.gamma]))[0], rel=1e-12)  # fmt: skip


def test_the_start_line_is_linregress_to_the_last_bit():
    rng = np.random.default_rng(3)
    for n in (3, 40, 1001):
        x, y = np.log(rng.uniform(1e-3, 10, n)), rng.normal(size=n)
        slope, intercept, *_ = linregress(x, y)
        assert _line(x, y) == (slope, intercept)
