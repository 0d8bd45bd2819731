"""Figures of a sweep with a search, read back from their plotly JSON: the history's labels and
markers, LR sensitivity from searched settings, the heatmap's cells, rows and labels, and the
compute bars with the search's tokens."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis.figures.compute import compute_figure
from analysis.figures.lr_search import searched_lr_figure
from analysis.figures.robustness import ROW_PX, regret_heatmap_figure
from analysis.figures.search import search_history_figure
from analysis.horizons import loss_table
from tests.analysis_tests._frames import frame, rows
from tests.analysis_tests.test_like_for_like import _searched_sweep
from tests.analysis_tests.test_report import CHROMIUM, _drawn, _render


def _history_frames() -> dict[str, pd.DataFrame]:
    trials = pd.DataFrame({
        "number": [0, 1, 2, 3], "state": ["complete", "pruned", "complete", "pruned"],
        # trial 1 was judged on its first rung only: a partial value below the best so far
        "objective": [0.5, 0.1, 0.3, 0.9], "rung": [2, 0, 2, 1], "tokens": [100, 10, 100, 50],
        "cum_tokens": [100, 110, 210, 260], "best_so_far": [0.5, 0.5, 0.3, 0.3],
        "on_front": [False] * 4,
    })  # fmt: skip
    grid = pd.DataFrame({"setting_id": ["a"], "label": ["poly lr=0.1"], "objective": [178.0]})
    meta = pd.DataFrame([{"objective": "regret", "horizons": [10, 100], "unit": "steps"}])
    imp = pd.DataFrame({"target": ["objective"] * 2, "param": ["lr", "gamma"], "importance": [0.7, 0.3]})
    return {"trials": trials, "grid": grid, "importances": imp, "meta": meta}


def test_history_labels_pruned_markers_and_template() -> None:
    figure = search_history_figure(_history_frames())
    fig = json.loads(figure.to_json())
    texts = [a.get("text") for a in fig["layout"].get("annotations", [])]
    assert "new text" not in texts and None not in texts
    label = [a for a in fig["layout"]["annotations"] if str(a.get("text", "")).startswith("grid's best")]
    assert len(label) == 1 and label[0]["text"] == "grid's best 178"
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert math.isclose(label[0]["y"], math.log10(178.0))  # log units on a log axis, not 10^178
    stopped = [t for t in figure.data if t.name == "stopped (at its rung)"][0]
    assert stopped.marker.symbol == "triangle-up-open"
    assert list(stopped.text) == ["r0", "r1"]
    # trial 1's partial value 0.1 is drawn on the best-so-far line (0.5), trial 3 at its 0.9
    assert list(stopped.x) == [1, 3] and list(stopped.y) == [0.5, 0.9]
    assert [c[2] for c in stopped.customdata] == [0.1, 0.9]  # the real value in the hover
    complete = [t for t in figure.data if t.name == "complete"][0]
    assert complete.marker.symbol == "circle"
    # the report's template (plotly_white: a white plot background), not plotly's grey default
    assert fig["layout"]["template"]["layout"]["plot_bgcolor"] == "white"


def test_lr_sensitivity_is_drawn_from_searched_settings() -> None:
    fig = searched_lr_figure(loss_table(_searched_sweep()))
    first = [t for t in fig.data if t.visible is not False]  # the first horizon (100)
    by_name = {t.name: t for t in first}
    assert set(by_name) == {"polynomial (grid)", "polynomial (searched)", "wsd (grid)", "wsd (searched)"}
    assert by_name["wsd (searched)"].marker.symbol == "diamond-open"
    assert by_name["wsd (grid)"].marker.symbol == "circle"
    assert np.allclose(by_name["wsd (searched)"].x, [0.05, 0.06, 0.07, 0.08, 0.09])
    assert list(by_name["polynomial (searched)"].y) == [0.95]
    # at the longest horizon the stopped setting has no point (not a failure, not a zero)
    last = [t for t in fig.data if t.name == "polynomial (searched)"]
    assert len(last) == 1  # only at the horizon it reached
    assert fig.layout.xaxis.type == "log"


def test_heatmap_cells_rows_and_labels() -> None:
    parts = [rows("cosine", 0.1, "raw", {100: [1.0], 200: [0.5]})]
    for k in range(8):  # 8 anytime rows, regrets up to 61234%: read as integers, not 6.1e+04
        parts.append(rows("constant", 0.001 * (k + 1), "raw" if k % 2 else "ema@0.028402848718690213",
                          {100: [1.0 + 4.092 * (k == 0)], 200: [0.5 * (1 + 612.34 * (k == 1)) + 0.01 * k]}))
    fig = regret_heatmap_figure(loss_table(frame(*parts)))
    hm = fig.data[0]
    cells = {t for row in hm.text for t in row}
    assert "409%" in cells and "61200%" in cells and not any("e+" in t for t in cells)
    assert fig.layout.height >= ROW_PX * len(hm.y) + 160  # grows with its 9 rows
    assert fig.layout.yaxis.tickmode == "linear" and fig.layout.yaxis.dtick == 1  # no label dropped
    assert any("ema@0.0284" in y for y in hm.y) and not any("0.028402848" in y for y in hm.y)


def test_compute_figure_adds_the_search_tokens() -> None:
    plan = {"planned_tokens": 40_000.0, "naive_tokens": 100_000.0, "search_tokens": 187_000.0}
    fig = compute_figure(plan)
    search = [t for t in fig.data if t.name == "plan + the search's trials"][0]
    assert np.isclose(search.y[0], 227.0)  # (40K + 187K) / 100K
    assert search.text[0] == "227K tokens (227%; search 187K)"
    assert fig.layout.yaxis.range[1] >= 227.0
    assert len(compute_figure({k: v for k, v in plan.items() if k != "search_tokens"}).data) == 2


def _search_report(tmp_path):
    from analysis.report import write_report

    lin = pd.DataFrame(columns=["lineage_id", "branch", "family", "peak_lr"])
    cur = pd.DataFrame(columns=["lineage_id", "branch", "step", "split", "weights", "loss"])
    plan = {"planned_tokens": 40_000.0, "naive_tokens": 100_000.0}
    return write_report(tmp_path / "search.html", lin, cur, _searched_sweep(), plan,
                        sweep={"sweep_id": "searched"}, search=_history_frames())  # fmt: skip


def test_a_search_report_draws_lr_sensitivity_and_the_search_tokens(tmp_path) -> None:
    import re

    text = _search_report(tmp_path).read_text(encoding="utf-8")
    assert "every family was run at a single peak LR" not in text
    specs = dict(re.findall(r'data-target="([^"]+)">(.*?)</script>', text, flags=re.S))
    lr = json.loads(specs["fig-loss-vs-lr"])
    assert {t["marker"]["symbol"] for t in lr["data"]} == {"circle", "diamond-open"}
    compute = json.loads(specs["fig-compute"])
    assert "plan + the search's trials" in [t["name"] for t in compute["data"]]  # 260 tokens searched
    assert "compute of the search: its trials trained 260 tokens more" in text
    assert "stopped early by the search: 1 candidate(s)" in text and "failed or not run" not in text
    # the results table says "stopped" where the search stopped a setting (never "missing")
    assert re.search(r'<td class="num" data-v="">stopped</td>', text)
    # the report's template in every figure, the search's included
    assert {"search-history", "search-importance", "fig-regret-heatmap"} <= set(specs)
    for fig_id, spec in specs.items():
        assert json.loads(spec)["layout"]["template"]["layout"]["plot_bgcolor"] == "white", fig_id


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium binary (Debian package `chromium`)")
def test_a_search_report_renders_without_a_console_message(tmp_path) -> None:
    path = _search_report(tmp_path)
    dom, console = _render(path.as_uri(), tmp_path / "profile")
    assert not console, "\n".join(console)
    for fig_id in ("fig-loss-vs-lr", "fig-regret-heatmap", "fig-compute", "search-history"):
        _drawn(dom, fig_id)
    import re

    history = re.search(r'<div id="search-history".*?</section>', dom, flags=re.S).group(0)
    assert "grid's best" in history and "new text" not in history  # no placeholder annotation
