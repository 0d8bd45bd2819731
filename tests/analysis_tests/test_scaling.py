"""Scaling-law fits: synthetic recovery, the Epoch AI replication on real data, bootstrap, errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.fit_checks import FitRefused
from analysis.scaling import CHINCHILLA_GRID, ChinchillaFit, fit_chinchilla, fit_data_law

DATA = Path(__file__).resolve().parents[1] / "data" / "chinchilla_epoch.csv"
TRUE = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}

# The Chinchilla objective optimum on the Epoch data (5 highest-loss points excluded), measured
# once offline. Plain method (scipy L-BFGS-B, numeric gradients, every one of the 4,500 grid
# starts, as the Epoch notebook; benchmarks/chinchilla_fit.py --full): 1.0182740321579553e-3.
# That run stops on scipy's default ftol ~1.4e-8 (relative) above the optimum; polishing its
# result with the exact gradient (L-BFGS-B ftol=0, then Nelder-Mead, then trust-constr) gives
# 1.018274017800601e-3, the value docs/equations.md §8.2 rounds to 1.01827e-3.
PLAIN_GRID_OBJECTIVE = 1.0182740321579553e-3
OPTIMUM_OBJECTIVE = 1.018274017800601e-3


def _synthetic(noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 8), np.geomspace(1e9, 1e12, 8))
    n, d = n.ravel(), d.ravel()
    loss = TRUE["E"] + TRUE["A"] * n ** -TRUE["alpha"] + TRUE["B"] * d ** -TRUE["beta"]
    return n, d, loss * np.exp(np.random.default_rng(seed).normal(0.0, noise, loss.size))


def _epoch_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    df = pd.read_csv(DATA)
    n = df["Model Size"].to_numpy(float)
    return n, df["Training FLOP"].to_numpy(float) / (6 * n), df["loss"].to_numpy(float)


def test_grid_is_the_4500_starts_of_approach_3():
    assert CHINCHILLA_GRID.shape == (4500, 5)
    # (a, b, e, alpha, beta): a, b ∈ {0..25 step 5}, e ∈ {−1..1 step 0.5}, alpha, beta ∈ {0..2}
    assert sorted(set(CHINCHILLA_GRID[:, 0])) == [0, 5, 10, 15, 20, 25]
    assert sorted(set(CHINCHILLA_GRID[:, 2])) == [-1, -0.5, 0, 0.5, 1]
    assert sorted(set(CHINCHILLA_GRID[:, 3])) == [0, 0.5, 1, 1.5, 2]


def test_noiseless_synthetic_recovered_to_1e_4():
    fit = fit_chinchilla(*_synthetic(noise=0.0))
    for name, value in TRUE.items():
        assert getattr(fit, name) == pytest.approx(value, rel=1e-4), name
    assert fit.objective < 1e-12
    assert fit.n_points == 64


def test_noisy_synthetic_recovered_within_tolerance():
    # 0.5 % multiplicative noise on 64 points: exponents within 5 %, E within 3 %, A/B within
    # 25 % (A and B trade off against the exponents). Measured: E 0.9 %, A 2 %, B 11 %,
    # alpha 0.4 %, beta 1.9 %.
    fit = fit_chinchilla(*_synthetic(noise=0.005))
    assert fit.E == pytest.approx(TRUE["E"], rel=0.03)
    assert fit.alpha == pytest.approx(TRUE["alpha"], rel=0.05)
    assert fit.beta == pytest.approx(TRUE["beta"], rel=0.05)
    assert fit.A == pytest.approx(TRUE["A"], rel=0.25)
    assert fit.B == pytest.approx(TRUE["B"], rel=0.25)


def test_epoch_replication_on_real_data():
    n, d, loss = _epoch_data()
    t0 = time.perf_counter()
    fit = fit_chinchilla(n, d, loss, exclude_highest=5)
    elapsed = time.perf_counter() - t0
    assert fit.n_points == 240  # 245 rows, 5 highest-loss points dropped
    # The same optimum as the plain grid method, to 1e-9 relative (it is never worse).
    assert fit.objective == pytest.approx(OPTIMUM_OBJECTIVE, rel=1e-9)
    assert fit.objective <= PLAIN_GRID_OBJECTIVE * (1 + 1e-9)
    assert abs(fit.objective - 1.01827e-3) < 5e-9  # the 6 digits docs/equations.md §8.2 quotes
    # The plain grid's parameters: 1e-3 relative on E, alpha, beta; 2 % on A, B (the objective
    # is flat along A/B, so the stopping point of the plain method moves them most).
    assert fit.E == pytest.approx(1.8172, rel=1e-3)
    assert fit.alpha == pytest.approx(0.34731, rel=1e-3)
    assert fit.beta == pytest.approx(0.36718, rel=1e-3)
    assert fit.A == pytest.approx(477.8, rel=0.02)
    assert fit.B == pytest.approx(2143.8, rel=0.02)
    # Epoch AI's published MLE estimate (a Huber likelihood with a free scale, not this
    # objective): looser, 0.5 % on E and alpha, 1 % on beta, 3 % on A, 5 % on B.
    assert fit.E == pytest.approx(1.82, rel=5e-3)
    assert fit.alpha == pytest.approx(0.3478, rel=5e-3)
    assert fit.beta == pytest.approx(0.3658, rel=1e-2)
    assert fit.A == pytest.approx(482.01, rel=0.03)
    assert fit.B == pytest.approx(2085.43, rel=0.05)
    assert elapsed < 30  # ~0.3–1 s here; loose for noisy CI machines


def test_compute_optimal_allocation_satisfies_the_budget_and_exponents():
    fit = ChinchillaFit(
        E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, objective=0.0, n_points=0, start={}
    )
    assert fit.n_opt_exponent == pytest.approx(0.28 / 0.62)  # ≈ 0.46 (docs/equations.md §8.1)
    assert fit.d_opt_exponent == pytest.approx(0.34 / 0.62)  # ≈ 0.54
    c = np.array([1e21, 1e23])
    n_opt, d_opt = fit.optimal_allocation(c)
    np.testing.assert_allclose(6 * n_opt * d_opt, c, rtol=1e-12)
    # N_opt minimises L along the budget curve N·D = C/6
    for ci, ni in zip(c, n_opt, strict=True):
        grid = ni * np.array([0.9, 1.0, 1.1])
        losses = fit.predict(grid, ci / (6 * grid))
        assert losses.argmin() == 1


def test_bootstrap_interval_contains_the_truth_and_derived_exponents():
    fit = fit_chinchilla(*_synthetic(noise=0.005), bootstrap=100, seed=1)
    assert fit.n_bootstrap == 100
    for name, value in TRUE.items():
        low, high = fit.ci[name]
        assert low < value < high, (name, fit.ci[name])
        assert low < getattr(fit, name) < high
    true_a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    assert fit.ci["n_opt_exponent"][0] < true_a < fit.ci["n_opt_exponent"][1]
    assert fit.to_dict()["ci"]["alpha"] == list(fit.ci["alpha"])


def test_epoch_bootstrap_intervals_resemble_the_published_ones():
    # Epoch AI, 4,000 replicates: alpha (0.317, 0.373), beta (0.331, 0.415), E (1.769, 1.871).
    fit = fit_chinchilla(*_epoch_data(), exclude_highest=5, bootstrap=100, seed=0)
    for name, (low, high) in {
        "alpha": (0.317, 0.373),
        "beta": (0.331, 0.415),
        "E": (1.769, 1.871),
    }.items():
        got_low, got_high = fit.ci[name]
        assert got_low == pytest.approx(low, rel=0.05) and got_high == pytest.approx(high, rel=0.05)


def test_data_law_recovered_on_synthetic_data():
    d = np.geomspace(1e8, 1e11, 12)
    loss = 2.1 + 800.0 * d**-0.3
    fit = fit_data_law(d, loss)
    assert (fit.E, fit.B, fit.beta) == pytest.approx((2.1, 800.0, 0.3), rel=1e-6)
    np.testing.assert_allclose(fit.predict(d), loss, rtol=1e-9)
    noisy = loss * np.exp(np.random.default_rng(0).normal(0, 0.003, d.size))
    fit = fit_data_law(d, noisy, bootstrap=100, seed=0)
    assert fit.E == pytest.approx(2.1, rel=0.03)
    assert fit.beta == pytest.approx(0.3, rel=0.05)
    for name, value in {"E": 2.1, "B": 800.0, "beta": 0.3}.items():
        assert fit.ci[name][0] < value < fit.ci[name][1], name


def test_data_law_keeps_E_below_the_smallest_loss():
    fit = fit_data_law([1e9, 2e9, 4e9, 8e9], [3.0, 2.9, 2.85, 2.84])
    assert 0 < fit.E <= 2.84


def test_a_fit_with_no_more_points_than_parameters_is_refused_with_the_reason():
    # Three horizons for three parameters: any three points are interpolated exactly, so the
    # fit would say nothing. The refusal names the law, the count and what is needed.
    with pytest.raises(
        FitRefused,
        match=r"L\(D\) = E \+ B/D\^beta refused: it has 3 parameters "
        r"and needs at least 4 points \(3 \+ 1\), got 3",
    ):
        fit_data_law([1e9, 2e9, 4e9], [3.0, 2.9, 2.85])
    n, d, loss = _synthetic(noise=0.0)
    with pytest.raises(FitRefused, match=r"5 parameters and needs at least 6 points .* got 5"):
        fit_chinchilla(n[:5], d[:5], loss[:5])
    assert (
        fit_chinchilla(n[:6] * [1, 1, 1, 1, 1, 2], d[:6], loss[:6] * [1, 1, 1, 1, 1, 0.99]).n_points
        == 6
    )


def test_E_on_its_bound_is_flagged_and_a_sound_fit_is_not():
    d = np.geomspace(1e8, 1e11, 6)
    # A pure power law (no irreducible loss): the optimum puts E on its lower bound 0.
    pure = fit_data_law(d, 900.0 * d**-0.3)
    assert pure.E < 1e-3 * (900.0 * d**-0.3).min()
    assert len(pure.flags) == 1 and pure.flags[0].startswith("E ≈ 0")
    # With a real floor E = 2.1 nothing sits on a bound.
    sound = fit_data_law(d, 2.1 + 900.0 * d**-0.3)
    assert sound.flags == ()
    assert sound.to_dict()["flags"] == []
    # The Chinchilla law likewise: E = 0 flagged, E = 1.7 not.
    n, dd, loss = _synthetic(noise=0.0)
    assert fit_chinchilla(n, dd, loss).flags == ()
    no_floor = fit_chinchilla(n, dd, loss - TRUE["E"])
    assert any(f.startswith("E ≈ 0") for f in no_floor.flags)


def test_bootstrap_band_of_the_data_law_covers_the_truth():
    d = np.geomspace(1e8, 1e11, 8)
    truth = 2.1 + 800.0 * d**-0.3
    noisy = truth * np.exp(np.random.default_rng(3).normal(0, 0.003, d.size))
    fit = fit_data_law(d, noisy, bootstrap=60, seed=0)
    assert fit.n_bootstrap == 60 and len(fit.replicates) == 60
    grid = np.geomspace(1e8, 4e11, 13)  # the data end at 1e11; the last 3 points extrapolate
    lo, hi = fit.band(grid)
    width = (hi - lo) / (hi + lo) * 2
    assert (lo <= hi).all() and width[-1] > 2 * width[5]  # widest where it extrapolates
    true = 2.1 + 800.0 * grid**-0.3
    assert ((lo <= true) & (true <= hi))[-3:].all()  # and the truth is inside it there
    assert fit_data_law(d, noisy).band(grid) is None  # no bootstrap, no band


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"N": [1e8, -1.0, 1e9, 1e9, 1e9, 1e9]}, r"N must be > 0, got -1\.0"),
        ({"D": [1e9] * 4}, r"D must have the same length as N \(6\), got 4"),
        ({"loss": [3.0, 2.0, float("nan"), 2.0, 2.0, 2.0]}, r"loss must be finite, got nan"),
        (
            {"N": [1e8] * 4, "D": [1e9] * 4, "loss": [3.0] * 4},
            r"needs at least 6 points \(5 \+ 1\), got 4",
        ),
        ({"delta": 0.0}, r"delta must be a finite number > 0, got 0\.0"),
        ({"exclude_highest": 6}, r"exclude_highest must be an integer in \[0, 6\), got 6"),
        ({"bootstrap": -1}, r"bootstrap must be an integer >= 0, got -1"),
    ],
)
def test_fit_chinchilla_rejects_bad_input(kwargs, message):
    args = {
        "N": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9],
        "D": [1e9, 2e9, 4e9, 8e9, 1.6e10, 3.2e10],
        "loss": [3.0, 2.8, 2.6, 2.5, 2.4, 2.35],
    }
    args.update(kwargs)
    n, d, loss = args.pop("N"), args.pop("D"), args.pop("loss")
    with pytest.raises(ValueError, match=message):
        fit_chinchilla(n, d, loss, **args)


@pytest.mark.parametrize(
    ("d", "loss", "message"),
    [
        ([1e9, 2e9, 4e9], [3.0, 0.0, 2.0], r"loss must be > 0, got 0\.0"),
        ([1e9, 2e9], [3.0, 2.0], r"needs at least 4 points \(3 \+ 1\), got 2"),
        ([1e9, 2e9, 4e9], [3.0, 2.0], r"loss must have the same length as D \(3\), got 2"),
        ([[1e9, 2e9, 4e9]], [3.0, 2.5, 2.0], r"D must be one-dimensional, got shape \(1, 3\)"),
    ],
)
def test_fit_data_law_rejects_bad_input(d, loss, message):
    with pytest.raises(ValueError, match=message):
        fit_data_law(d, loss)


def test_analysis_fits_import_neither_ray_nor_torch():
    code = (
        "import sys, analysis.scaling, analysis.curves; "
        "bad = {'ray', 'torch'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
