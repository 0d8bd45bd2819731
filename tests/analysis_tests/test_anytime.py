"""The anytime-optimal answer on hand-built results whose answers are known exactly."""

from __future__ import annotations

import math

import pytest

from analysis.anytime import anytime_answers, anytime_optimal, best_horizon_aware, robustness
from analysis.definitions import ANYTIME, HORIZON_AWARE, candidate_kind
from analysis.horizons import envelope, loss_table, oracle, seed_losses
from analysis.summary import summary_sentences
from tests.analysis_tests._frames import frame, rows

# One seed, horizons 100/200/400 steps (1, 2, 4× Chinchilla):
#   candidate                kind           100    200    400
#   cosine lr=1e-3 raw       horizon-aware  2.00   1.80   1.50   <- envelope at 100 and 400
#   cosine lr=3e-3 raw       horizon-aware  2.10   1.75   1.60   <- envelope at 200
#   wsd lr=1e-3 raw          horizon-aware  2.05   1.78   1.52
#   constant lr=1e-3 ema     anytime        2.04   1.785  1.53   regret 2%, 2%, 2%
#   constant lr=1e-3 raw     anytime        2.20   1.90   1.62
#   sf_adamw lr=1e-3 x       anytime        1.98   1.82   1.56   regret −1%, 4%, 4%
# Envelope = (2.00, 1.75, 1.50). Against it the constant+EMA run has worst-case regret 2%: the
# anytime-optimal answer. Against the all-candidate oracle (1.98, 1.75, 1.50) the horizon-aware
# cosine lr=1e-3 would rank first (worst 1.8/1.75 − 1 = 2.86% < constant's 2.04/1.98 − 1 = 3.03%):
# the old, wrong, answer this test guards against.
CASE = frame(
    rows("cosine", 1e-3, "raw", {100: [2.00], 200: [1.80], 400: [1.50]}),
    rows("cosine", 3e-3, "raw", {100: [2.10], 200: [1.75], 400: [1.60]}),
    rows("wsd", 1e-3, "raw", {100: [2.05], 200: [1.78], 400: [1.52]},
         schedule_params={"cooldown_fraction": 0.2, "cooldown_shape": "1-sqrt"}),
    rows("constant", 1e-3, "ema@0.1", {100: [2.04], 200: [1.785], 400: [1.53]}),
    rows("constant", 1e-3, "raw", {100: [2.20], 200: [1.90], 400: [1.62]}),
    rows("sf_adamw", 1e-3, "x", {100: [1.98], 200: [1.82], 400: [1.56]}),
)  # fmt: skip
TABLE = loss_table(CASE)


def test_kinds_follow_the_seed_papers():
    assert candidate_kind("cosine", "raw") == HORIZON_AWARE
    assert candidate_kind("linear", "ema@0.1") == HORIZON_AWARE
    assert candidate_kind("wsd", "raw") == HORIZON_AWARE
    for schedule in ("constant", "polynomial", "inverse_sqrt"):
        assert candidate_kind(schedule, "raw") == ANYTIME
        assert candidate_kind(schedule, "ema@0.1") == ANYTIME
        assert candidate_kind(schedule, "swa@500") == ANYTIME  # SWA from a fixed step
        assert candidate_kind(schedule, "lawa@5x10") == ANYTIME
        # an SWA window starting at a fraction of the horizon needs the horizon in advance
        assert candidate_kind(schedule, "swa@0.5") == HORIZON_AWARE
    assert candidate_kind(None, "x", "sf_adamw") == ANYTIME  # schedule-free: no schedule at all
    assert candidate_kind("", "raw", "sf_normuon") == ANYTIME
    assert candidate_kind("", "raw", "cosine") == HORIZON_AWARE  # schedule given only as family
    assert candidate_kind("my_new_schedule", "raw") == HORIZON_AWARE  # never assumed anytime
    kinds = TABLE.drop_duplicates("candidate").set_index("candidate")["kind"]
    assert kinds["sf_adamw lr=0.001 with x"] == ANYTIME
    assert kinds["wsd lr=0.001 with raw"] == HORIZON_AWARE


def test_envelope_is_the_best_horizon_aware_candidate_per_horizon():
    env = envelope(TABLE).set_index("horizon")
    assert env["candidate"].to_dict() == {
        100: "cosine lr=0.001 with raw",
        200: "cosine lr=0.003 with raw",
        400: "cosine lr=0.001 with raw",
    }
    assert env["loss"].tolist() == [2.00, 1.75, 1.50]
    assert set(env["basis"]) == {"horizon-aware"}
    # the oracle over all candidates differs at 100: schedule-free x is best there
    assert oracle(TABLE).set_index("horizon").loc[100, "candidate"] == "sf_adamw lr=0.001 with x"


