"""The HTML report on a synthetic but realistic sweep (``_sweep.py``), down to a real headless
Chromium: every figure drawn, the answer stated, the table sortable and filterable, the
comparison of two sweeps rendered."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.offline
import pytest

from analysis import FIGURE_IDS, build_panels, build_report, export_curve_csv, write_report
from analysis.compare import COMPARE_FIGURE_IDS, write_comparison_report
from analysis.figures import FAMILY_COLORS
from analysis.report import SweepResults
from tests.analysis_tests._harness import HARNESS
from tests.analysis_tests._sweep import SWEEP_ROW, make_results


@pytest.fixture(scope="module")
def results():
    return make_results()


@pytest.fixture(scope="module")
def report_path(results, tmp_path_factory) -> Path:
    """The report, built once for the module (a build takes seconds: bootstrap bands, fits)."""
    lin, cur, fl, plan, lrs = results
    folder = tmp_path_factory.mktemp("report") / "out"
    return write_report(
        folder / "report.html",
        lin,
        cur,
        fl,
        plan,
        sweep=SWEEP_ROW,
        title="synthetic sweep",
        lr_sequences=lrs,
    )


@pytest.fixture(scope="module")
def report_html(report_path) -> str:
    return report_path.read_text(encoding="utf-8")


LONG = "other_sweep_with_a_very_long_name_that_a_real_user_gave_it_shifted_losses_one_seed_2026"
"""The second sweep's name: long enough to overlap the panels if nothing wrapped or cut it."""


@pytest.fixture(scope="module")
def compare_path(results, tmp_path_factory) -> Path:
    lin, cur, fl, plan, lrs = results
    b = make_results(seeds=(0,), sweep_id=LONG, shift=0.02)
    folder = tmp_path_factory.mktemp("compare")
    return write_comparison_report(
        folder / "compare.html",
        [SweepResults(lin, cur, fl, plan, SWEEP_ROW, lrs),
         SweepResults(b[0], b[1], b[2], b[3], {**SWEEP_ROW, "sweep_id": LONG}, b[4])],
    )  # fmt: skip


def _figure_specs(text: str) -> dict[str, dict]:
    """The JSON of every figure embedded in the report, by div id."""
    found = re.findall(
        r'<script type="application/json" class="lrsweep-figure-json" data-target="([^"]+)">(.*?)</script>',
        text,
        flags=re.S,
    )
    return {fig_id: json.loads(blob) for fig_id, blob in found}


def _n_values(array: object) -> int:
    """Length of a plotly data array: a JSON list, or a base64 typed array {dtype, bdata}."""
    if isinstance(array, dict) and "bdata" in array:
        itemsize = np.dtype(array["dtype"]).itemsize
        return len(base64.b64decode(array["bdata"])) // itemsize
    return len(array) if isinstance(array, list) else 0


def test_plotly_bundle_is_embedded_exactly_once(report_html):
    signature = plotly.offline.get_plotlyjs()[:300]
    assert report_html.count(signature) == 1
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", report_html)  # offline
    assert report_html.count('<script type="text/javascript">') == 1


def test_every_figure_is_present_with_data(report_html):
    specs = _figure_specs(report_html)
    assert FIGURE_IDS == (
        "fig-lr-schedules", "fig-eval-curves", "fig-loss-vs-horizon", "fig-regret-heatmap",
        "fig-loss-vs-lr", "fig-data-law", "fig-chinchilla", "fig-curve-law", "fig-compute",
    )  # fmt: skip
    assert list(specs) == list(FIGURE_IDS), "a figure is missing (became a note?)"
    for fig_id, spec in specs.items():
        assert f'<div id="{fig_id}" class="lrsweep-plot"' in report_html
        n_points = sum(max(_n_values(t.get("y")), _n_values(t.get("z"))) for t in spec["data"])
        assert n_points > 0, f"{fig_id} has only empty traces"
    assert "Not drawn" not in report_html and "Failed:" not in report_html


