"""Figures of what was run: the LR schedules as run, and eval-loss curves per family.

Both draw the curves of each family's best setting (its candidate with the lowest worst-case
regret against the envelope), first seed: one line per curve (a cosine run per horizon, a WSD
cooldown per horizon, one horizon-free run), whole from step 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.anytime import best_per_family
from analysis.figures._common import (
    MAX_CURVE_TRACES,
    SCOPE,
    FigureUnavailable,
    add_selector,
    downsample,
    family_color,
    scope_label,
    step_text,
    weights_dash,
    weights_marker,
)
from analysis.law_curves import CurveIndex, as_index
from analysis.units import short_numbers

__all__ = ["best_curves", "eval_curves_figure", "lr_schedule_figure"]


def best_curves(final_losses: pd.DataFrame, table: pd.DataFrame, curves: CurveIndex) -> list[dict]:
    """The curves of each (scope, family)'s best setting, first seed, sorted; each a dict with
    ``key`` (curve key), ``keys`` (its column names), the scope, ``family``, ``member``,
    ``candidate``, ``horizon``, ``tokens_per_step``, ``n_params``."""
    best = best_per_family(table)[[*SCOPE, "family", "candidate"]]
    keys = curves.keys
    setting_cols = [
        *SCOPE,
        "family",
        "member",
        "peak_lr",
        "optimizer",
        "schedule",
        "schedule_params",
        "optimizer_params",
        "warmup",
        "batch_size",
    ]
    fl = final_losses.merge(best[[*SCOPE, "candidate"]], on=[*SCOPE, "candidate"])
    fl = fl.loc[fl["seed"] == fl.groupby([*SCOPE, "family"], dropna=False)["seed"].transform("min")]
    out = []
    for key, rows in fl.groupby(keys, sort=True, dropna=False):
        r = rows.iloc[0]
        out.append(
            {
                "key": tuple(str(k) for k in key),
                "keys": keys,
                **{c: r[c] for c in setting_cols},
                "candidate": r["candidate"],
                "horizon": int(rows["horizon"].max()),
                "tokens_per_step": float(r["tokens_per_step"]),
                "n_params": float(r["n_params"]),
                "branch": str(r["branch"]),
            }
        )
    out.sort(key=lambda c: ([str(c[s]) for s in SCOPE], c["family"], c["horizon"], c["key"]))
    if not out:
        raise FigureUnavailable("no curve matches the best setting of any family")
    return out


def lr_schedule_figure(
    final_losses: pd.DataFrame,
    table: pd.DataFrame,
    curves: pd.DataFrame | CurveIndex,
    lineages: pd.DataFrame | None = None,
    lr_sequences: Mapping[tuple, np.ndarray] | None = None,
) -> go.Figure:
    """LR against step for each family's best setting (first seed), one line per curve,
    colour = family: the train rows' ``lr``, or the rebuilt per-step LR where those rows are
    sub-sampled."""
    index = as_index(curves, lineages)
    fig, groups = go.Figure(), []
    for c in best_curves(final_losses, table, index):
        if len(fig.data) >= MAX_CURVE_TRACES:
            break
        part = index.whole(c["key"], "train").drop_duplicates("step")
        part = part.loc[part["lr"].notna(), ["step", "lr"]]
        seq = (lr_sequences or {}).get(c["key"])
        if seq is not None and (len(part) < len(seq) or part.empty):  # sub-sampled rows
            part = pd.DataFrame({"step": np.arange(len(seq)), "lr": np.asarray(seq, float)})
        if part.empty:
            continue
        part = downsample(part)
        fig.add_trace(
            go.Scatter(
                x=part["step"], y=part["lr"], mode="lines",
                name=f"{c['member']} T={c['horizon']:,}", legendgroup=c["family"],
                line={"color": family_color(c["family"]), "width": 1.5},
                customdata=step_text(part["step"].to_numpy(), c["tokens_per_step"], c["n_params"]),
                hovertemplate=f"{c['candidate']}<br>%{{customdata}}<br>lr %{{y:.3g}}<extra></extra>",
            )
        )  # fmt: skip
        groups.append(scope_label([c[s] for s in SCOPE]))
    if not fig.data:
        raise FigureUnavailable("no LR recorded for the selected curves")
    fig.update_layout(
        xaxis_title="step", xaxis_tickformat="~s", yaxis_title="learning rate",
        template="plotly_white", legend_title_text="family member, horizon",
    )  # fmt: skip
    return add_selector(fig, groups, label="scope")


def eval_curves_figure(
    final_losses: pd.DataFrame,
    table: pd.DataFrame,
    curves: pd.DataFrame | CurveIndex,
    lineages: pd.DataFrame | None = None,
) -> go.Figure:
    """Eval loss against step for each family's best setting (first seed), one line per curve
    and weights variant: colour = family, dash and marker = weights variant; a dropdown shows
    one family (and scope) at a time."""
    index = as_index(curves, lineages)
    chosen = best_curves(final_losses, table, index)
    many_scopes = len({tuple(str(c[s]) for s in SCOPE) for c in chosen}) > 1
    fig, groups = go.Figure(), []
    for c in chosen:
        rows = index.whole(c["key"], "eval")
        rows = rows.loc[rows["loss"].notna()]
        group = (f"{scope_label([c[s] for s in SCOPE])} · " if many_scopes else "") + c["family"]
        for w, wrows in rows.groupby("weights", sort=True):
            if len(fig.data) >= MAX_CURVE_TRACES:
                break
            wrows = downsample(wrows.drop_duplicates("step").sort_values("step"))
            fig.add_trace(
                go.Scatter(
                    x=wrows["step"], y=wrows["loss"], mode="lines+markers",
                    marker={"size": 6, "symbol": weights_marker(w)},
                    name=f"{short_numbers(w)} · T={c['horizon']:,}", legendgroup=w,
                    line={"color": family_color(c["family"]), "dash": weights_dash(w), "width": 1.5},
                    customdata=step_text(wrows["step"].to_numpy(), c["tokens_per_step"], c["n_params"]),
                    hovertemplate=f"{c['candidate']}<br>{w}<br>%{{customdata}}<br>eval loss %{{y:.4f}}<extra></extra>",
                )
            )  # fmt: skip
            groups.append(group)
    if not fig.data:
        raise FigureUnavailable("no eval loss recorded for the selected curves")
    fig.update_layout(
        xaxis_title="step", xaxis_tickformat="~s", yaxis_title="eval loss",
        template="plotly_white", legend_title_text="weights · horizon",
    )  # fmt: skip
    return add_selector(fig, groups, label="family")
