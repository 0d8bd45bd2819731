"""Shared pieces of the figure builders: one colour per family, one dash/marker per weights
variant, readable units, hover text, caps, down-sampling, selectors.

Colours mean the same thing in every figure and every report: :data:`FAMILY_COLORS` fixes the
colour of each known family (schedule or schedule-free optimizer) by name, and an unknown
family gets one from :data:`_EXTRA` by a stable hash of its name — never by its rank among the
families present, which changed meaning between figures. A weights variant is told apart by
line dash and marker (:func:`weights_dash`, :func:`weights_marker`), never by colour.

Caps keep a 1,000-lineage report small and readable (stated in each figure's caption):
at most :data:`MAX_POINTS_PER_TRACE` points per curve trace (evenly spaced by index, first and
last kept) and :data:`MAX_CURVE_TRACES` curve traces per figure, drawn from the *best setting of
each family* rather than from every lineage.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.anytime import best_per_family
from analysis.horizons import horizon_multiples
from analysis.tables import SCOPE_COLUMNS, SETTING_COLUMNS
from analysis.units import count_unit, si

__all__ = [
    "FAMILY_COLORS",
    "FigureUnavailable",
    "MAX_CURVE_TRACES",
    "MAX_HEATMAP_ROWS",
    "MAX_POINTS_PER_TRACE",
    "add_selector",
    "best_setting_lineages",
    "downsample",
    "family_color",
    "horizon_axis",
    "horizon_text",
    "log_ticks",
    "scope_label",
    "si",
    "step_text",
    "weights_dash",
    "weights_marker",
]

MAX_POINTS_PER_TRACE = 300
MAX_CURVE_TRACES = 80
MAX_HEATMAP_ROWS = 40
SCOPE = list(SCOPE_COLUMNS)

FAMILY_COLORS: dict[str, str] = {
    "constant": "#1f77b4",  # blue
    "cosine": "#d62728",  # red
    "linear": "#ff7f0e",  # orange
    "wsd": "#9467bd",  # purple
    "polynomial": "#2ca02c",  # green
    "inverse_sqrt": "#17becf",  # cyan
    "sf_adamw": "#8c564b",  # brown
    "sf_sgd": "#e377c2",  # pink
    "sf_adamw_refined": "#bcbd22",  # olive
    "sf_normuon": "#7f7f7f",  # grey
    "schedulefree_plus": "#393b79",  # indigo
}
"""The colour of every known family, the same in every figure."""

_EXTRA = ("#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")
_DASH = {
    "raw": "solid",
    "x": "solid",
    "ema": "dash",
    "swa": "dot",
    "lawa": "dashdot",
    "poly": "longdash",
}
_MARKER = {
    "raw": "circle", "x": "circle", "ema": "square", "swa": "diamond", "lawa": "triangle-up",
    "poly": "cross",
}  # fmt: skip


class FigureUnavailable(Exception):
    """A figure cannot be drawn from these results (e.g. a single horizon); the report shows the
    message as a short note instead."""


def family_color(family: str, *_ignored: object) -> str:
    """The colour of ``family``: :data:`FAMILY_COLORS`, else a stable hash into a palette."""
    name = str(family)
    if name in FAMILY_COLORS:
        return FAMILY_COLORS[name]
    return _EXTRA[zlib.crc32(name.encode()) % len(_EXTRA)]


def _weights_kind(weights: str) -> str:
    return str(weights).split("@", 1)[0]


def weights_dash(weights: str) -> str:
    """Line dash of a weights variant: raw/x solid, EMA dash, SWA dot, LAWA dash-dot, …"""
    return _DASH.get(_weights_kind(weights), "longdashdot")


def weights_marker(weights: str) -> str:
    """Marker symbol of a weights variant (circle for raw/x, square EMA, diamond SWA, …)."""
    return _MARKER.get(_weights_kind(weights), "x")


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Log-axis ticks spanning [lo, hi] labelled with :func:`si` (1M, 2M, 5M, …): at 1, 2, 5 ×
    10^k, or denser mantissas when that leaves fewer than 3 inside a narrow range."""
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi >= lo):
        return [], []
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    inside: list[float] = []
    for mantissas in ((1, 2, 5), (1, 2, 3, 4, 5, 6, 8), (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        vals = [m * 10.0**k for k in decades for m in mantissas]
        inside = [v for v in vals if lo / 1.0001 <= v <= hi * 1.0001]
        if len(inside) >= 3:
            break
    if len(inside) < 2:  # a very narrow range: its neighbours on both sides too
        below = [v for v in vals if v < lo][-1:]
        above = [v for v in vals if v > hi][:1]
        inside = below + inside + above
    return inside, [si(v) for v in inside]


def horizon_text(table: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.Series:
    """Hover text per row of a loss table: ``"800 steps · 819K tokens · 0.41× Chinchilla"``.

    Multiples are those of ``reference`` (the whole loss table; default: ``table`` itself).
    """
    mults, unit = horizon_multiples(table if reference is None else reference)
    key = [*SCOPE, "horizon"]
    m = table[key].merge(mults, on=key, how="left")["multiple"].to_numpy(float)
    short = "Chinchilla" if unit == "Chinchilla" else "shortest"
    tokens = table["tokens"].to_numpy(float)
    word = count_unit((table if reference is None else reference)["workload"].unique())
    return pd.Series(
        [
            f"{int(h):,} steps · {si(t)} {word} · {x:.3g}× {short}"
            if np.isfinite(t)
            else f"{int(h):,} steps · {x:.3g}× {short}"
            for h, t, x in zip(table["horizon"], tokens, m, strict=True)
        ],
        index=table.index,
    )


def step_text(steps: np.ndarray, tokens_per_step: float, n_params: float) -> list[str]:
    """Hover text per step of a curve: ``"step 400 · 410K tokens · 0.2× Chinchilla"``."""
    out = []
    for s in np.asarray(steps):
        text = f"step {int(s):,}"
        if tokens_per_step and np.isfinite(tokens_per_step):
            tokens = float(s) * tokens_per_step
            text += f" · {si(tokens)} tokens"
            if n_params and np.isfinite(n_params) and n_params > 0:
                text += f" · {tokens / (20.0 * n_params):.3g}× Chinchilla"
        out.append(text)
    return out


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
                "buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left", "y": 1.16,
                "yanchor": "top", "showactive": True, "name": label,
            }
        ],
        margin={"t": 90},
    )  # fmt: skip
    return fig


