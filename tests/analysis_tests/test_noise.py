"""Seed noise: paired comparisons by hand, the test's calibration, and what a one-seed and a
three-seed store say."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.horizons import loss_table, seed_losses
from analysis.noise import NA_ONE_SEED, paired, paired_frame, t_critical
from analysis.report import build_report
from analysis.results_table import results_rows
from analysis.summary import summary_sentences
from tests.analysis_tests._frames import frame, rows


def _s(values: list[float]) -> pd.Series:
    return pd.Series(values, index=range(len(values)), dtype=float)


def test_paired_comparison_by_hand():
    # d = (0.5, 0.5, 0.4): mean 0.4667, sd 0.0577, se 0.0333, t = 14.0 > t(0.975, 2) = 4.303
    c = paired(_s([1.0, 1.1, 1.2]), _s([0.5, 0.6, 0.8]))
    assert c.n == 3 and c.diff == pytest.approx(1.4 / 3)
    assert c.stderr == pytest.approx(np.std([0.5, 0.5, 0.4], ddof=1) / math.sqrt(3))
    assert c.t == pytest.approx(14.0) and c.critical == pytest.approx(4.302652729749464)
    assert c.significant and c.verdict == "significant"
    assert "(3 seeds, significant)" in c.text()
    # Pairs are by seed: the same values with seeds permuted give a different test.
    shuffled = pd.Series([0.8, 0.5, 0.6], index=[2, 0, 1])
    assert paired(_s([1.0, 1.1, 1.2]), shuffled).diff == pytest.approx(c.diff)
    # Seeds only one side has are ignored.
    assert paired(_s([1.0, 1.1, 1.2, 9.0]), _s([0.5, 0.6, 0.8])).n == 3


def test_critical_values_are_students_t():
    assert t_critical(2) == pytest.approx(12.7062, rel=1e-4)
    assert t_critical(3) == pytest.approx(4.3027, rel=1e-4)
    assert t_critical(10) == pytest.approx(2.2622, rel=1e-4)
    assert math.isnan(t_critical(1))


def test_one_seed_is_never_significant_and_says_so():
    c = paired(_s([1.0]), _s([2.0]))  # a huge difference, but nothing to measure noise with
    assert c.verdict == NA_ONE_SEED == "n/a (1 seed)"
    assert not c.significant and c.text() == "n/a (1 seed)" and math.isnan(c.stderr)
    assert paired(_s([1.0]), pd.Series([2.0], index=[5])).verdict == "n/a (no common seed)"


def test_a_true_gap_of_5_sigma_over_3_seeds_is_significant_and_2_sigma_is_not():
    # Paired differences gap + σ·(−1, 0, +1): sample sd exactly σ, se = σ/√3.
    sigma, base = 0.01, _s([2.0, 2.1, 1.9])
    five = paired(base + 5 * sigma + sigma * _s([-1, 0, 1]), base)
    assert five.t == pytest.approx(5 * math.sqrt(3)) and five.significant  # t = 8.66 > 4.30
    two = paired(base + 2 * sigma + sigma * _s([-1, 0, 1]), base)
    # t = 3.46: beyond a two-standard-error rule (|Δ| > 2·se), not beyond t(0.975, 2) = 4.30
    assert two.t == pytest.approx(2 * math.sqrt(3)) and not two.significant
    assert two.verdict == "within noise"


def test_a_divergence_is_a_significant_difference():
    c = paired(_s([1.0, math.inf, 1.1]), _s([1.0, 1.2, 1.1]))
    assert c.verdict == "diverged" and c.significant and c.diff == math.inf
    assert paired(_s([math.inf, 1.0]), _s([math.inf, 1.0])).verdict == "n/a (both diverged)"


def test_the_rule_is_calibrated():
    # Monte Carlo over 4,000 pairs of 3 seeds: at no true difference the rule fires 5% of the
    # time; at a true difference of δ = 1.5 (in units of the sd of the paired difference) it fires
    # as often as the noncentral t says (ncp = δ·√3). A z-like 2-se rule would fire 18% at δ = 0.
    rng = np.random.default_rng(0)
    n, reps = 3, 4000
    for delta, expected in ((0.0, 0.05), (1.5, None)):
        d = rng.normal(delta, 1.0, size=(reps, n))
        left = pd.DataFrame({"k": np.repeat(np.arange(reps), n), "seed": np.tile(np.arange(n), reps),
                             "loss": d.ravel()})  # fmt: skip
        right = left.assign(loss=0.0)
        rate = paired_frame(left, right, ["k"])["significant"].mean()
        if expected is None:
            crit = t_critical(n)
            expected = stats.nct.sf(crit, n - 1, delta * math.sqrt(n)) + stats.nct.cdf(
                -crit, n - 1, delta * math.sqrt(n)
            )
        assert rate == pytest.approx(
            expected, abs=3 * math.sqrt(expected * (1 - expected) / reps) + 0.005
        )


# A store: anytime constant+EMA vs schedule-free x, and a cosine envelope, 3 horizons.
def _store(n_seeds: int, gap_sigmas: float, sigma: float = 0.01) -> pd.DataFrame:
    dev = [-1.0, 0.0, 1.0][:n_seeds] if n_seeds > 1 else [0.0]
    h = (100, 200, 400)
    env = {100: 2.0, 200: 1.8, 400: 1.5}
    seed_shift = [0.03, -0.02, 0.01][:n_seeds]  # seeds differ, shared by every candidate
    cos = {t: [env[t] + s for s in seed_shift] for t in h}
    ema = {t: [1.02 * env[t] + s for s in seed_shift] for t in h}
    sf = {
        t: [
            1.02 * env[t] + s + gap_sigmas * sigma + sigma * d
            for s, d in zip(seed_shift, dev, strict=True)
        ]
        for t in h
    }
    return frame(
        rows("cosine", 1e-3, "raw", cos),
        rows("constant", 1e-3, "ema@0.1", ema),
        rows("sf_adamw", 1e-3, "x", sf),
    )


def _all_text(df: pd.DataFrame) -> str:
    table = loss_table(df)
    sentences = summary_sentences(table, seed_losses(df))
    rows_ = results_rows(table, seed_losses(df))
    return " ".join(sentences) + " " + " ".join(rows_["verdict"])


def test_a_one_seed_store_never_reports_a_significant_difference():
    df = _store(1, gap_sigmas=50)  # a gap that would be obvious with seeds
    text = _all_text(df)
    assert "significant" not in text.replace("called significant", "")
    s = summary_sentences(loss_table(df), seed_losses(df))
    assert s[0].startswith("best anytime candidate by mean: constant lr=0.001 with ema@0.1")
    assert s[0].endswith("n/a (1 seed): no difference can be tested, so no winner is declared.")
    assert any(
        x.startswith("noise: one seed per setting — every comparison is n/a (1 seed)") for x in s
    )
    verdicts = set(results_rows(loss_table(df), seed_losses(df))["verdict"])
    assert verdicts == {"n/a (1 seed)", "is the envelope"}
    # and the report shows no "±" for a one-seed loss, but says why
    html = build_report(pd.DataFrame({"lineage_id": [], "branch": [], "family": [], "peak_lr": []}),
                        pd.DataFrame({"lineage_id": [], "branch": [], "step": [], "split": [],
                                      "weights": [], "loss": []}), df)  # fmt: skip
    body = re.search(
        r'<table class="envelope-table">.*?<tbody>(.*?)</tbody>', html, flags=re.S
    ).group(1)
    assert "±" not in body and body.count("2.0300 n/a (1 seed)") == 1


def test_a_three_seed_store_with_a_5_sigma_gap_reports_it():
    df = _store(3, gap_sigmas=5)
    s = summary_sentences(loss_table(df), seed_losses(df))
    assert s[0].startswith("anytime-optimal: constant lr=0.001 with ema@0.1")
    assert "its lead over the runner-up sf_adamw lr=0.001 with x" in s[0]
    assert "(3 seeds, significant) in per-seed worst-case regret" in s[0]
    rows_ = results_rows(loss_table(df), seed_losses(df)).set_index(["candidate", "horizon"])
    # constant+EMA vs the cosine envelope: 2% worse with identical seed noise: significant
    assert rows_.loc[("constant lr=0.001 with ema@0.1", 400), "verdict"].endswith("(significant)")


def test_a_three_seed_store_with_a_2_sigma_gap_does_not_call_a_winner():
    df = _store(3, gap_sigmas=2)
    s = summary_sentences(loss_table(df), seed_losses(df))
    assert s[0].startswith("best anytime candidate by mean: constant lr=0.001 with ema@0.1")
    assert "not a winner: its lead over the runner-up sf_adamw lr=0.001 with x" in s[0]
    assert "within noise" in s[0]
