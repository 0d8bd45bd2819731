"""One self-contained HTML report of a sweep: the answer in words at the top, then the figures.

The report works offline: plotly.js is embedded exactly once, in the ``<head>``; every figure is
a ``<div id="fig-…" class="lrsweep-plot">`` followed by its JSON in a
``<script type="application/json" class="lrsweep-figure-json">`` that one small script at the end
draws with ``Plotly.newPlot``. A drawn div gets ``data-rendered="true"``; a failure sets
``data-error`` on the div, shows a message and logs ``lrsweep: figure … failed`` to the console
(what the browser test looks for). A figure that cannot be made from the results (one horizon,
one model size, no scaling module, …) becomes a short note, never an exception.
"""

from __future__ import annotations

import html
import io
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures import (
    MAX_CURVE_TRACES,
    MAX_HEATMAP_ROWS,
    MAX_LAW_FITS,
    MAX_POINTS_PER_TRACE,
    FigureUnavailable,
    chinchilla_figure,
    compute_figure,
    curve_law_figure,
    data_law_figure,
    eval_curves_figure,
    loss_vs_horizon_figure,
    loss_vs_lr_figure,
    lr_schedule_figure,
    regret_heatmap_figure,
)
from analysis.horizons import (
    NOISE_RULE,
    anytime_optimal,
    horizon_multiples,
    loss_table,
    oracle,
    summary_sentences,
    within_noise,
)
from analysis.tables import (
    SCOPE_COLUMNS,
    train_curve,
    validate_curves,
    validate_final_losses,
    validate_lineages,
)

__all__ = [
    "FIGURE_IDS",
    "Panel",
    "build_panels",
    "build_report",
    "export_curve_csv",
    "write_report",
]

log = logging.getLogger(__name__)
SCOPE = list(SCOPE_COLUMNS)


@dataclass(frozen=True)
class Panel:
    """One report section: a figure, or the note saying why there is none."""

    id: str
    heading: str
    caption: str
    figure: go.Figure | None
    note: str | None = None


@dataclass(frozen=True)
class _Inputs:
    lineages: pd.DataFrame
    curves: pd.DataFrame
    table: pd.DataFrame
    plan: Mapping[str, Any] | None


_Spec = tuple[str, str, str, Callable[[_Inputs], go.Figure]]
_FIGURES: tuple[_Spec, ...] = (
    (
        "fig-lr-schedules",
        "Learning-rate schedules as run",
        "Learning rate against step from the train rows, one line per lineage/branch of each "
        f"family's best setting (its anytime-optimal candidate), first seed; at most "
        f"{MAX_CURVE_TRACES} lines of {MAX_POINTS_PER_TRACE} points.",
        lambda d: lr_schedule_figure(d.lineages, d.curves, d.table),
    ),
    (
        "fig-eval-curves",
        "Eval-loss curves per family and weights variant",
        "Eval loss against step for each family's best setting (first seed): one line per "
        "lineage/branch and weights variant (raw, EMA, SWA, schedule-free x); the dropdown picks the "
        f"family. At most {MAX_CURVE_TRACES} lines of {MAX_POINTS_PER_TRACE} points.",
        lambda d: eval_curves_figure(d.lineages, d.curves, d.table),
    ),
    (
        "fig-loss-vs-horizon",
        "Final loss against horizon",
        "Mean final eval loss over seeds (±1 standard error) against the horizon, log–log. Solid: each "
        "family's anytime-optimal candidate (one setting for every horizon); dotted: the family's best "
        "candidate re-tuned at each horizon; black: the per-horizon oracle over all candidates. "
        "Diverged points are gaps.",
        lambda d: loss_vs_horizon_figure(d.table),
    ),
    (
        "fig-regret-heatmap",
        "Regret of every candidate at every horizon",
        "Relative regret loss/oracle − 1 in %, rows sorted by worst-case regret (best first). "
        f"At most {MAX_HEATMAP_ROWS} rows plus each family's best; 'div' = diverged (infinite regret), "
        "'—' = no result.",
        lambda d: regret_heatmap_figure(d.table),
    ),
    (
        "fig-loss-vs-lr",
        "Loss against peak learning rate",
        "Final eval loss against peak LR per family (its anytime-best weights variant, best over the "
        "other settings at each LR); the dropdown picks the horizon; crosses mark diverged LRs.",
        lambda d: loss_vs_lr_figure(d.table),
    ),
    (
        "fig-data-law",
        "Data scaling law per family, weights and model size",
        "L(D) = E + B·D^−β fitted (Huber on log loss) to the best loss at each horizon per (family, "
        "weights, model size); solid over the data, dashed extrapolated to 4× the longest horizon, "
        "shaded a 95% bootstrap band (refits on horizons resampled with replacement when there are "
        "≥ 4, each point redrawn from N(mean, stderr²) over seeds). "
        f"At most {MAX_LAW_FITS} fits.",
        lambda d: data_law_figure(d.table),
    ),
    (
        "fig-chinchilla",
        "Chinchilla law across model sizes",
        "L(N, D) = E + A/N^α + B/D^β fitted per family (Chinchilla approach 3) to the best loss at each "
        "(model size, horizon); one curve per size, dotted for a model 4× the largest, to 4× the "
        "longest horizon; bootstrap intervals of α and β in the legend.",
        lambda d: chinchilla_figure(d.table),
    ),
    (
        "fig-curve-law",
        "Loss-curve law: predicting a schedule from its LR sequence",
        "Multi-power law (Luo et al. 2025) fitted on some schedules' train curves, then used to "
        "predict the others from their LR sequence alone (dashed) against the measured curve (solid).",
        lambda d: curve_law_figure(d.lineages, d.curves),
    ),
    (
        "fig-compute",
        "Compute spent against the naive sweep",
        "Tokens and FLOPs the plan trains, as % of a naive sweep that runs every (setting, horizon) "
        "from scratch; bar labels give the absolute values.",
        lambda d: compute_figure(dict(d.plan) if d.plan else None, d.lineages),
    ),
)