def horizon_axis(table: pd.DataFrame) -> tuple[str, str]:
    """Which column to plot horizons on: ``tokens`` when known everywhere, else ``horizon``."""
    if table["tokens"].notna().all() and (table["tokens"] > 0).all():
        return "tokens", f"training {count_unit(table['workload'].unique())}"
    return "horizon", "training steps"


def readable_log_axis(fig: go.Figure, axis: str, values: Sequence[float]) -> None:
    """Log axis ``axis`` ("xaxis"/"yaxis") with ticks in readable units over ``values``."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], dtype=float)
    if v.size == 0:
        return
    vals, text = log_ticks(float(v.min()), float(v.max()))
    fig.update_layout({axis: {"type": "log", "tickvals": vals, "ticktext": text}})


def multiples_text(table: pd.DataFrame) -> dict[tuple, str]:
    """``{(*scope, horizon): "2× Chinchilla (400 steps, 410K tokens)"}`` for axis labels."""
    mults, unit = horizon_multiples(table)
    short = "Chinchilla" if unit == "Chinchilla" else "shortest"
    tokens = table.groupby([*SCOPE, "horizon"], dropna=False)["tokens"].median()
    word = count_unit(table["workload"].unique())
    out = {}
    for _, r in mults.iterrows():
        key = (*tuple(r[c] for c in SCOPE), int(r["horizon"]))
        tok = tokens.get(key, np.nan)
        extra = f", {si(tok)} {word}" if np.isfinite(tok) else ""
        out[key] = f"{r['multiple']:.3g}× {short} ({int(r['horizon']):,} steps{extra})"
    return out


def best_setting_lineages(lineages: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Lineage/branch rows of each family's best setting (per scope), first seed only.

    The best setting of a family is that of its candidate with the lowest worst-case regret
    against the envelope (:func:`analysis.anytime.best_per_family`). Returns the matching
    ``lineages`` rows with ``candidate`` (the label) added, sorted by scope, family, lineage and
    branch.
    """
    best = best_per_family(table)
    keys = [*SCOPE, *SETTING_COLUMNS]
    left = lineages.copy()
    right = best[[*keys, "candidate", "weights"]].rename(columns={"weights": "best_weights"})
    for col in keys:
        # Same values, maybe different dtypes after normalisation: compare as text.
        left[f"_k_{col}"] = left[col].astype(str)
        right[f"_k_{col}"] = right[col].astype(str)
    kcols = [f"_k_{c}" for c in keys]
    merged = left.merge(right[[*kcols, "candidate", "best_weights"]], on=kcols, how="inner")
    if merged.empty:
        return merged.drop(columns=kcols)
    first_seed = merged.groupby([*SCOPE, "family"], dropna=False)["seed"].transform("min")
    merged = merged.loc[merged["seed"] == first_seed].drop(columns=kcols)
    return merged.sort_values(
        [*SCOPE, "family", "lineage_id", "branch"], kind="stable"
    ).reset_index(drop=True)