def test_summary_states_the_answer_and_the_definitions(report_html):
    findings = re.search(
        r'<ul class="findings" id="findings">(.*?)</ul>', report_html, flags=re.S
    ).group(1)
    # Two model sizes: every sentence says which it is about. The anytime answer is horizon-free.
    head = re.search(
        r"<li>\[shakespeare small\] (anytime-optimal|best anytime candidate by mean): (\S+)",
        findings,
    )
    assert head and head.group(2) in ("constant", "sf_adamw")
    assert "against the tuned envelope over 0.125–1× Chinchilla" in findings  # small: N = 4e4
    assert "[shakespeare small] best horizon-aware setting: wsd" in findings
    assert "diverged: 2 candidate(s)" in findings and "sf_adamw lr=0.003 with x" in findings
    assert "compute: the plan spends" in findings
    assert "noise: up to 2 seeds per setting; comparisons are paired by seed" in findings
    definitions = re.search(
        r'<section id="definitions">(.*?)</section>', report_html, flags=re.S
    ).group(1)
    assert "Anytime (horizon-free) candidates" in definitions and "envelope" in definitions
    assert report_html.index('id="summary"') < report_html.index('id="section-fig-lr-schedules"')
    assert (
        report_html.count('class="summary-table"') == 2
        and report_html.count('class="envelope-table"') == 2
    )


def test_one_colour_per_family_in_every_figure(report_html):
    """Every trace whose name starts with a family (or its candidate label) has that family's
    colour, in every figure; weights variants differ by dash/marker, not colour."""
    specs = _figure_specs(report_html)
    seen: dict[str, set[str]] = {}
    for fig_id, spec in specs.items():
        if fig_id in ("fig-regret-heatmap", "fig-compute", "fig-chinchilla"):
            continue  # a heatmap; bars; sizes in shades of the family colour (checked below)
        for t in spec["data"]:
            name = t.get("name") or ""
            fam = next(
                (f for f in sorted(FAMILY_COLORS, key=len, reverse=True) if name.startswith(f)),
                None,
            )
            color = (t.get("line") or {}).get("color") or (t.get("marker") or {}).get("color")
            if fam and color and t.get("mode") != "markers" or (fam and fig_id == "fig-curve-law"):
                assert color == FAMILY_COLORS[fam], (fig_id, name, color)
                seen.setdefault(fam, set()).add(fig_id)
    assert seen["constant"] >= {
        "fig-lr-schedules",
        "fig-loss-vs-horizon",
        "fig-loss-vs-lr",
        "fig-curve-law",
    }
    assert seen["sf_adamw"] >= {"fig-loss-vs-horizon"}
    eval_fig = specs["fig-eval-curves"]["data"]
    dashes = {(t["name"].split(" · ")[0], t["line"]["dash"]) for t in eval_fig}
    assert ("raw", "solid") in dashes and ("ema@0.05", "dash") in dashes
    assert len({t["line"]["color"] for t in eval_fig if t.get("visible", True) is not False}) == 1


def test_error_bars_hover_and_ticks(report_html):
    spec = _figure_specs(report_html)["fig-loss-vs-horizon"]
    bars = [t for t in spec["data"] if t.get("error_y")]
    assert bars and all(t["error_y"]["visible"] for t in bars)  # 2 seeds: drawn
    assert any(_n_values(t["error_y"]["array"]) == 4 for t in bars)
    text = json.dumps(spec["data"], ensure_ascii=False)
    assert "steps · " in text and "K tokens · " in text and "× Chinchilla" in text  # hover
    assert "e+0" not in text  # no 8.19e+05 in hover text
    xaxis = spec["layout"]["xaxis"]
    assert xaxis["type"] == "log" and {"100K", "200K", "500K"} <= set(xaxis["ticktext"])
    assert "Error bars: ±1 standard error over seeds" in report_html


def test_one_seed_report_says_there_are_no_error_bars():
    lin, cur, fl, plan, lrs = make_results(seeds=(0,))
    html = build_report(lin, cur, fl, plan, sweep=SWEEP_ROW, lr_sequences=lrs)
    spec = _figure_specs(html)["fig-loss-vs-horizon"]
    assert not any((t.get("error_y") or {}).get("visible") for t in spec["data"])
    assert "This sweep has one seed per setting: no error bars." in html
    findings = re.search(r'<ul class="findings" id="findings">(.*?)</ul>', html, flags=re.S).group(
        1
    )
    assert "significant" not in findings.replace("called significant", "")
    assert "n/a (1 seed)" in findings


