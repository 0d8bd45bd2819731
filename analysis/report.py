"""One self-contained HTML report of a sweep: the answer in words at the top, the definitions,
the headline tables, the figures, the sortable results table and the provenance.

The page works offline (:mod:`analysis._html`). A figure that cannot be made from the results
(one horizon, one model size, too few points for a fit, …) becomes a short note, never an
exception. Every fit runs with one BLAS thread (:mod:`analysis._threads`).
"""

from __future__ import annotations

import html
import io
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis._html import figure_section, page
from analysis._threads import single_blas_thread
from analysis.answer import answer_html
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
    lr_schedule_figure,
    regret_heatmap_figure,
)
from analysis.figures.lr_search import loss_vs_lr_any
from analysis.horizons import SCOPE, _aggregate, labelled_final_losses
from analysis.law_curves import CurveIndex
from analysis.provenance import provenance, provenance_html
from analysis.results_table import results_rows, results_table_html
from analysis.tables import train_curve, validate_curves, validate_lineages

__all__ = [
    "FIGURE_IDS",
    "Panel",
    "SweepResults",
    "build_panels",
    "build_report",
    "export_curve_csv",
    "prepare",
    "write_html",
    "write_report",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResults:
    """A sweep's frames as the store gives them, and what the caller knows about them.

    Attributes:
        lineages, curves, final_losses: the results store's frames for one sweep.
        plan: the planner's summary (``planned_tokens``, ``naive_tokens``, …), optional.
        sweep: the store's sweep row (``sweep_id``, ``spec_text``, ``code_version``, …) or id.
        lr_sequences: ``{(setting_id, lineage_id, branch): LR per update}`` rebuilt from the
            schedules, for the curve laws when the train rows are sub-sampled.
        search: the search's frames (:func:`orchestrator.search.frames.search_frames`) for a
            sweep with ``[search]``; its figures follow the grid's.
    """

    lineages: pd.DataFrame
    curves: pd.DataFrame
    final_losses: pd.DataFrame
    plan: Mapping[str, Any] | None = None
    sweep: Any = None
    lr_sequences: Mapping[tuple, np.ndarray] | None = field(default=None, repr=False)
    search: Mapping[str, pd.DataFrame] | None = field(default=None, repr=False)


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
    fl: pd.DataFrame  # labelled final_losses
    lineages: pd.DataFrame
    curves: CurveIndex
    table: pd.DataFrame
    seeds: pd.DataFrame
    plan: Mapping[str, Any] | None
    lr_sequences: Mapping[tuple, np.ndarray] | None


def prepare(results: SweepResults) -> _Inputs:
    """Validate and label a sweep's frames once for every table and figure."""
    fl = labelled_final_losses(results.final_losses)
    seeds = fl[[*SCOPE, "candidate", "kind", "horizon", "seed", "loss"]].reset_index(drop=True)
    lineages = validate_lineages(results.lineages)
    plan = results.plan
    trials = (results.search or {}).get("trials")
    if trials is not None and len(trials) and "tokens" in trials.columns:
        plan = {**(plan or {}), "search_tokens": float(pd.to_numeric(trials["tokens"]).sum())}
    return _Inputs(
        fl=fl,
        lineages=lineages,
        curves=CurveIndex(validate_curves(results.curves), lineages),
        table=_aggregate(fl),
        seeds=seeds,
        plan=plan,
        lr_sequences=results.lr_sequences,
    )


_Spec = tuple[str, str, str, Callable[[_Inputs], go.Figure]]
_FIGURES: tuple[_Spec, ...] = (
    (
        "fig-lr-schedules",
        "Learning-rate schedules as run",
        "Learning rate against step, one line per curve of each family's best setting (first "
        "seed); the exact per-step LR. Colour = family, the same in every figure. "
        f"At most {MAX_CURVE_TRACES} lines of {MAX_POINTS_PER_TRACE} points.",
        lambda d: lr_schedule_figure(d.fl, d.table, d.curves, d.lineages, d.lr_sequences),
    ),
    (
        "fig-eval-curves",
        "Eval-loss curves per family and weights variant",
        "Eval loss against step for each family's best setting (first seed): one line per curve "
        "and weights variant — colour = family, dash and marker = weights (raw/x solid circle, "
        "EMA dashed square, SWA dotted diamond); the dropdown picks the family. "
        f"At most {MAX_CURVE_TRACES} lines of {MAX_POINTS_PER_TRACE} points.",
        lambda d: eval_curves_figure(d.fl, d.table, d.curves, d.lineages),
    ),
    (
        "fig-loss-vs-horizon",
        "Final loss against horizon",
        "Mean final eval loss over seeds against the horizon, log–log: each family's best "
        "candidate (one setting at every horizon), and in black the per-horizon tuned envelope "
        "of horizon-aware candidates. Error bars: ±1 standard error over seeds, drawn where a "
        "point has ≥ 2 seeds. Diverged points are gaps.",
        lambda d: loss_vs_horizon_figure(d.table),
    ),
    (
        "fig-regret-heatmap",
        "Regret against the envelope at every horizon",
        "Relative regret loss/envelope − 1 in % (blue: better than the envelope, red: worse), "
        "rows sorted by worst-case regret, kind in brackets. "
        f"At most {MAX_HEATMAP_ROWS} rows plus each family's best; 'div' = diverged, '—' = no result.",
        lambda d: regret_heatmap_figure(d.table),
    ),
    (
        "fig-loss-vs-lr",
        "Loss against peak learning rate",
        "Final eval loss against peak LR per family member (its best weights variant, best over "
        "the other settings at each LR); every LR tried is a tick; the dropdown picks the "
        "horizon; crosses mark diverged LRs; ±1 standard error where ≥ 2 seeds. In a sweep with "
        "a search: one point per setting tried (filled circle = grid point, open diamond = "
        "searched trial), a setting stopped by the search only at the horizons it reached.",
        lambda d: loss_vs_lr_any(d.table),
    ),
    (
        "fig-data-law",
        "Data scaling law per family and weights",
        "L(D) = E + B·D^−β fitted (Huber on log loss) to the best loss at each horizon per "
        "(family, weights): refused below 4 horizons (3 parameters + 1); the extrapolation to 4× "
        "the longest horizon is drawn only with its 95% bootstrap band (horizons resampled with "
        f"replacement) and only for a fit with no parameter on a bound. At most {MAX_LAW_FITS} fits.",
        lambda d: data_law_figure(d.table),
    ),
    (
        "fig-chinchilla",
        "Chinchilla law across model sizes",
        "L(N, D) = E + A/N^α + B/D^β fitted per family (Chinchilla approach 3) to the best loss "
        "at each (model size, horizon), refused below 6 points; lighter = smaller model; the "
        "curve of a model 4× the largest, to 4× the longest horizon, is drawn only with a "
        "bootstrap band and for an unflagged fit; bootstrap intervals of α and β in the legend.",
        lambda d: chinchilla_figure(d.table),
    ),
    (
        "fig-curve-law",
        "Loss-curve law: predicting a schedule from its LR sequence",
        "Multi-power law (Luo et al. 2025) fitted to eval losses (raw weights; markers) with the "
        "exact per-step LR, chosen among its multi-start optima and its authors' regularised fit "
        "by leave-one-schedule-out error; with fewer than 3 fitted schedules, where that cannot "
        "discriminate, the regularised fit (the note says which rule chose). "
        "Solid: the chosen fit; dashed: each fitted schedule predicted by a fit without it; thick "
        "dashed: held-out schedules predicted from their LR sequence alone.",
        lambda d: curve_law_figure(d.fl, d.curves, d.lineages, d.lr_sequences),
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
    if int(inputs.table["n_seeds"].max() if len(inputs.table) else 0) <= 1:
        panels = [
            Panel(
                p.id,
                p.heading,
                p.caption + " This sweep has one seed per setting: no error bars.",
                p.figure,
                p.note,
            )
            if p.id in ("fig-loss-vs-horizon", "fig-loss-vs-lr")
            else p
            for p in panels
        ]
    return panels


def _search_panels(frames: Mapping[str, pd.DataFrame] | None) -> list[Panel]:
    from analysis.figures.search import search_panels

    try:
        return [Panel(*p) for p in search_panels(frames)]  # type: ignore[arg-type]
    except Exception as err:  # as for the grid's figures: a bug in one must not cost the report
        log.exception("search figures failed")
        return [Panel("search-history", "Search history", "", None, f"Failed: {type(err).__name__}: {err}")]


def build_panels(
    lineages: pd.DataFrame,
    curves: pd.DataFrame,
    final_losses: pd.DataFrame,
    plan: Mapping[str, Any] | None = None,
    lr_sequences: Mapping[tuple, np.ndarray] | None = None,
) -> list[Panel]:
    """Every report figure in :data:`FIGURE_IDS` order, or a note where it cannot be made."""
    with single_blas_thread():
        return _panels(
            prepare(SweepResults(lineages, curves, final_losses, plan, None, lr_sequences))
        )


def _sweep_line(sweep: Any, lineages: pd.DataFrame, fl: pd.DataFrame) -> str:
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
    seeds = int(fl["seed"].nunique()) if "seed" in fl.columns and len(fl) else 0
    parts = [
        f"sweep {sweep_id}" if sweep_id else "",
        f"{lineages['lineage_id'].nunique()} lineages",
        f"{len(lineages)} branches" + (f" ({counts})" if counts else ""),
        f"{fl['horizon'].nunique()} horizons",
        f"{seeds} seed{'s' if seeds != 1 else ''}",
    ]
    return " · ".join(p for p in parts if p)


def report_body(
    results: SweepResults, *, table_id: str = "results-table"
) -> tuple[str, _Inputs | None]:
    """The report's sections (answer, figures, results table, provenance) for one sweep."""
    fl_raw = labelled_final_losses(results.final_losses) if len(results.final_losses) else None
    if fl_raw is None or fl_raw.empty:
        notes = "".join(
            figure_section(i, h, c, None, "Not drawn: no results yet") for i, h, c, _ in _FIGURES
        )
        return (
            '<section id="summary"><h2>Answer</h2><p class="note">No final losses yet: no lineage '
            "has reached a horizon.</p></section>" + notes
        ), None
    d = prepare(results)
    panels = _panels(d) + _search_panels(results.search)
    body = (
        answer_html(d)
        + "".join(figure_section(p.id, p.heading, p.caption, p.figure, p.note) for p in panels)
        + '<section id="results"><h2>All results</h2><p class="caption">One row per candidate and '
        "horizon; click a header to sort, type in the box to filter. The last column compares the "
        "row with the envelope's candidate at that horizon, pair-wise by seed.</p>"
        + results_table_html(results_rows(d.table, d.seeds), table_id)
        + "</section>"
        + provenance_html(provenance(results.sweep, d.fl))
    )
    return body, d


def build_report(
    lineages: pd.DataFrame,
    curves: pd.DataFrame,
    final_losses: pd.DataFrame,
    plan: Mapping[str, Any] | None = None,
    sweep: Any = None,
    title: str = "lrsweep report",
    lr_sequences: Mapping[tuple, np.ndarray] | None = None,
    search: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """The whole report as one self-contained HTML string (plotly.js embedded once, offline).

    Args:
        lineages, curves, final_losses: the results store's frames for one sweep.
        plan: the planner's summary (``planned_tokens``, ``naive_tokens``, …), optional.
        sweep: the store's sweep row (``sweep_id``, ``spec_text``, ``code_version``, dates) or
            the sweep id, for the header and the provenance section.
        title: the page title.
        lr_sequences: exact per-step LRs by curve key (see :class:`SweepResults`).
        search: the search's frames for a sweep with ``[search]`` (its figures follow the grid's).
    """
    results = SweepResults(lineages, curves, final_losses, plan, sweep, lr_sequences, search)
    with single_blas_thread():
        body, _ = report_body(results)
    meta = html.escape(_sweep_line(sweep, validate_lineages(lineages), final_losses))
    return page(title, meta, body)


def write_html(path: str | os.PathLike[str], text: str) -> Path:
    """``text`` written atomically (temp file in the same folder, then rename)."""
    path = Path(path)
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


def write_report(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Path:
    """:func:`build_report` written atomically. Returns the path written."""
    return write_html(path, build_report(*args, **kwargs))


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
