"""Shared pieces of the figure builders: colours, caps, down-sampling, selectors.

Caps keep a 1,000-lineage report small and readable (stated in each figure's caption):
at most :data:`MAX_POINTS_PER_TRACE` points per curve trace (evenly spaced by index, first and
last kept) and :data:`MAX_CURVE_TRACES` curve traces per figure, drawn from the *best setting of
each family* (its anytime-best candidate, first seed) rather than from every lineage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.horizons import anytime_optimal, horizon_multiples
from analysis.tables import SCOPE_COLUMNS, SETTING_COLUMNS

__all__ = [
    "FigureUnavailable",
    "MAX_CURVE_TRACES",
    "MAX_HEATMAP_ROWS",
    "MAX_POINTS_PER_TRACE",
    "add_selector",
    "best_setting_lineages",
    "downsample",
    "family_color",
    "horizon_axis",
    "scope_label",
]

MAX_POINTS_PER_TRACE = 300
MAX_CURVE_TRACES = 80
MAX_HEATMAP_ROWS = 40
SCOPE = list(SCOPE_COLUMNS)

_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


class FigureUnavailable(Exception):
    """A figure cannot be drawn from these results (e.g. a single horizon); the report shows the
    message as a short note instead."""


def family_color(family: str, families: Sequence[str]) -> str:
    """A stable colour per family: its rank among the sorted families present."""
    ordered = sorted(set(families))
    return _PALETTE[ordered.index(family) % len(_PALETTE)] if family in ordered else _PALETTE[-1]


def dash(i: int) -> str:
    return _DASHES[i % len(_DASHES)]


def downsample(frame: pd.DataFrame, max_points: int = MAX_POINTS_PER_TRACE) -> pd.DataFrame:
    """At most ``max_points`` rows, evenly spaced by position, first and last kept."""
    if len(frame) <= max_points:
        return frame
    idx = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))
    return frame.iloc[idx]


def scope_label(scope: Sequence[object]) -> str:
    text = " ".join(str(s) for s in scope if str(s))
    return text or "all"


def add_selector(
    fig: go.Figure, groups: Sequence[str], *, include_all: bool = False, label: str = "show"
) -> go.Figure:
    """A dropdown that shows one group of traces at a time (``groups[i]`` is trace i's group).

    Nothing is added for a single group. The first group is visible initially (or all, with
    ``include_all``).
    """
    order = list(dict.fromkeys(groups))
    if len(order) <= 1:
        return fig
    buttons = []
    if include_all:
        buttons.append(
            {"label": "all", "method": "update", "args": [{"visible": [True] * len(groups)}]}
        )
    for g in order:
        buttons.append(
            {"label": g, "method": "update", "args": [{"visible": [x == g for x in groups]}]}
        )
    if not include_all:
        for trace, g in zip(fig.data, groups, strict=True):
            trace.visible = g == order[0]
    fig.update_layout(
        updatemenus=[
            {
                "buttons": buttons,
                "direction": "down",
                "x": 0.0,
                "xanchor": "left",
                "y": 1.16,
                "yanchor": "top",
                "showactive": True,
                "name": label,
            }
        ],
        margin={"t": 90},
    )
    return fig


def horizon_axis(table: pd.DataFrame) -> tuple[str, str]:
    """Which column to plot horizons on: ``tokens`` when known everywhere, else ``horizon``."""
    if table["tokens"].notna().all() and (table["tokens"] > 0).all():
        return "tokens", "training tokens"
    return "horizon", "training steps"


def multiples_text(table: pd.DataFrame) -> dict[tuple, str]:
    """``{(*scope, horizon): "2× Chinchilla (400 steps)"}`` for axis labels."""
    mults, unit = horizon_multiples(table)
    short = "Chinchilla" if unit == "Chinchilla" else "shortest"
    return {
        (
            *tuple(r[c] for c in SCOPE),
            int(r["horizon"]),
        ): f"{r['multiple']:.3g}× {short} ({int(r['horizon'])} steps)"
        for _, r in mults.iterrows()
    }


def best_setting_lineages(lineages: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Lineage/branch rows of each family's best setting (per scope), first seed only.

    The best setting of a family is the setting of its anytime-optimal candidate. Returns the
    matching ``lineages`` rows with ``candidate`` (the label) added, sorted by scope, family,
    lineage and branch.
    """
    best = anytime_optimal(table, by="family")
    keys = [*SCOPE, *SETTING_COLUMNS]
    left = lineages.copy()
    right = best[[*keys, "candidate"]].copy()
    for col in keys:
        # Same values, maybe different dtypes after normalisation: compare as text.
        left[f"_k_{col}"] = left[col].astype(str)
        right[f"_k_{col}"] = right[col].astype(str)
    kcols = [f"_k_{c}" for c in keys]
    merged = left.merge(right[[*kcols, "candidate"]], on=kcols, how="inner")
    if merged.empty:
        return merged.drop(columns=kcols)
    first_seed = merged.groupby([*SCOPE, "family"], dropna=False)["seed"].transform("min")
    merged = merged.loc[merged["seed"] == first_seed].drop(columns=kcols)
    return merged.sort_values(
        [*SCOPE, "family", "lineage_id", "branch"], kind="stable"
    ).reset_index(drop=True)