def test_results_table_and_provenance(report_html, results):
    table = re.search(
        r'<table class="lrsweep-table" id="results-table">(.*?)</table>', report_html, flags=re.S
    )
    heads = re.findall(r'<th data-key="(\w+)" data-type="(\w+)"', table.group(1))
    assert (
        ("loss", "num") in heads and ("candidate", "text") in heads and ("regret", "num") in heads
    )
    n_rows = table.group(1).count("<tr>") - 1
    fl = results[2]
    n_candidates = fl.groupby(["model_size", "family", "peak_lr", "weights"]).ngroups
    assert n_rows == n_candidates * 4  # one row per candidate and horizon
    assert 'data-table="results-table"' in report_html  # the filter box
    prov = re.search(r'<section id="provenance">(.*?)</section>', report_html, flags=re.S).group(1)
    assert "lrsweep 0.1.0+test" in prov and "0123abcd" in prov and "2026-11-30 10:05:00" in prov
    assert "report written" in prov and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", prov)
    fixed = re.search(r'<table class="fixed-hparams">(.*?)</table>', prov, flags=re.S).group(1)
    assert "<td>warmup</td><td>20</td>" in fixed and "<td>batch_size</td><td>8</td>" in fixed
    assert "<td>adamw.betas</td><td>[0.9, 0.95]</td>" in fixed
    swept = re.search(r'<table class="swept-hparams">(.*?)</table>', prov, flags=re.S).group(1)
    assert "<td>peak_lr</td><td>0.001, 0.003</td>" in swept
    assert "steps = [100, 200, 400, 800]" in prov  # the spec as submitted


def test_curve_law_panel_fits_eval_curves_and_shows_the_held_out_prediction(report_html):
    spec = _figure_specs(report_html)["fig-curve-law"]
    names = [t.get("name", "") for t in spec["data"]]
    assert spec["layout"]["yaxis"]["title"]["text"] == "eval loss (raw weights)"
    assert any(n.startswith("constant measured eval loss (fitted)") for n in names)
    assert any(n.startswith("cosine: predicted without it (LOSO)") for n in names)
    held = [n for n in names if "predicted from its LR alone" in n]
    assert held and held[0].startswith("wsd")
    err = float(re.search(r"mean \|rel err\| ([\d.]+)%", held[0]).group(1))
    assert err < 2.0  # the synthetic losses are a power law in the LR area: predictable
    caption = re.search(
        r'id="section-fig-curve-law".*?<p class="caption">(.*?)</p>', report_html, flags=re.S
    ).group(1)
    assert "fitted on the eval losses of constant, cosine with the exact per-step LR" in caption
    assert "wsd (held out): mean |rel err|" in caption and "multi-start optima" in caption
    # two fitted schedules: LOSO cannot discriminate, the regularised fit is chosen, and the
    # caption says so (the rule in general, then which rule chose here)
    caption = html.unescape(caption)
    assert "with fewer than 3 fitted schedules, where that cannot discriminate" in caption
    assert (
        "leave-one-schedule-out cannot discriminate (2 training schedules; it needs ≥ 3): "
        "chose the regularised fit (Luo et al.'s procedure" in caption
    )
    # the LR-annealing law predicts the held-out schedule too (dotted), with its error
    assert any(n.startswith("wsd: LR-annealing law, predicted — mean |rel err|") for n in names)
    assert "LR-annealing law (Tissue et al. 2024, dotted), held out: wsd: mean |rel err|" in caption


def test_curve_law_needs_the_exact_lr_when_train_rows_are_sub_sampled(results):
    lin, cur, fl, plan, _ = results
    panels = build_panels(lin, cur, fl, plan)  # no LR sequences, train rows every 5 steps
    law = next(p for p in panels if p.id == "fig-curve-law")
    assert law.figure is None and "no exact per-step LR" in law.note


def test_an_old_store_layout_gives_the_same_answer(results):
    old = make_results(whole=False)
    lin, cur, fl, plan, lrs = old
    legacy_lrs = {(k[1], k[2]): v for k, v in lrs.items()}
    panels = {p.id: p for p in build_panels(lin, cur, fl, plan, legacy_lrs)}
    assert panels["fig-curve-law"].figure is not None, panels["fig-curve-law"].note
    assert all(p.figure is not None for p in panels.values()), [
        p.note for p in panels.values() if p.figure is None
    ]
    # the WSD cooldown branch's eval curve starts at step 50 (the trunk's rows put in front)
    eval_fig = panels["fig-eval-curves"].figure
    wsd = [
        t
        for t in eval_fig.data
        if t.name.startswith("raw · T=800") and t.line.color == FAMILY_COLORS["wsd"]
    ]
    assert wsd and min(wsd[0].x) == 50


