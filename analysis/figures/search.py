"""Figures of a search: its history, parameter importances and (``pareto``) the Pareto front,
each beside the grid's answers. Builders take the plain frames of
:func:`orchestrator.search.frames.search_frames` (``trials``, ``importances``, ``grid``,
``meta``); this module imports neither optuna, ray nor torch.

:data:`SEARCH_FIGURES` lists them as ``(id, heading, caption, builder)`` for the report; a builder
raises :class:`~analysis.figures.FigureUnavailable` with a reason where it has nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures._common import FigureUnavailable
from analysis.units import sig3

__all__ = ["SEARCH_FIGURES", "importance_figure", "pareto_figure", "search_history_figure", "search_panels"]

Frames = Mapping[str, pd.DataFrame]
_STATE_STYLE = {  # marker per trial state
    "complete": {"symbol": "circle", "color": "#1f77b4"},
    "pruned": {"symbol": "triangle-up-open", "color": "#7f7f7f"},
    "fail": {"symbol": "x", "color": "#d62728"},
    "running": {"symbol": "diamond-open", "color": "#ff7f0e"},
}


def _meta(frames: Frames) -> dict:
    meta = frames.get("meta")
    return {} if meta is None or meta.empty else dict(meta.iloc[0])


def _grid_best(frames: Frames) -> float | None:
    grid = frames.get("grid")
    if grid is None or grid.empty:
        return None
    values = pd.to_numeric(grid["objective"], errors="coerce")
    values = values[np.isfinite(values)]
    return float(values.min()) if len(values) else None


def _finite(values: pd.Series) -> pd.Series:
    return values.where(np.isfinite(pd.to_numeric(values, errors="coerce")))


def _pruned_y(trials: pd.DataFrame) -> pd.Series:
    """Where a stopped trial is drawn: at its rung value, or on the best-so-far line where the
    rung value (judged on fewer horizons) lies below it — it never beat the search's best."""
    value = pd.to_numeric(trials["objective"], errors="coerce")
    best = pd.to_numeric(trials["best_so_far"], errors="coerce").where(np.isfinite(trials["best_so_far"]))
    return value.where(~(value < best), best)


def search_history_figure(frames: Frames) -> go.Figure:
    """Left: every complete trial's objective by trial number; each stopped trial as its own
    marker (an open triangle labelled with its rung, ``r0``, ``r1`` …) at its rung value, raised
    to the best-so-far line where that partial value lies below it; the best so far; the grid's
    best. Right: the best so far against the tokens the search has trained, the grid's best as a
    line. The report's template throughout; labels on the log axis are placed in log units."""
    trials = frames.get("trials")
    meta = _meta(frames)
    if trials is None or trials.empty:
        raise FigureUnavailable("the search has no trials yet")
    if meta.get("objective") == "pareto":
        raise FigureUnavailable("a Pareto search has no single objective: see the Pareto front")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("objective per trial", "best so far vs tokens trained"))
    for state, style in _STATE_STYLE.items():
        part = trials[trials["state"] == state]
        if part.empty:
            continue
        pruned = state == "pruned"
        y = _pruned_y(part) if pruned else _finite(part["objective"])
        rung = pd.to_numeric(part["rung"], errors="coerce").fillna(-1).astype(int)
        fig.add_trace(go.Scatter(
            x=part["number"], y=y, mode="markers+text" if pruned else "markers",
            name="stopped (at its rung)" if pruned else state,
            text=[f"r{r}" for r in rung] if pruned else None, textposition="top center",
            textfont={"size": 9, "color": style["color"]},
            marker={"symbol": style["symbol"], "color": style["color"], "size": 9,
                    "line": {"width": 1.5, "color": style["color"]}},
            customdata=np.stack([rung, part["tokens"], _finite(part["objective"])], axis=-1),
            hovertemplate="trial %{x}<br>objective %{customdata[2]:.3g}<br>rung %{customdata[0]}"
                          "<br>tokens %{customdata[1]:,}<extra></extra>"), row=1, col=1)  # fmt: skip
    best = _finite(trials["best_so_far"])
    fig.add_trace(go.Scatter(x=trials["number"], y=best, mode="lines", line={"shape": "hv", "color": "#2ca02c"},
                             name="best so far"), row=1, col=1)
    fig.add_trace(go.Scatter(x=trials["cum_tokens"], y=best, mode="lines+markers", showlegend=False,
                             line={"shape": "hv", "color": "#2ca02c"}, name="best so far"), row=1, col=2)
    grid = _grid_best(frames)
    log_y = bool((pd.to_numeric(trials["objective"], errors="coerce").dropna() > 0).all()) and (grid is None or grid > 0)
    if grid is not None:
        for col in (1, 2):
            fig.add_hline(y=grid, line={"dash": "dash", "color": "#9467bd"}, row=1, col=col)
        # an annotation on a log axis is placed in log10 units (plotly): y=grid would land at 10^grid
        fig.add_annotation(x=1, xref="x domain", y=math.log10(grid) if log_y else grid, yref="y",
                           text=f"grid's best {grid:.3g}", showarrow=False, xanchor="right", yanchor="bottom",
                           font={"color": "#9467bd"})
    fig.update_xaxes(title_text="trial", row=1, col=1)
    fig.update_xaxes(title_text="tokens trained by the search", tickformat="~s", row=1, col=2)
    axis_type = "log" if log_y else "linear"
    fig.update_yaxes(title_text=f"objective ({meta.get('objective', '?')})", type=axis_type, row=1, col=1)
    fig.update_yaxes(type=axis_type, row=1, col=2)
    fig.update_layout(height=440, margin={"t": 50}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def importance_figure(frames: Frames) -> go.Figure:
    """PED-ANOVA importance of each searched parameter (one bar group per objective)."""
    imp = frames.get("importances")
    if imp is None or imp.empty:
        raise FigureUnavailable("fewer than three complete trials with finite objectives")
    fig = go.Figure()
    for target, part in imp.groupby("target", sort=True):
        part = part.sort_values("importance")
        fig.add_trace(go.Bar(x=part["importance"], y=part["param"], orientation="h", name=str(target)))
    fig.update_layout(barmode="group", xaxis_title="importance (PED-ANOVA, sums to 1 per objective)",
                      height=160 + 40 * imp["param"].nunique(), margin={"t": 20}, template="plotly_white",
                      yaxis={"automargin": True})
    return fig


def _loss_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("loss@")]


