"""Loss against peak LR from a search's settings: every setting tried (grid point or searched
trial) as one point per family, so a search that tried 25 peak LRs shows its LR sensitivity
even though no two searched settings share their other values (which is what the per-member
curves of :func:`analysis.figures.robustness.loss_vs_lr_figure` need).

Each point is a setting's best weights variant at the horizon the dropdown picks; a setting a
search stopped before that horizon has no point there (it is never drawn as failed); diverged
settings are crosses above the points. Colour = family, filled circle = grid point, open
diamond = searched trial (docs/report.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures._common import (
    FigureUnavailable,
    add_selector,
    family_color,
    multiples_text,
    scope_label,
)
from analysis.horizons import SCOPE
from analysis.tables import SETTING_COLUMNS

__all__ = ["ORIGIN_MARKERS", "loss_vs_lr_any", "searched_lr_figure"]

ORIGIN_MARKERS = {"grid": "circle", "search": "diamond-open"}
"""Marker of a grid point and of a searched trial."""


def _points(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (scope, setting, horizon): the best weights variant's loss."""
    t = table.assign(origin=table["origin"] if "origin" in table.columns else "grid")
    t = t.loc[t["n_seeds"] > 0]  # stopped, failed or pending here: no point
    keys = [*SCOPE, *SETTING_COLUMNS, "horizon"]
    t = t.assign(_key=t[keys].astype(str).agg("|".join, axis=1))
    t = t.sort_values(["_key", "loss", "candidate"], kind="stable")
    return t.drop_duplicates("_key").drop(columns="_key")


def searched_lr_figure(table: pd.DataFrame) -> go.Figure:
    """Final loss against peak LR, one point per setting tried; see the module docstring."""
    pts = _points(table)
    if pts.empty or pts.groupby([*SCOPE, "family"])["peak_lr"].nunique().max() < 2:
        raise FigureUnavailable("every family was run at a single peak LR")
    names = multiples_text(table)
    many = table[SCOPE].drop_duplicates().shape[0] > 1
    fig, groups = go.Figure(), []
    for key, rows in pts.groupby([*SCOPE, "horizon"], sort=True, dropna=False):
        scope, horizon = key[:-1], int(key[-1])
        group = (f"{scope_label(scope)} · " if many else "") + names.get((*scope, horizon), str(horizon))
        finite = rows.loc[np.isfinite(rows["loss"])]
        top = float(finite["loss"].max()) if len(finite) else 1.0
        for (fam, origin), fr in rows.groupby(["family", "origin"], sort=True):
            fr = fr.sort_values("peak_lr")
            ok = fr.loc[np.isfinite(fr["loss"])]
            div = fr.loc[np.isposinf(fr["loss"])]
            what = "searched" if origin == "search" else "grid"
            if len(ok):
                fig.add_trace(go.Scatter(
                    x=ok["peak_lr"], y=ok["loss"], mode="markers", name=f"{fam} ({what})",
                    legendgroup=fam,
                    marker={"symbol": ORIGIN_MARKERS.get(origin, "circle"), "size": 9 if origin == "grid" else 8,
                            "color": family_color(fam), "line": {"width": 1.5, "color": family_color(fam)}},
                    customdata=ok["candidate"],
                    hovertemplate="peak LR %{x:.3g}: loss %{y:.4f}<br>%{customdata}<extra></extra>",
                ))  # fmt: skip
                groups.append(group)
            if len(div):
                fig.add_trace(go.Scatter(
                    x=div["peak_lr"], y=[top * 1.02] * len(div), mode="markers",
                    name=f"{fam} ({what}) diverged", legendgroup=fam,
                    marker={"symbol": "x", "size": 10, "color": family_color(fam)},
                    customdata=div["candidate"],
                    hovertemplate="peak LR %{x:.3g}: diverged<br>%{customdata}<extra></extra>",
                ))  # fmt: skip
                groups.append(group)
    if not fig.data:
        raise FigureUnavailable("no setting has a result")
    fig.update_layout(
        xaxis={"type": "log", "tickformat": "~g", "title": "peak learning rate"},
        yaxis={"type": "log", "title": "final eval loss"},
        template="plotly_white",
    )
    return add_selector(fig, groups, label="horizon")


def loss_vs_lr_any(table: pd.DataFrame) -> go.Figure:
    """The report's LR figure: the per-member LR curves
    (:func:`analysis.figures.robustness.loss_vs_lr_figure`), or the per-setting points of
    :func:`searched_lr_figure` where the sweep has searched settings or no member was run at two
    peak LRs."""
    from analysis.figures.robustness import loss_vs_lr_figure

    if "origin" in table.columns and table["origin"].eq("search").any():
        return searched_lr_figure(table)
    try:
        return loss_vs_lr_figure(table)
    except FigureUnavailable:
        return searched_lr_figure(table)
