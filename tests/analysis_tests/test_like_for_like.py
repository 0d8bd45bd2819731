"""A sweep with a search answered like for like: stopped settings compared only where they
reached and never called failed, each family's tuning budget stated, unequal budgets warned."""

from __future__ import annotations

import math

import pandas as pd

from analysis.budget import tuning_budgets
from analysis.horizons import loss_table, seed_losses
from analysis.summary import summary_sentences
from tests.analysis_tests._frames import frame, rows

NAN = math.nan


def _searched_sweep() -> pd.DataFrame:
    """wsd: 1 grid point + 5 searched cooldowns, all complete; polynomial: 1 grid point + 1
    searched setting the search stopped after the first horizon (better than the grid point
    there)."""
    grid = frame(
        rows("wsd", 0.1, "raw", {100: [1.00], 200: [0.90], 400: [0.80]},
             schedule_params={"cooldown_fraction": 0.2}),
        rows("polynomial", 0.1, "raw", {100: [1.10], 200: [1.00], 400: [0.90]},
             schedule_params={"gamma": 0.5}),
    ).assign(origin="grid")  # fmt: skip
    searched = [
        rows("wsd", 0.05 + 0.01 * k, "raw", {100: [1.01 + k / 100], 200: [0.91], 400: [0.81]},
             schedule_params={"cooldown_fraction": 0.1 + 0.05 * k})
        for k in range(5)
    ]  # fmt: skip
    stopped = rows("polynomial", 0.3, "raw", {100: [0.95]}, schedule_params={"gamma": 0.7})
    stopped += rows("polynomial", 0.3, "raw", {200: [NAN], 400: [NAN]},
                    schedule_params={"gamma": 0.7}, status="stopped")  # fmt: skip
    return pd.concat([grid, frame(*searched, stopped).assign(origin="search")], ignore_index=True)


def test_budgets_count_grid_points_and_searched_trials_per_family() -> None:
    b = tuning_budgets(loss_table(_searched_sweep())).set_index("family")
    assert b.loc["wsd", ["grid", "searched", "total"]].tolist() == [1, 5, 6]
    assert b.loc["polynomial", ["grid", "searched", "total"]].tolist() == [1, 1, 2]
    # a grid-only sweep has no origin column: no budgets, no sentence
    assert tuning_budgets(loss_table(_searched_sweep().drop(columns="origin"))).empty


def test_stopped_setting_is_not_failed_and_unequal_budgets_are_warned() -> None:
    fl = _searched_sweep()
    text = summary_sentences(loss_table(fl), seed_losses(fl))
    joined = "\n".join(text)
    assert "failed or not run" not in joined
    stopped = [s for s in text if s.startswith("stopped early by the search: 1 candidate(s)")]
    assert len(stopped) == 1 and "polynomial (gamma=0.7) lr=0.3 with raw" in stopped[0]
    assert (
        "tuning budget per family (settings tried: grid points + searched trials): "
        "polynomial 2 (1 grid + 1 searched); wsd 6 (1 grid + 5 searched)." in text
    )
    warn = [s for s in text if s.startswith("unequal tuning:")]
    assert warn == [
        "unequal tuning: wsd was given 6 settings, polynomial 2 (more than 2× apart) — a family "
        "tuned with fewer settings may look worse only for that; compare with equal budgets "
        "(e.g. one search per family) before concluding."
    ]
    # the headline ranks the family's best *completed* setting: the grid point, with its regret
    # against the envelope (wsd grid 1.00/0.90/0.80): 1.1/1.0 − 1 = 10% at the first horizon
    assert text[0].startswith("anytime-optimal: polynomial (gamma=0.5) lr=0.1 with raw")
    assert "worst-case regret 12% " in text[0]  # 0.90/0.80 − 1 = 12.5% at the longest horizon


def test_budgets_within_2x_are_stated_without_a_warning() -> None:
    fl = _searched_sweep()
    extra = frame(rows("polynomial", 0.2, "raw", {100: [1.2], 200: [1.1], 400: [1.0]},
                       schedule_params={"gamma": 0.3})).assign(origin="search")  # fmt: skip
    fl = pd.concat([fl, extra], ignore_index=True)
    text = summary_sentences(loss_table(fl), seed_losses(fl))
    assert any("polynomial 3 (1 grid + 2 searched); wsd 6" in s for s in text)
    assert not any(s.startswith("unequal tuning") for s in text)
