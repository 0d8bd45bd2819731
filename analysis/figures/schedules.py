"""Figures of what was run: the LR schedules as run, and eval-loss curves per family."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from analysis.figures._common import (
    MAX_CURVE_TRACES,
    SCOPE,
    FigureUnavailable,
    add_selector,
    best_setting_lineages,
    dash,
    downsample,
    family_color,
    scope_label,
)
from analysis.tables import validate_curves, validate_lineages

__all__ = ["eval_curves_figure", "lr_schedule_figure"]


def _branch_label(row: pd.Series) -> str:
    if row["branch"] == "main" and pd.notna(row.get("max_step")):
        return f"T={int(row['max_step'])}"
    return str(row["branch"])


def _selected_curves(
    lineages: pd.DataFrame, curves: pd.DataFrame, table: pd.DataFrame, split: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    lineages, curves = validate_lineages(lineages), validate_curves(curves)
    chosen = best_setting_lineages(lineages, table)
    if chosen.empty:
        raise FigureUnavailable("no lineage matches a candidate of the loss table")
    pairs = chosen[["lineage_id", "branch"]].drop_duplicates()
    rows = curves.loc[curves["split"] == split].merge(pairs, on=["lineage_id", "branch"])
    if rows.empty:
        raise FigureUnavailable(f"no {split} rows for the best setting of any family")
    return chosen, rows


def lr_schedule_figure(
    lineages: pd.DataFrame, curves: pd.DataFrame, table: pd.DataFrame
) -> go.Figure:
    """LR against step from the train rows, one line per lineage/branch of each family's best
    setting (first seed); a dropdown picks the scope when there are several."""
    chosen, rows = _selected_curves(lineages, curves, table, "train")
    rows = rows.loc[rows["lr"].notna()]
    if rows.empty:
        raise FigureUnavailable("the train rows carry no learning rate")
    families = chosen["family"].tolist()
    fig, groups = go.Figure(), []
    by_pair = dict(tuple(rows.groupby(["lineage_id", "branch"], sort=False)))
    for _, lin in chosen.iterrows():
        part = by_pair.get((lin["lineage_id"], lin["branch"]))
        if part is None:
            continue
        if len(fig.data) >= MAX_CURVE_TRACES:
            break
        part = downsample(part.sort_values("step"))
        fig.add_trace(
            go.Scatter(
                x=part["step"],
                y=part["lr"],
                mode="lines",
                name=f"{lin['family']} {_branch_label(lin)}",
                legendgroup=lin["family"],
                line={"color": family_color(lin["family"], families), "width": 1.5},
                hovertemplate=f"{lin['candidate']}<br>{lin['branch']}<br>step %{{x}}<br>lr %{{y:.3g}}<extra></extra>",
            )
        )
        groups.append(scope_label([lin[c] for c in SCOPE]))
    if not fig.data:
        raise FigureUnavailable("no LR recorded for the selected lineages")
    fig.update_layout(
        xaxis_title="step",
        yaxis_title="learning rate",
        template="plotly_white",
        legend_title_text="family, branch",
    )
    return add_selector(fig, groups, label="scope")


def eval_curves_figure(
    lineages: pd.DataFrame, curves: pd.DataFrame, table: pd.DataFrame
) -> go.Figure:
    """Eval loss against step for each family's best setting (first seed), one line per
    lineage/branch and weights variant; a dropdown shows one family (and scope) at a time."""
    chosen, rows = _selected_curves(lineages, curves, table, "eval")
    rows = rows.loc[rows["loss"].notna()]
    weights_all = sorted(rows["weights"].unique())
    many_scopes = chosen[SCOPE].drop_duplicates().shape[0] > 1
    fig, groups = go.Figure(), []
    by_pair = dict(tuple(rows.groupby(["lineage_id", "branch"], sort=False)))
    for _, lin in chosen.iterrows():
        part = by_pair.get((lin["lineage_id"], lin["branch"]))
        if part is None:
            continue
        group = (
            f"{scope_label([lin[c] for c in SCOPE])} · {lin['family']}"
            if many_scopes
            else lin["family"]
        )
        for w, wrows in part.groupby("weights", sort=True):
            if len(fig.data) >= MAX_CURVE_TRACES:
                break
            wrows = downsample(wrows.sort_values("step"))
            fig.add_trace(
                go.Scatter(
                    x=wrows["step"],
                    y=wrows["loss"],
                    mode="lines+markers",
                    marker={"size": 4},
                    name=f"{w} · {_branch_label(lin)}",
                    legendgroup=w,
                    line={
                        "color": family_color(w, weights_all),
                        "dash": dash(weights_all.index(w)),
                        "width": 1.5,
                    },
                    hovertemplate=f"{lin['candidate']}<br>{lin['branch']} · {w}<br>step %{{x}}<br>eval loss %{{y:.4f}}<extra></extra>",
                )
            )
            groups.append(group)
    if not fig.data:
        raise FigureUnavailable("no eval loss recorded for the selected lineages")
    fig.update_layout(
        xaxis_title="step",
        yaxis_title="eval loss",
        template="plotly_white",
        legend_title_text="weights · branch",
    )
    return add_selector(fig, groups, label="family")
