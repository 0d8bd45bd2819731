"""Figure-level honesty: refused and flagged fits, extrapolation only with a band, readable
units, fixed colours."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.figures import (
    FAMILY_COLORS,
    FigureUnavailable,
    compute_figure,
    data_law_figure,
    family_color,
)
from analysis.figures._common import log_ticks, si, weights_dash
from analysis.horizons import loss_table
from analysis.summary import summary_sentences
from tests.analysis_tests._frames import frame, rows

H5 = (100, 200, 400, 800, 1600)


def _law_table(E: float, horizons: tuple[int, ...] = H5):
    # L(D) = E + B·D^−0.3 on the constant+EMA candidate, exact (one seed); D = tokens
    loss = {h: [E + 900.0 * (h * 1000.0) ** -0.3] for h in horizons}
    return loss_table(frame(rows("constant", 1e-3, "ema@0.1", loss)))


def _names(fig) -> list[str]:
    return [t.name or "" for t in fig.data]


def test_a_sound_fit_is_extrapolated_with_its_bootstrap_band():
    fig = data_law_figure(_law_table(E=2.0), n_bootstrap=30)
    names = _names(fig)
    assert any(n.startswith("ema@0.1: 95% bootstrap band (30 refits)") for n in names)
    extrap = [t for t in fig.data if (t.name or "").endswith("extrapolated to 4×")]
    assert len(extrap) == 1 and max(extrap[0].x) == pytest.approx(4 * 1600 * 1000.0)
    assert "[flagged" not in " ".join(names)
    assert fig.layout.meta["note"] == ""


def test_a_degenerate_fit_is_flagged_and_not_extrapolated():
    fig = data_law_figure(_law_table(E=0.0), n_bootstrap=30)  # a pure power law: E sits on 0
    names = _names(fig)
    assert any("[flagged: parameter on a bound]" in n for n in names)
    assert not any("extrapolated" in n or "bootstrap band" in n for n in names)
    assert max(max(t.x) for t in fig.data) == pytest.approx(1600 * 1000.0)  # not beyond the data
    assert "constant/ema@0.1: flagged, not extrapolated — E ≈ 0" in fig.layout.meta["note"]


def test_no_band_means_no_extrapolation():
    fig = data_law_figure(_law_table(E=2.0), n_bootstrap=0)
    assert not any("extrapolated" in n for n in _names(fig))
    assert "constant/ema@0.1: no bootstrap band, not extrapolated" in fig.layout.meta["note"]


def test_three_horizons_are_refused_with_the_reason():
    with pytest.raises(
        FigureUnavailable,
        match=r"3 parameters and needs ≥ 4 horizons .* no \(family, weights\) has more than 3",
    ):
        data_law_figure(_law_table(E=2.0, horizons=(100, 200, 400)))


def test_readable_units():
    assert [si(x) for x in (950, 819200, 1.2e6, 3e9, 2.5e12)] == [
        "950",
        "819K",
        "1.2M",
        "3B",
        "2.5T",
    ]
    vals, text = log_ticks(1e5, 2e6)
    assert text == ["100K", "200K", "500K", "1M", "2M"] and vals[0] == 1e5
    assert log_ticks(2.05e5, 8.19e5)[1] == ["300K", "400K", "500K", "600K", "800K"]  # denser
    assert log_ticks(3.1e5, 3.2e5)[1] == ["300K", "400K"]  # a very narrow range: its neighbours


def test_compute_bars_and_the_compute_sentence_use_readable_units():
    plan = {"planned_tokens": 6_717_440, "naive_tokens": 11_468_800,
            "planned_flops": 4.03e12, "naive_flops": 6.89e12}  # fmt: skip
    bars = compute_figure(plan).data
    assert list(bars[0].text) == ["11.5M tokens", "6.89T FLOPs"]
    assert list(bars[1].text) == ["6.72M tokens (59%)", "4.03T FLOPs (58%)"]
    table = loss_table(frame(rows("constant", 0.01, "raw", {100: [3.0], 200: [2.8], 400: [2.6]})))
    (sentence,) = [s for s in summary_sentences(table, plan=plan) if s.startswith("compute:")]
    assert "(6.72M vs 11.5M;" in sentence and "59% of the naive tokens" in sentence


def test_colours_are_fixed_by_name_not_by_rank():
    assert family_color("cosine") == FAMILY_COLORS["cosine"] == "#d62728"
    # the same colour whatever else is in the sweep (the old rank-based one shifted)
    assert family_color("wsd", ["wsd"]) == family_color("wsd", ["constant", "cosine", "wsd"])
    assert family_color("my_new_family") == family_color("my_new_family")  # stable hash
    assert weights_dash("raw") == weights_dash("x") == "solid" and weights_dash("ema@0.1") == "dash"
    assert len(set(FAMILY_COLORS.values())) == len(FAMILY_COLORS)
    assert np.all([c.startswith("#") and len(c) == 7 for c in FAMILY_COLORS.values()])
