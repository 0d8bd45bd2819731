"""Numbers as people read them: the formatters, value by value, and the labels built with them."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.tables import candidate_labels
from analysis.units import pct3, short_numbers, sig3
from tests.analysis_tests._frames import frame, rows


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.028402848718690213, "0.0284"),
        (0.000123456, "0.000123"),
        (0.274313, "0.274"),
        (409.2, "409"),
        (100.0, "100"),  # never "1e+02"
        (61234.0, "61200"),  # never "6.1e+04"
        (0.1, "0.1"),
        (1e-3, "0.001"),
        (3e-5, "0.00003"),
        (0.09996, "0.1"),  # rounding carries into the next decade
        (-15.34, "-15.3"),
        (1.0, "1"),
        (0.0, "0"),
        (2.5e-9, "2.5e-9"),
        (math.inf, "inf"),
        (math.nan, "nan"),
    ],
)
def test_sig3_per_value(value: float, text: str) -> None:
    assert sig3(value) == text


@pytest.mark.parametrize(
    ("fraction", "text"),
    [(4.092, "409%"), (612.3, "61200%"), (0.00523, "0.523%"), (-0.1534, "-15.3%"), (0.0, "0%"),
     (math.inf, "∞"), (math.nan, "n/a")],
)  # fmt: skip
def test_pct3_per_value(fraction: float, text: str) -> None:
    assert pct3(fraction) == text
    if fraction > 0 and math.isfinite(fraction):
        assert pct3(fraction, sign=True) == "+" + text


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("ema@0.028402848718690213", "ema@0.0284"),
        ("swa@0.5/10", "swa@0.5/10"),  # short numbers and integers as they are
        ("cooldown_fraction=0.274313, lr 1e-05", "cooldown_fraction=0.274313, lr 0.00001".replace("0.274313", "0.274")),
        ("raw", "raw"),
        ("h=800", "h=800"),
    ],
)
def test_short_numbers_rounds_every_decimal_in_a_text(text: str, short: str) -> None:
    assert short_numbers(text) == short


def test_labels_of_searched_settings_read_3_digits_and_stay_unique() -> None:
    fl = frame(
        rows("wsd", 0.123456789, "ema@0.028402848718690213", {100: [1.0]},
             schedule_params={"cooldown_fraction": 0.274313}),
        rows("wsd", 0.2, "ema@0.05", {100: [1.1]}, schedule_params={"cooldown_fraction": 0.2}),
        # two searched LRs equal to 3 digits: the labels take as many digits as keep them apart
        rows("polynomial", 0.0123451, "raw", {100: [1.2]}),
        rows("polynomial", 0.0123449, "raw", {100: [1.3]}),
    )  # fmt: skip
    cands = frame_candidates(fl)
    labels = dict(zip(cands["peak_lr"], candidate_labels(cands), strict=True))
    assert labels[0.123456789] == "wsd (cooldown_fraction=0.274) lr=0.123 with ema@0.0284"
    assert labels[0.2] == "wsd (cooldown_fraction=0.2) lr=0.2 with ema@0.05"
    assert labels[0.0123451] != labels[0.0123449]
    assert labels[0.0123451] == "polynomial lr=0.01235 with raw"


def frame_candidates(fl: pd.DataFrame) -> pd.DataFrame:
    from analysis.tables import CANDIDATE_COLUMNS, validate_final_losses

    return validate_final_losses(fl)[list(CANDIDATE_COLUMNS)].drop_duplicates().reset_index(drop=True)