FIGURE_IDS: tuple[str, ...] = tuple(spec[0] for spec in _FIGURES)
"""The ``id`` of every figure's div, in report order (stable: browser tests look them up)."""


def build_panels(
    lineages: pd.DataFrame,
    curves: pd.DataFrame,
    final_losses: pd.DataFrame,
    plan: Mapping[str, Any] | None = None,
) -> list[Panel]:
    """Every report figure in :data:`FIGURE_IDS` order, or a note where it cannot be made."""
    return _panels(
        _Inputs(
            validate_lineages(lineages), validate_curves(curves), loss_table(final_losses), plan
        )
    )


def _panels(inputs: _Inputs) -> list[Panel]:
    panels = []
    for fig_id, heading, caption, build in _FIGURES:
        try:
            fig = build(inputs)
        except FigureUnavailable as why:
            panels.append(Panel(fig_id, heading, caption, None, f"Not drawn: {why}"))
            continue
        except Exception as err:  # a bug in one figure must not cost the whole report
            log.exception("figure %s failed", fig_id)
            panels.append(
                Panel(fig_id, heading, caption, None, f"Failed: {type(err).__name__}: {err}")
            )
            continue
        extra = (fig.layout.meta or {}).get("note") if isinstance(fig.layout.meta, dict) else None
        panels.append(Panel(fig_id, heading, caption + (f" {extra}." if extra else ""), fig))
    return panels


def _pct(x: float) -> str:
    if np.isnan(x):
        return "n/a"
    return "diverged" if np.isinf(x) else f"{100 * x:.2f}%"