def test_single_horizon_gives_notes_not_a_crash(results):
    lin, cur, fl, _, lrs = results
    one = fl.loc[fl["horizon"] == 400]
    text = build_report(lin, cur, one, lr_sequences=lrs)
    specs = _figure_specs(text)
    for fig_id in ("fig-loss-vs-horizon", "fig-regret-heatmap", "fig-data-law", "fig-chinchilla"):
        assert fig_id not in specs
        assert re.search(
            rf'id="section-{fig_id}"[^>]*>.*?<p class="note">Not drawn: ', text, flags=re.S
        )
    assert "fig-lr-schedules" in specs  # what can be drawn still is


def test_write_report_is_atomic_and_complete(report_path, report_html):
    assert report_html.startswith("<!DOCTYPE html>") and report_html.rstrip().endswith("</html>")
    assert "<title>synthetic sweep</title>" in report_html and "sweep synthetic" in report_html
    assert [p.name for p in report_path.parent.iterdir()] == ["report.html"]  # no temp file left


def test_comparison_report_puts_two_sweeps_side_by_side(compare_path):
    html = compare_path.read_text(encoding="utf-8")
    assert re.findall(r'<section class="compare-sweep" data-sweep="([^"]+)">', html) == [
        "synthetic",
        LONG,
    ]
    assert f'<h2 title="{LONG}">{LONG}</h2>' in html  # cut by CSS, whole in the tooltip
    specs = _figure_specs(html)
    assert list(specs) == list(COMPARE_FIGURE_IDS)
    names = [t["name"] for t in specs["fig-compare-horizon"]["data"]]
    assert any(n.startswith("synthetic: ") for n in names) and any(
        n.startswith(LONG[:20]) for n in names
    )
    assert all(len(n) <= 48 for n in names)  # legend entries cut, never squeezing the plot
    assert specs["fig-compare-horizon"]["layout"]["legend"]["orientation"] == "h"
    assert "<td>seed</td><td>0, 1</td><td>0</td>" in html  # what differs between the sweeps
    rows = re.search(
        r'<table class="lrsweep-table" id="results-table">(.*?)</table>', html, flags=re.S
    ).group(1)
    assert (
        '<th data-key="sweep"' in rows and f"<td>{LONG}</td>" in rows and "<td>synthetic</td>" in rows
    )