def test_anytime_optimal_is_horizon_free_with_regret_against_the_envelope():
    best = anytime_optimal(TABLE)
    assert best["candidate"].tolist() == ["constant lr=0.001 with ema@0.1"]
    assert best["kind"].iloc[0] == ANYTIME
    assert best["worst_regret"].iloc[0] == pytest.approx(0.02, abs=1e-12)  # 2.04/2.00 − 1, …
    assert best["mean_regret"].iloc[0] == pytest.approx(0.02, abs=1e-12)
    rob = robustness(TABLE).set_index("candidate")
    sf = rob.loc["sf_adamw lr=0.001 with x"]
    assert sf["worst_regret"] == pytest.approx(1.82 / 1.75 - 1)  # 4%: at 200
    assert sf["mean_regret"] == pytest.approx(
        (1.98 / 2.0 - 1 + 1.82 / 1.75 - 1 + 1.56 / 1.5 - 1) / 3
    )
    assert sf["worst_horizon"] == 200
    # horizon-aware candidates are never anytime-optimal, even with a lower worst case
    fam = anytime_optimal(TABLE, by="family").set_index("family")
    assert set(fam.index) == {"constant", "sf_adamw"}
    assert fam.loc["constant", "candidate"] == "constant lr=0.001 with ema@0.1"


def test_best_horizon_aware_setting():
    # cosine 1e-3: (0, 1.8/1.75−1, 0) → 2.86%; cosine 3e-3: 6.67%; wsd: (2.5%, 1.71%, 1.33%) → 2.5%
    aware = best_horizon_aware(TABLE)
    assert aware["candidate"].tolist() == ["wsd lr=0.001 with raw"]
    assert aware["worst_regret"].iloc[0] == pytest.approx(0.025)


def test_headline_sentence_names_the_anytime_candidate_and_the_envelope():
    s = summary_sentences(TABLE, seed_losses(CASE))
    assert s[0].startswith(
        "best anytime candidate by mean: constant lr=0.001 with ema@0.1, worst-case regret 2% "
        "against the tuned envelope over 1–4× Chinchilla (mean 2%"
    )
    assert "n/a (1 seed)" in s[0]
    assert s[1] == (
        "best horizon-aware setting: wsd lr=0.001 with raw, worst-case regret 2.5% against the "
        "envelope (mean 1.8%)."
    )
    assert s[2] == (
        "envelope (best horizon-aware per horizon): cosine lr=0.001 with raw at 1×; "
        "cosine lr=0.003 with raw at 2×; cosine lr=0.001 with raw at 4×."
    )


def test_horizon_aware_swa_joins_the_envelope():
    # constant + SWA over the second half of each horizon beats everything, but it is placed
    # for its horizon: it raises the bar (the envelope) instead of winning the anytime race.
    swa = frame(rows("constant", 1e-3, "swa@0.5", {100: [1.99], 200: [1.74], 400: [1.49]}))
    table = loss_table(frame(CASE.to_dict("records"), swa.to_dict("records")))
    env = envelope(table).set_index("horizon")
    assert set(env["candidate"]) == {"constant lr=0.001 with swa@0.5"}
    best = anytime_optimal(table).iloc[0]
    assert best["candidate"] == "constant lr=0.001 with ema@0.1"
    assert best["worst_regret"] == pytest.approx(1.53 / 1.49 - 1)


def test_without_horizon_aware_candidates_the_reference_is_said_to_be_the_plain_best():
    only = loss_table(CASE.loc[CASE["family"].isin(["constant", "sf_adamw"])])
    env = envelope(only)
    assert set(env["basis"]) == {"all candidates"}
    ans = anytime_answers(
        only, seed_losses(CASE.loc[CASE["family"].isin(["constant", "sf_adamw"])])
    )[0]
    assert ans.basis == "all candidates" and ans.best_aware is None
    s = summary_sentences(only)
    assert s[0].startswith("no horizon-aware candidate (cosine, linear, WSD) in this scope")


def test_without_anytime_candidates_nothing_is_anytime_optimal():
    aware = CASE.loc[CASE["family"].isin(["cosine", "wsd"])]
    table = loss_table(aware)
    assert anytime_optimal(table).empty
    s = summary_sentences(table, seed_losses(aware))
    assert s[0].startswith("no anytime (horizon-free) candidate in this scope")
    assert s[1].startswith("best horizon-aware setting: wsd lr=0.001 with raw")


def test_a_diverged_anytime_candidate_ranks_last_with_infinite_regret():
    div = frame(rows("polynomial", 1e-2, "raw", {100: [1.9], 200: [math.nan], 400: [math.nan]},
                     schedule_params={"gamma": 0.5, "t0": 10}))  # fmt: skip
    table = loss_table(frame(CASE.to_dict("records"), div.to_dict("records")))
    rob = robustness(table)
    last = rob.loc[rob["kind"] == ANYTIME].iloc[-1]
    assert last["candidate"] == "polynomial lr=0.01 with raw" and math.isinf(last["worst_regret"])
    assert anytime_optimal(table)["candidate"].tolist() == ["constant lr=0.001 with ema@0.1"]
