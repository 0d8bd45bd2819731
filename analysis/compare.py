"""Two or more sweeps side by side (``lrsweep report A B``): each sweep's answer in its own
column, what differs between their grids, figures that overlay them, and one results table.

Colours keep their meaning (one per family); sweeps are told apart by marker and dash.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from analysis._html import figure_section, page
from analysis._threads import single_blas_thread
from analysis.answer import headline_tables
from analysis.anytime import anytime_optimal
from analysis.figures._common import (
    FigureUnavailable,
    family_color,
    horizon_axis,
    horizon_text,
    readable_log_axis,
)
from analysis.horizons import SCOPE, envelope
from analysis.provenance import provenance
from analysis.report import SweepResults, _sweep_line, prepare, write_html
from analysis.results_table import results_rows, results_table_html
from analysis.summary import summary_sentences

__all__ = ["COMPARE_FIGURE_IDS", "build_comparison_report", "write_comparison_report"]

COMPARE_FIGURE_IDS = ("fig-compare-horizon", "fig-compare-regret")
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "star")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


_LEGEND = {"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0}
"""Legends below the plot: long sweep and candidate names never squeeze the plot area."""
MAX_NAME = 48


def _short(text: str, limit: int = MAX_NAME) -> str:
    """A legend entry cut to ``limit`` characters with "…" (the hover shows it whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sweep_id(r: SweepResults, i: int) -> str:
    s = r.sweep
    if isinstance(s, dict):
        return str(s.get("sweep_id") or s.get("name") or f"sweep {i + 1}")
    return str(s) if s else f"sweep {i + 1}"


def _horizon_figure(names: list[str], inputs: list) -> go.Figure:
    """Each sweep's anytime-optimal candidate (family colour) and envelope (black), against the
    horizon; sweep = marker and dash."""
    fig = go.Figure()
    xs: list[float] = []
    for i, (name, d) in enumerate(zip(names, inputs, strict=True)):
        xcol, _ = horizon_axis(d.table)
        sym, dash = _SYMBOLS[i % len(_SYMBOLS)], _DASHES[i % len(_DASHES)]
        best = anytime_optimal(d.table)
        for b in best.itertuples(index=False):
            rows = d.table.loc[
                (d.table["candidate"] == b.candidate)
                & (d.table[SCOPE].astype(str) == [str(getattr(b, c)) for c in SCOPE]).all(axis=1)
            ].sort_values("horizon")
            xs += rows[xcol].tolist()
            fig.add_trace(
                go.Scatter(
                    x=rows[xcol], y=rows["loss"].where(np.isfinite(rows["loss"])), mode="lines+markers",
                    name=_short(f"{name}: {b.candidate} (anytime)"), legendgroup=name,
                    line={"color": family_color(b.family), "dash": dash},
                    marker={"symbol": sym, "size": 9},
                    customdata=horizon_text(rows, d.table),
                    hovertemplate="%{customdata}<br>loss %{y:.4f}<extra>" + html.escape(name) + "</extra>",
                )
            )  # fmt: skip
        env = envelope(d.table)
        env = env.loc[env["candidate"] != ""].sort_values("horizon")
        # one envelope line per scope (workload, model size): never a line across two scopes
        for k, (_scope, part) in enumerate(env.groupby(SCOPE, sort=True, dropna=False)):
            xs += part[xcol].tolist()
            fig.add_trace(
                go.Scatter(
                    x=part[xcol], y=part["loss"], mode="lines+markers", name=_short(f"{name}: envelope"),
                    legendgroup=name, showlegend=k == 0, line={"color": "black", "dash": dash},
                    marker={"symbol": f"{sym}-open", "size": 9},
                    customdata=np.column_stack([horizon_text(part, d.table), part["candidate"]]),
                    hovertemplate="%{customdata[0]}<br>loss %{y:.4f}<br>%{customdata[1]}<extra>"
                    + html.escape(name) + " envelope</extra>",
                )
            )  # fmt: skip
    if not fig.data:
        raise FigureUnavailable("no sweep has a finite loss")
    readable_log_axis(fig, "xaxis", xs)
    fig.update_layout(
        yaxis_type="log", xaxis_title="training tokens (or steps)", yaxis_title="final eval loss",
        template="plotly_white", legend=_LEGEND, height=520,
    )  # fmt: skip
    return fig


def _regret_figure(names: list[str], inputs: list) -> go.Figure:
    """Worst-case regret against its own envelope of each family's best anytime candidate,
    grouped by family (bars in the family's colour), one bar per sweep (pattern = sweep).

    One trace per (sweep, family), each with one colour: a per-bar colour array on a patterned
    bar is what the legend cannot draw (plotly warns "Invalid color specifier" in the browser's
    console). The legend shows one grey key per sweep with its pattern."""
    fig = go.Figure()
    patterns = ("", "/", ".", "x", "-", "+")
    many = any(d.table[SCOPE].drop_duplicates().shape[0] > 1 for d in inputs)
    for i, (name, d) in enumerate(zip(names, inputs, strict=True)):
        fam = anytime_optimal(d.table, by="family")
        if fam.empty:
            continue
        pattern = {"shape": patterns[i % len(patterns)], "fgcolor": "#333333"}
        xs = [
            f"{r['family']} · {' '.join(str(r[c]) for c in SCOPE if str(r[c]))}" if many else str(r["family"])
            for _, r in fam.iterrows()
        ]
        for x, (_, r) in zip(xs, fam.iterrows(), strict=True):
            regret = 100 * r["worst_regret"] if np.isfinite(r["worst_regret"]) else None
            fig.add_trace(go.Bar(
                x=[x], y=[regret], name=_short(name), legendgroup=name, showlegend=False, offsetgroup=str(i),
                marker={"color": family_color(r["family"]), "pattern": pattern},
                customdata=[r["candidate"]],
                hovertemplate="%{customdata}<br>worst-case regret %{y:.3g}%<extra>" + html.escape(name) + "</extra>",
            ))  # fmt: skip
        fig.add_trace(go.Bar(
            x=[xs[0]], y=[0], name=_short(name), legendgroup=name, offsetgroup=str(i), hoverinfo="skip",
            marker={"color": "#dddddd", "pattern": pattern},
        ))  # the sweep's legend key (a zero-height bar)  # fmt: skip
    if not fig.data:
        raise FigureUnavailable("no sweep has an anytime candidate")
    fig.update_layout(
        barmode="group", yaxis_title="worst-case regret vs own envelope (%)",
        template="plotly_white", xaxis_title="family (best anytime candidate)", legend=_LEGEND,
    )  # fmt: skip
    return fig


def _differences(provs: list[dict], names: list[str]) -> str:
    """A table of the hyperparameters that are not the same in every sweep."""
    keys = sorted({k for p in provs for k in (*p["fixed"], *p["swept"])})
    rows = []
    for k in keys:
        vals = [p["fixed"].get(k) or ", ".join(p["swept"].get(k, [])) or "—" for p in provs]
        if len(set(vals)) > 1:
            rows.append(
                "<tr><td>"
                + html.escape(k)
                + "</td>"
                + "".join(f"<td>{html.escape(v)}</td>" for v in vals)
                + "</tr>"
            )
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    if not rows:
        return "<p>The sweeps share every hyperparameter value.</p>"
    return f'<table class="diff-table"><thead><tr><th>hyperparameter</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def build_comparison_report(
    sweeps: Sequence[SweepResults], title: str = "lrsweep comparison"
) -> str:
    """One HTML page comparing ``sweeps`` (two or more)."""
    if len(sweeps) < 2:
        raise ValueError(f"sweeps must hold at least 2 sweeps to compare, got {len(sweeps)}")
    names = [_sweep_id(r, i) for i, r in enumerate(sweeps)]
    with single_blas_thread():
        inputs = [prepare(r) for r in sweeps]
        columns, provs, rows = [], [], []
        for name, r, d in zip(names, sweeps, inputs, strict=True):
            p = provenance(r.sweep, d.fl)
            provs.append(p)
            sentences = summary_sentences(d.table, d.seeds, plan=dict(r.plan) if r.plan else None)
            columns.append(
                f'<section class="compare-sweep" data-sweep="{html.escape(name)}">'
                f'<h2 title="{html.escape(name)}">{html.escape(name)}</h2>'
                f'<p class="meta">{html.escape(_sweep_line(r.sweep, d.lineages, d.fl))}<br>code '
                f"{html.escape(str(p['code_version']))} · spec {html.escape(str(p['spec_hash']))} · "
                f'written {html.escape(str(p["updated_at"]))}</p><ul class="findings">'
                + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
                + "</ul>"
                + headline_tables(d)
                + "</section>"
            )
            rows.append(results_rows(d.table, d.seeds).assign(sweep=name))
        figures = []
        for fig_id, heading, caption, build in (
            ("fig-compare-horizon", "Anytime-optimal and envelope, sweep by sweep",
             "Final eval loss against the horizon: each sweep's anytime-optimal candidate (its "
             "family's colour) and its envelope (black); sweeps differ by marker and dash.",
             _horizon_figure),
            ("fig-compare-regret", "Worst-case regret of each family's best anytime candidate",
             "Against each sweep's own envelope; bars in the family's colour, one per sweep "
             "(pattern = sweep).", _regret_figure),
        ):  # fmt: skip
            try:
                figures.append(figure_section(fig_id, heading, caption, build(names, inputs), None))
            except FigureUnavailable as why:
                figures.append(figure_section(fig_id, heading, caption, None, f"Not drawn: {why}"))
    import pandas as pd

    body = (
        f'<section id="summary"><div class="compare-grid">{"".join(columns)}</div></section>'
        f'<section id="differences"><h2>What differs between the sweeps</h2>{_differences(provs, names)}</section>'
        + "".join(figures)
        + '<section id="results"><h2>All results</h2>'
        + results_table_html(pd.concat(rows, ignore_index=True), "results-table", with_sweep=True)
        + "</section>"
    )
    meta = "comparing " + ", ".join(html.escape(n) for n in names)
    return page(title, meta, body)


def write_comparison_report(
    path: str | Path, sweeps: Sequence[SweepResults], title: str = "lrsweep comparison"
) -> Path:
    """:func:`build_comparison_report` written atomically. Returns the path written."""
    return write_html(path, build_comparison_report(sweeps, title))