def test_export_curve_csv_round_trip():
    lin, cur, *_ = make_results(whole=False)
    text = export_curve_csv(cur, "tiny-cosine-0.001-0-T400", "main")
    assert text.splitlines()[0] == "step,lr,loss"
    back = pd.read_csv(io.StringIO(text))
    want = cur.loc[(cur["lineage_id"] == "tiny-cosine-0.001-0-T400") & (cur["split"] == "train")]
    want = want.sort_values("step")[["step", "lr", "loss"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(back, want, check_exact=False, rtol=1e-9)


def test_export_curve_csv_prefixes_a_cooldown_with_its_trunk():
    lin, cur, *_ = make_results(whole=False)
    back = pd.read_csv(io.StringIO(export_curve_csv(cur, "tiny-wsd-0.001-0", "h=400", lin)))
    assert back["step"].iloc[0] == 0 and back["step"].is_monotonic_increasing
    assert back.loc[back["step"] < 320, "lr"].eq(1e-3).sum() > 50  # the trunk's constant phase
    assert back["lr"].iloc[-1] < 1e-4  # and the cooldown to (nearly) zero at step 400


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip


def _render(url: str, profile: Path, *extra: str) -> tuple[str, list[str]]:
    proc = subprocess.run(
        [CHROMIUM, *_FLAGS, *extra, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    # ANY console message fails a test: a warning ("Invalid color specifier") is a bug too
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return proc.stdout, console


def _drawn(dom: str, fig_id: str) -> None:
    m = re.search(rf'<div id="{fig_id}"([^>]*)>(.*?)</section>', dom, flags=re.S)
    assert m, f"{fig_id} missing from the rendered DOM"
    assert 'data-rendered="true"' in m.group(1), f"{fig_id} was not drawn"
    assert 'class="main-svg"' in m.group(2), f"{fig_id} has no plotly SVG"
    assert re.search(r'class="(scatterlayer|barlayer|heatmaplayer)', m.group(2)), fig_id
    assert re.search(r'<path class="js-line" d="M[\d.]+,|class="point[ "]|<image', m.group(2)), fig_id


browser = pytest.mark.skipif(
    CHROMIUM is None, reason="needs the chromium binary (Debian package `chromium`)"
)


@pytest.mark.browser
@browser
def test_report_renders_in_headless_chromium(tmp_path, report_path):
    dom, console = _render(report_path.as_uri(), tmp_path / "profile")
    assert not console, "\n".join(console)
    assert 'data-error="' not in dom and '<p class="render-error">' not in dom
    for fig_id in FIGURE_IDS:
        _drawn(dom, fig_id)
    count = re.search(r'<span data-count="results-table">([^<]*)</span>', dom).group(1)
    n = (
        re.search(r'<table class="lrsweep-table" id="results-table">(.*?)</table>', dom, flags=re.S)
        .group(1)
        .count("<tr")
    )
    assert count == f"{n - 1} of {n - 1} rows"  # the script ran: every row shown, counted


def _table_rows(dom: str, column: int = 9) -> list[tuple[str, str, bool]]:
    """(candidate, data-v of ``column`` (9: loss), shown) of every results-table row, in order."""
    body = re.search(
        r'<table class="lrsweep-table" id="results-table">.*?<tbody>(.*?)</tbody>', dom, flags=re.S
    ).group(1)
    out = []
    for tr in re.findall(r"<tr[^>]*>.*?</tr>", body, flags=re.S):
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", tr, flags=re.S)
        loss = re.search(r'data-v="([^"]*)"', cells[column][0]).group(1)
        out.append((cells[1][1], loss, 'style="display: none;"' not in tr))
    return out


@pytest.mark.browser
@browser
def test_results_table_sorts_and_filters_in_chromium(tmp_path, report_path):
    # #sort=loss clicks the "loss" header on load (and dir=desc a second time); #filter types
    # into the filter box: the page's own handlers do the work.
    dom, console = _render(report_path.as_uri() + "#sort=loss", tmp_path / "p1")
    assert not console, "\n".join(console)
    assert 'data-key="loss" data-type="num" title="click to sort" aria-sort="ascending"' in dom
    rows = _table_rows(dom)
    values = [float(v) if v not in ("", "inf") else float("inf") for _, v, _ in rows if v != ""]
    assert values == sorted(values) and values[-1] == float("inf")  # diverged last
    assert [v for _, v, _ in rows][-1] in ("", "inf")  # missing or diverged at the end
    dom, _ = _render(
        report_path.as_uri() + "#sort=loss&dir=desc&filter=cosine%20raw", tmp_path / "p2"
    )
    rows = _table_rows(dom)
    shown = [r for r in rows if r[2]]
    assert shown and all(c.startswith("cosine") and c.endswith("with raw") for c, _, _ in shown)
    assert len(shown) == 2 * 2 * 4  # 2 sizes × 2 LRs × 4 horizons
    finite = [float(v) for _, v, _ in shown]
    assert finite == sorted(finite, reverse=True)
    assert re.search(r'<span data-count="results-table">16 of \d+ rows</span>', dom)
    # another numeric column, by its exact values; diverged (inf) after every finite one
    dom, _ = _render(report_path.as_uri() + "#sort=regret", tmp_path / "p3")
    regrets = [v for _, v, _ in _table_rows(dom, column=12)]
    finite = [float(v) for v in regrets if v not in ("", "inf")]
    assert finite == sorted(finite) and finite[0] == 0.0 and finite[-1] > 0.05
    assert regrets.index("inf") == len(finite)


@pytest.mark.browser
@browser
def test_comparison_report_renders_two_sweeps_in_chromium(tmp_path, compare_path):
    dom, console = _render(compare_path.as_uri(), tmp_path / "profile")
    assert not console, "\n".join(console)
    for fig_id in COMPARE_FIGURE_IDS:
        _drawn(dom, fig_id)
    assert dom.count('class="compare-sweep"') == 2
    legend = re.search(r'<div id="fig-compare-horizon".*?</section>', dom, flags=re.S).group(0)
    assert "synthetic: " in legend and LONG[:20] in legend
    # the panels' geometry, measured by the browser: a harness page loads the report in a frame
    harness = compare_path.parent / "harness.html"
    harness.write_text(HARNESS.replace("REPORT", compare_path.name), encoding="utf-8")
    dom, console = _render(harness.as_uri(), tmp_path / "p2", "--allow-file-access-from-files")
    assert not console, "\n".join(console)
    box = json.loads(html.unescape(re.search(r'<pre id="geometry">(.*?)</pre>', dom, flags=re.S).group(1)))
    a, b = box["panels"]
    assert a["right"] <= b["left"] or a["bottom"] <= b["top"], box  # side by side or stacked, apart
    assert all(p["overflow"] <= 1 for p in box["panels"]), box  # nothing sticks out of a panel
    assert box["title_cut"] and box["page_overflow"] <= 1, box