def _summary_tables(table: pd.DataFrame) -> str:
    """Per scope: the best candidate of each family (winner first) and the per-horizon oracle."""
    best = anytime_optimal(table, by="family")
    orc = oracle(table)
    mults, unit = horizon_multiples(table)
    out = []
    for scope, fam in best.groupby(SCOPE, sort=True, dropna=False):
        key = [str(s) for s in scope]
        t = table.loc[(table[SCOPE].astype(str) == key).all(axis=1)]
        win = fam.iloc[0]
        a = t.loc[t["candidate"] == win["candidate"]].set_index("horizon")
        rows = []
        for i, (_, r) in enumerate(fam.iterrows()):
            b = t.loc[t["candidate"] == r["candidate"]].set_index("horizon")
            common = a.index.intersection(b.index)
            k = sum(
                within_noise(a.at[h, "loss"], a.at[h, "stderr"], b.at[h, "loss"], b.at[h, "stderr"])
                for h in common
            )
            mark = ' class="winner"' if i == 0 else ""
            rows.append(
                f"<tr{mark}><td>{html.escape(str(r['family']))}</td><td>{html.escape(r['candidate'])}"
                f"{' (anytime-optimal)' if i == 0 else ''}</td><td>{_pct(r['worst_regret'])}</td>"
                f"<td>{_pct(r['mean_regret'])}</td><td>{'—' if i == 0 else f'{k} of {len(common)}'}</td></tr>"
            )
        m = mults.loc[(mults[SCOPE].astype(str) == key).all(axis=1)].set_index("horizon")[
            "multiple"
        ]
        orows = []
        for _, r in orc.loc[(orc[SCOPE].astype(str) == key).all(axis=1)].iterrows():
            se = "" if np.isnan(r["stderr"]) else f" ± {r['stderr']:.4f}"
            orows.append(
                f"<tr><td>{m[r['horizon']]:.3g}× ({int(r['horizon'])} steps)</td>"
                f"<td>{html.escape(r['candidate'] or 'none (all diverged)')}</td>"
                f"<td>{r['loss']:.4f}{se}</td><td>{int(r['n_within_noise'])}</td></tr>"
            )
        title = " ".join(k for k in key if k) or "all runs"
        out.append(
            f'<h3>{html.escape(title)}</h3><table class="summary-table">'
            "<thead><tr><th>family</th><th>best candidate</th><th>worst-case regret</th><th>mean regret</th>"
            "<th>within noise of the winner</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
            f'<table class="oracle-table"><thead><tr><th>horizon (× {html.escape(unit)})</th><th>oracle</th>'
            "<th>loss ± stderr</th><th>others within noise</th></tr></thead><tbody>"
            + "".join(orows)
            + "</tbody></table>"
        )
    return "".join(out)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} .meta{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.92rem}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left} th{background:#f4f4f4}
tr.winner td{font-weight:600;background:#eef6ee}
ul.findings li{margin:.25rem 0} section.lrsweep-figure{margin:2.2rem 0;border-top:1px solid #eee;padding-top:.6rem}
.lrsweep-plot{width:100%;min-height:460px} p.caption{color:#444;font-size:.9rem;max-width:70rem}
p.note{color:#8a6d3b;background:#fcf8e3;padding:.5rem .8rem;border-radius:4px}
p.render-error{color:#a94442}
"""

_RENDER = """
(function () {
  function fail(div, err) {
    div.setAttribute("data-error", String(err));
    var p = document.createElement("p");
    p.className = "render-error";
    p.textContent = "could not draw this figure: " + err;
    div.appendChild(p);
    console.error("lrsweep: figure " + div.id + " failed: " + err);
  }
  var specs = document.querySelectorAll("script.lrsweep-figure-json");
  for (var i = 0; i < specs.length; i++) {
    var div = document.getElementById(specs[i].getAttribute("data-target"));
    try {
      var fig = JSON.parse(specs[i].textContent);
      Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false}).then(
        (function (d) { return function () { d.setAttribute("data-rendered", "true"); }; })(div),
        (function (d) { return function (e) { fail(d, e); }; })(div));
    } catch (err) {
      fail(div, err);
    }
  }
})();
"""


def _figure_json(fig: go.Figure) -> str:
    # "<" only occurs inside JSON strings, where \\u003c is the same character: no "</script>".
    return fig.to_json(validate=False).replace("<", "\\u003c")


def _section(panel: Panel) -> str:
    head = f"<h2>{html.escape(panel.heading)}</h2>"
    if panel.figure is None:
        return (
            f'<section class="lrsweep-figure lrsweep-unavailable" id="section-{panel.id}" '
            f'data-figure="{panel.id}">{head}<p class="note">{html.escape(panel.note or "")}</p>'
            f'<p class="caption">{html.escape(panel.caption)}</p></section>'
        )
    return (
        f'<section class="lrsweep-figure" id="section-{panel.id}" data-figure="{panel.id}">{head}'
        f'<div id="{panel.id}" class="lrsweep-plot" data-figure-id="{panel.id}"></div>'
        f'<script type="application/json" class="lrsweep-figure-json" data-target="{panel.id}">'
        f"{_figure_json(panel.figure)}</script>"
        f'<p class="caption">{html.escape(panel.caption)}</p></section>'
    )


def _sweep_line(sweep: Any, lineages: pd.DataFrame, final_losses: pd.DataFrame) -> str:
    if isinstance(sweep, Mapping):
        sweep_id = sweep.get("sweep_id") or sweep.get("name")
    else:
        sweep_id = getattr(sweep, "sweep_id", None) or (sweep if isinstance(sweep, str) else None)
    if not sweep_id and "sweep_id" in lineages.columns and len(lineages):
        sweep_id = ", ".join(sorted(map(str, lineages["sweep_id"].dropna().unique())))
    status = (
        lineages["status"].astype(str).value_counts()
        if "status" in lineages.columns
        else pd.Series(dtype=int)
    )
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status.items()) if s not in ("None", "nan"))
    parts = [
        f"sweep {sweep_id}" if sweep_id else "",
        f"{lineages['lineage_id'].nunique()} lineages",
        f"{len(lineages)} branches" + (f" ({counts})" if counts else ""),
        f"{final_losses['horizon'].nunique()} horizons",
    ]
    return " · ".join(p for p in parts if p)


def build_report(
    lineages: pd.DataFrame,
    curves: pd.DataFrame,
    final_losses: pd.DataFrame,
    plan: Mapping[str, Any] | None = None,
    sweep: Any = None,
    title: str = "lrsweep report",
) -> str:
    """The whole report as one self-contained HTML string (plotly.js embedded once, offline).

    Args:
        lineages, curves, final_losses: the results store's frames for one sweep.
        plan: the planner's summary (``planned_tokens``, ``naive_tokens``, …), optional.
        sweep: the sweep (a mapping or object with ``sweep_id``, or the id), for the header.
        title: the page title.
    """
    import plotly.offline

    fl = validate_final_losses(final_losses)
    lin = validate_lineages(lineages)
    if fl.empty:
        summary = '<p class="note">No final losses yet: no lineage has reached a horizon.</p>'
        panels = [Panel(i, h, c, None, "Not drawn: no results yet") for i, h, c, _ in _FIGURES]
    else:
        table = loss_table(final_losses)
        sentences = summary_sentences(table, plan=dict(plan) if plan else None)
        summary = (
            '<ul class="findings" id="findings">'
            + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
            + "</ul>"
            + _summary_tables(table)
            + f'<p class="caption">Regret is relative: loss/oracle − 1, the oracle being the best '
            f"candidate at that horizon; a candidate is a setting without its seed, with one weights "
            f"variant; losses are means over seeds; a diverged seed makes the mean +inf. Within "
            f"noise: {html.escape(NOISE_RULE)}.</p>"
        )
        panels = _panels(_Inputs(lin, validate_curves(curves), table, plan))
    body = "".join(_section(p) for p in panels)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>'
        f'<h1>{html.escape(title)}</h1><p class="meta">{html.escape(_sweep_line(sweep, lin, fl))}</p>'
        f'<section id="summary"><h2>Answer</h2>{summary}</section>{body}'
        f"<script>{_RENDER}</script></body></html>\n"
    )


def write_report(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Path:
    """:func:`build_report` written atomically (temp file in the same folder, then rename).

    Returns:
        The path written.
    """
    path = Path(path)
    text = build_report(*args, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def export_curve_csv(
    curves: pd.DataFrame, lineage_id: str, branch: str, lineages: pd.DataFrame | None = None
) -> str:
    """One branch's train rows as ``step,lr,loss`` CSV (the format loss-curve-law tools read).

    With ``lineages``, a forked branch is prefixed with its parent's rows before the fork, so the
    LR sequence starts at step 0.
    """
    buf = io.StringIO()
    train_curve(curves, lineage_id, branch, lineages).to_csv(buf, index=False, float_format="%.10g")
    return buf.getvalue()
