"""Figures of horizon robustness: loss vs horizon with the oracle, regret heatmap, loss vs LR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures._common import (
    MAX_HEATMAP_ROWS,
    SCOPE,
    FigureUnavailable,
    add_selector,
    family_color,
    horizon_axis,
    multiples_text,
    scope_label,
)
from analysis.horizons import anytime_optimal, lr_sensitivity, oracle, regret, robustness

__all__ = ["loss_vs_horizon_figure", "loss_vs_lr_figure", "regret_heatmap_figure"]


def _need_horizons(table: pd.DataFrame, n: int = 2) -> None:
    most = table.groupby(SCOPE, dropna=False)["horizon"].nunique().max()
    if most < n:
        raise FigureUnavailable(f"needs at least {n} horizons; this sweep has {most}")


def _finite(s: pd.Series) -> pd.Series:
    return s.where(np.isfinite(s))


def loss_vs_horizon_figure(table: pd.DataFrame) -> go.Figure:
    """Final eval loss against horizon (log–log) per family: the family's anytime-best candidate
    (solid, ±1 stderr), the family's best candidate at each horizon (dotted, re-tuned per
    horizon) and the per-horizon oracle over all candidates (black)."""
    _need_horizons(table)
    xcol, xtitle = horizon_axis(table)
    best = anytime_optimal(table, by="family")
    families = sorted(table["family"].unique())
    fig, groups = go.Figure(), []
    for scope, st in table.groupby(SCOPE, sort=True, dropna=False):
        label = scope_label(scope)
        sb = best.loc[(best[SCOPE].astype(str) == [str(s) for s in scope]).all(axis=1)]
        for _, b in sb.iterrows():
            color = family_color(b["family"], families)
            rows = st.loc[st["candidate"] == b["candidate"]].sort_values("horizon")
            fig.add_trace(
                go.Scatter(
                    x=rows[xcol],
                    y=_finite(rows["loss"]),
                    mode="lines+markers",
                    name=b["candidate"],
                    legendgroup=b["family"],
                    line={"color": color},
                    error_y={"type": "data", "array": rows["stderr"].fillna(0), "visible": True},
                    hovertemplate="%{x:.3g}: loss %{y:.4f}<extra>" + b["candidate"] + "</extra>",
                )
            )
            groups.append(label)
            fam = st.loc[st["family"] == b["family"]]
            tuned = (
                fam.sort_values(["horizon", "loss", "candidate"], kind="stable")
                .groupby("horizon")
                .head(1)
            )
            fig.add_trace(
                go.Scatter(
                    x=tuned[xcol],
                    y=_finite(tuned["loss"]),
                    mode="lines",
                    name=f"{b['family']} tuned per horizon",
                    legendgroup=b["family"],
                    line={"color": color, "dash": "dot"},
                    text=tuned["candidate"],
                    hovertemplate="%{x:.3g}: %{y:.4f}<br>%{text}<extra></extra>",
                )
            )
            groups.append(label)
        orc = oracle(st).sort_values("horizon")
        fig.add_trace(
            go.Scatter(
                x=orc[xcol],
                y=orc["loss"],
                mode="lines+markers",
                name="oracle (best per horizon)",
                line={"color": "black", "dash": "dash"},
                marker={"symbol": "diamond", "size": 9},
                text=orc["candidate"],
                hovertemplate="%{x:.3g}: %{y:.4f}<br>%{text}<extra>oracle</extra>",
            )
        )
        groups.append(label)
    fig.update_layout(
        xaxis_type="log",
        yaxis_type="log",
        xaxis_title=xtitle,
        yaxis_title="final eval loss (mean over seeds)",
        template="plotly_white",
    )
    return add_selector(fig, groups, label="scope")


def regret_heatmap_figure(table: pd.DataFrame, max_rows: int = MAX_HEATMAP_ROWS) -> go.Figure:
    """Relative regret (%) of candidates (rows, best worst-case first) at each horizon (columns).

    At most ``max_rows`` candidates per scope: the lowest worst-case regret, plus each family's
    best if it would be cut. Diverged cells read "div", missing cells "—".
    """
    _need_horizons(table)
    reg = regret(table)
    rob = robustness(table)
    fam_best = anytime_optimal(table, by="family")
    names = multiples_text(table)
    fig, groups = go.Figure(), []
    for scope, rs in rob.groupby(SCOPE, sort=True, dropna=False):
        key = [str(s) for s in scope]
        keep = list(rs["candidate"].head(max_rows))
        fb = fam_best.loc[(fam_best[SCOPE].astype(str) == key).all(axis=1), "candidate"]
        keep += [c for c in fb if c not in keep]
        sreg = reg.loc[(reg[SCOPE].astype(str) == key).all(axis=1) & reg["candidate"].isin(keep)]
        wide = sreg.pivot_table(
            index="candidate", columns="horizon", values="regret", aggfunc="first", dropna=False
        )
        wide = wide.reindex(index=keep)
        z = wide.to_numpy(dtype=float) * 100.0
        text = np.where(
            np.isposinf(z),
            "div",
            np.where(
                np.isnan(z), "—", np.vectorize(lambda v: f"{v:.2g}")(np.nan_to_num(z, posinf=0))
            ),
        )
        finite = z[np.isfinite(z)]
        zmax = float(np.percentile(finite, 95)) if finite.size else 1.0
        cols = [names.get((*tuple(scope), int(h)), str(h)) for h in wide.columns]
        fig.add_trace(
            go.Heatmap(
                z=np.where(np.isfinite(z), z, np.nan),
                x=cols,
                y=list(wide.index),
                text=text,
                texttemplate="%{text}",
                zmin=0.0,
                zmax=max(zmax, 1e-9),
                colorscale="Viridis",
                reversescale=True,
                colorbar={"title": {"text": "regret %"}},
                xgap=1,
                ygap=1,
                hovertemplate="%{y}<br>%{x}<br>regret %{text}%<extra></extra>",
            )
        )
        groups.append(scope_label(scope))
    n_rows = max(len(t.y) for t in fig.data)
    fig.update_layout(
        template="plotly_white",
        height=max(360, 26 * n_rows + 160),
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis_title="horizon",
    )
    return add_selector(fig, groups, label="scope")


def loss_vs_lr_figure(table: pd.DataFrame) -> go.Figure:
    """Final loss against peak LR per family (its anytime-best weights variant, best over the
    other settings at each LR); a dropdown picks the horizon (and scope). Diverged LRs are drawn
    as crosses above the curves."""
    sens = lr_sensitivity(table)
    if sens.curves.groupby([*SCOPE, "family"], dropna=False)["peak_lr"].nunique().max() < 2:
        raise FigureUnavailable("every family was run at a single peak LR")
    best = anytime_optimal(table, by="family")[[*SCOPE, "family", "weights"]]
    curves = sens.curves.merge(best, on=[*SCOPE, "family", "weights"])
    families = sorted(table["family"].unique())
    names = multiples_text(table)
    fig, groups = go.Figure(), []
    for key, rows in curves.groupby([*SCOPE, "horizon"], sort=True, dropna=False):
        scope, horizon = key[:-1], int(key[-1])
        many = table[SCOPE].drop_duplicates().shape[0] > 1
        group = (f"{scope_label(scope)} · " if many else "") + names.get(
            (*scope, horizon), str(horizon)
        )
        top = float(np.nanmax(_finite(rows["loss"]))) if np.isfinite(rows["loss"]).any() else 1.0
        for fam, fr in rows.groupby("family", sort=True):
            fr = fr.sort_values("peak_lr")
            color = family_color(fam, families)
            fig.add_trace(
                go.Scatter(
                    x=fr["peak_lr"],
                    y=_finite(fr["loss"]),
                    mode="lines+markers",
                    name=f"{fam} ({fr['weights'].iloc[0]})",
                    legendgroup=fam,
                    line={"color": color},
                    text=fr["candidate"],
                    error_y={"type": "data", "array": fr["stderr"].fillna(0), "visible": True},
                    hovertemplate="lr %{x:.3g}: %{y:.4f}<br>%{text}<extra></extra>",
                )
            )
            groups.append(group)
            div = fr.loc[np.isposinf(fr["loss"])]
            if len(div):
                fig.add_trace(
                    go.Scatter(
                        x=div["peak_lr"],
                        y=[top * 1.02] * len(div),
                        mode="markers",
                        name=f"{fam} diverged",
                        legendgroup=fam,
                        marker={"symbol": "x", "size": 11, "color": color},
                        hovertemplate="lr %{x:.3g}: diverged<extra></extra>",
                    )
                )
                groups.append(group)
    fig.update_layout(
        xaxis_type="log",
        xaxis_title="peak learning rate",
        yaxis_title="final eval loss",
        template="plotly_white",
    )
    return add_selector(fig, groups, label="horizon")