def pareto_figure(frames: Frames) -> go.Figure:
    """Loss against horizon for every trial on the Pareto front, the grid's settings in grey."""
    trials = frames.get("trials")
    meta = _meta(frames)
    if meta.get("objective") != "pareto":
        raise FigureUnavailable("the search optimises one objective (objective is not 'pareto')")
    if trials is None or not trials["on_front"].any():
        raise FigureUnavailable("no complete trial yet")
    cols = _loss_columns(trials)
    horizons = [float(c.removeprefix("loss@")) for c in cols]
    fig = go.Figure()
    grid = frames.get("grid")
    if grid is not None and not grid.empty:
        for i, (_, row) in enumerate(grid.iterrows()):
            fig.add_trace(go.Scatter(x=horizons, y=[row.get(c, math.nan) for c in cols], mode="lines",
                                     line={"color": "#bbbbbb", "width": 1}, name="grid", legendgroup="grid",
                                     showlegend=i == 0, hovertext=row["label"]))
    for _, row in trials[trials["on_front"]].iterrows():
        params = ", ".join(f"{k.removeprefix('param:')}={sig3(v)}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items() if k.startswith("param:") and pd.notna(v))
        fig.add_trace(go.Scatter(x=horizons, y=[row[c] for c in cols], mode="lines+markers",
                                 name=f"trial {row['number']}", hovertext=params))
    unit = meta.get("unit", "steps")
    fig.update_layout(xaxis={"title": f"horizon ({unit})", "type": "log"}, yaxis={"title": "loss", "type": "log"},
                      height=420, margin={"t": 20}, template="plotly_white")
    return fig


SEARCH_FIGURES: tuple[tuple[str, str, str, Callable[[Frames], go.Figure]], ...] = (
    ("search-history", "Search history",
     "Each searched trial's objective; a trial the search stopped is an open triangle labelled with its "
     "rung (r0 = first horizon) at the value it was judged by — raised to the best-so-far line where that "
     "partial value lies below it — the best so far by trial and by tokens trained, and the grid's best "
     "setting scored the same way.",
     search_history_figure),
    ("search-importance", "Parameter importances",
     "PED-ANOVA importance (Optuna's default evaluator) of each searched parameter over the complete trials.",
     importance_figure),
    ("search-pareto", "Pareto front over horizons",
     "Loss at each horizon of the trials no other trial beats at every horizon, beside the grid's settings.",
     pareto_figure),
)


def search_panels(frames: Frames | None) -> list[tuple[str, str, str, go.Figure | None, str | None]]:
    """``(id, heading, caption, figure, note)`` for each of :data:`SEARCH_FIGURES` (the note is
    "Not drawn: <why>" where a builder has nothing to draw); empty without a search."""
    if frames is None:
        return []
    out: list[tuple[str, str, str, go.Figure | None, str | None]] = []
    for fig_id, heading, caption, build in SEARCH_FIGURES:
        try:
            out.append((fig_id, heading, caption, build(frames), None))
        except FigureUnavailable as why:
            out.append((fig_id, heading, caption, None, f"Not drawn: {why}"))
    return out
