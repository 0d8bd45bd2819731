"""Figures of horizon robustness: loss vs horizon with the envelope, regret heatmap, loss vs LR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.anytime import best_per_family, robustness
from analysis.figures._common import (
    MAX_HEATMAP_ROWS,
    SCOPE,
    FigureUnavailable,
    add_selector,
    family_color,
    horizon_axis,
    horizon_text,
    multiples_text,
    readable_log_axis,
    scope_label,
    weights_dash,
    weights_marker,
)
from analysis.grid import lr_sensitivity
from analysis.horizons import envelope, regret
from analysis.units import short_numbers, sig3

__all__ = ["loss_vs_horizon_figure", "loss_vs_lr_figure", "regret_heatmap_figure"]


def _need_horizons(table: pd.DataFrame, n: int = 2) -> None:
    most = table.groupby(SCOPE, dropna=False)["horizon"].nunique().max()
    if most < n:
        raise FigureUnavailable(f"needs at least {n} horizons; this sweep has {most}")


def _finite(s: pd.Series) -> pd.Series:
    return s.where(np.isfinite(s))


def _error_bars(rows: pd.DataFrame) -> dict:
    """±1 standard error where there are ≥ 2 seeds; no bar (NaN) where there is one."""
    se = rows["stderr"].where(rows["n_seeds"] >= 2)
    return {"type": "data", "array": se.to_numpy(float), "visible": bool(se.notna().any())}


def loss_vs_horizon_figure(table: pd.DataFrame) -> go.Figure:
    """Final eval loss against horizon (log–log): each family's best candidate (one setting for
    every horizon; colour = family, dash/marker = weights), ±1 standard error over seeds where
    there are ≥ 2, and the per-horizon tuned envelope of horizon-aware candidates (black)."""
    _need_horizons(table)
    xcol, xtitle = horizon_axis(table)
    best = best_per_family(table)
    fig, groups = go.Figure(), []
    for scope, st in table.groupby(SCOPE, sort=True, dropna=False):
        label = scope_label(scope)
        sb = best.loc[(best[SCOPE].astype(str) == [str(s) for s in scope]).all(axis=1)]
        for _, b in sb.iterrows():
            rows = st.loc[st["candidate"] == b["candidate"]].sort_values("horizon")
            fig.add_trace(
                go.Scatter(
                    x=rows[xcol],
                    y=_finite(rows["loss"]),
                    mode="lines+markers",
                    name=f"{b['candidate']} ({b['kind']})",
                    legendgroup=b["family"],
                    line={"color": family_color(b["family"]), "dash": weights_dash(b["weights"])},
                    marker={"symbol": weights_marker(b["weights"]), "size": 8},
                    error_y=_error_bars(rows),
                    customdata=np.column_stack([horizon_text(rows, table), rows["n_seeds"]]),
                    hovertemplate="%{customdata[0]}<br>loss %{y:.4f} (%{customdata[1]} seeds)"
                    f"<extra>{b['candidate']}</extra>",
                )
            )
            groups.append(label)
        env = envelope(st)
        env = env.loc[env["candidate"] != ""].sort_values("horizon")
        fig.add_trace(
            go.Scatter(
                x=env[xcol],
                y=env["loss"],
                mode="lines+markers",
                name="envelope (best horizon-aware per horizon)"
                if (env["basis"] == "horizon-aware").all()
                else "per-horizon best (no horizon-aware candidate)",
                line={"color": "black", "dash": "dash"},
                marker={"symbol": "diamond-open", "size": 10},
                customdata=np.column_stack([horizon_text(env, table), env["candidate"]]),
                hovertemplate="%{customdata[0]}<br>loss %{y:.4f}<br>%{customdata[1]}"
                "<extra>envelope</extra>",
            )
        )
        groups.append(label)
    readable_log_axis(fig, "xaxis", table[xcol].tolist())
    fig.update_layout(
        yaxis_type="log",
        xaxis_title=xtitle,
        yaxis_title="final eval loss (mean over seeds)",
        template="plotly_white",
    )
    return add_selector(fig, groups, label="scope")


ROW_PX = 28
"""Height of one heatmap row in pixels: the figure grows with its rows."""
MAX_LABEL = 64
"""Longer row labels are cut (with "…") on the axis; the hover shows them whole."""


def _row_labels(labels: list[str]) -> list[str]:
    """Row labels cut to :data:`MAX_LABEL` characters in the candidate's part, keeping the
    ``[kind]`` suffix; cut labels stay distinct."""
    out: list[str] = []
    for text in labels:
        head, sep, kind = text.rpartition(" [")
        if not sep:
            head, kind = text, ""
        room = MAX_LABEL - (len(kind) + 2 if sep else 0)
        short = text if len(text) <= MAX_LABEL else head[: room - 1] + "…" + (sep + kind if sep else "")
        while short in out:  # two labels cut to the same text: keep them apart
            short += "\u200b"
        out.append(short)
    return out


def regret_heatmap_figure(table: pd.DataFrame, max_rows: int = MAX_HEATMAP_ROWS) -> go.Figure:
    """Relative regret (%) against the envelope of candidates (rows, best worst-case first) at
    each horizon (columns); blue = better than the envelope, red = worse.

    At most ``max_rows`` candidates per scope: the lowest worst-case regret, plus each family's
    best if it would be cut. Diverged cells read "div", missing cells "—".
    """
    _need_horizons(table)
    reg = regret(table)
    rob = robustness(table)
    fam_best = best_per_family(table)
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
        ).reindex(index=keep)
        kind = rs.set_index("candidate")["kind"].reindex(keep)
        z = wide.to_numpy(dtype=float) * 100.0
        text = np.where(
            np.isposinf(z),
            "div",
            np.where(
                np.isnan(z), "—", np.vectorize(lambda v: sig3(v) + "%")(np.nan_to_num(z, posinf=0))
            ),
        )
        finite = np.abs(z[np.isfinite(z)])
        zmax = max(float(np.percentile(finite, 95)) if finite.size else 1.0, 1e-9)
        cols = [names.get((*tuple(scope), int(h)), str(h)) for h in wide.columns]
        fig.add_trace(
            go.Heatmap(
                z=np.where(np.isfinite(z), z, np.nan),
                x=cols,
                y=_row_labels([f"{c} [{k}]" for c, k in zip(wide.index, kind, strict=True)]),
                customdata=np.array(
                    [[f"{c} [{k}]"] * len(cols) for c, k in zip(wide.index, kind, strict=True)]
                ),
                text=text,
                texttemplate="%{text}",
                zmin=-zmax,
                zmax=zmax,
                zmid=0.0,
                colorscale="RdBu",
                reversescale=True,
                colorbar={"title": {"text": "regret %"}},
                xgap=1,
                ygap=1,
                hovertemplate="%{customdata}<br>%{x}<br>regret %{text}<extra></extra>",
            )
        )
        groups.append(scope_label(scope))
    n_rows = max(len(t.y) for t in fig.data)
    fig.update_layout(
        template="plotly_white",
        height=max(360, ROW_PX * n_rows + 180),
        # every row labelled: a category axis with auto ticks drops labels when rows are dense
        yaxis={"autorange": "reversed", "automargin": True, "tickmode": "linear", "tick0": 0,
               "dtick": 1},
        xaxis_title="horizon",
    )
    return add_selector(fig, groups, label="scope")


def loss_vs_lr_figure(table: pd.DataFrame) -> go.Figure:
    """Final loss against peak LR per family member (its best weights variant, best over the
    other settings at each LR); a dropdown picks the horizon (and scope). Diverged LRs are drawn
    as crosses above the curves; ±1 standard error where there are ≥ 2 seeds."""
    sens = lr_sensitivity(table)
    if sens.curves.groupby([*SCOPE, "member"], dropna=False)["peak_lr"].nunique().max() < 2:
        raise FigureUnavailable("every family was run at a single peak LR")
    best = best_per_family(table)[[*SCOPE, "member", "weights"]]
    curves = sens.curves.merge(best, on=[*SCOPE, "member", "weights"])
    seeds = table[[*SCOPE, "candidate", "horizon", "n_seeds"]]
    curves = curves.merge(seeds, on=[*SCOPE, "candidate", "horizon"], how="left")
    names = multiples_text(table)
    many = table[SCOPE].drop_duplicates().shape[0] > 1
    fig, groups = go.Figure(), []
    for key, rows in curves.groupby([*SCOPE, "horizon"], sort=True, dropna=False):
        scope, horizon = key[:-1], int(key[-1])
        group = (f"{scope_label(scope)} · " if many else "") + names.get(
            (*scope, horizon), str(horizon)
        )
        top = float(np.nanmax(_finite(rows["loss"]))) if np.isfinite(rows["loss"]).any() else 1.0
        for (member, fam, w), fr in rows.groupby(["member", "family", "weights"], sort=True):
            fr = fr.sort_values("peak_lr")
            color = family_color(fam)
            fig.add_trace(
                go.Scatter(
                    x=fr["peak_lr"],
                    y=_finite(fr["loss"]),
                    mode="lines+markers",
                    name=f"{member} ({short_numbers(w)})",
                    legendgroup=member,
                    line={"color": color, "dash": weights_dash(w)},
                    marker={"symbol": weights_marker(w), "size": 8},
                    error_y=_error_bars(fr),
                    customdata=np.column_stack([fr["candidate"], horizon_text(fr, table)]),
                    hovertemplate="peak LR %{x:.3g}: loss %{y:.4f}<br>%{customdata[0]}"
                    "<br>%{customdata[1]}<extra></extra>",
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
                        name=f"{member} diverged",
                        legendgroup=member,
                        marker={"symbol": "x", "size": 11, "color": color},
                        hovertemplate="peak LR %{x:.3g}: diverged<extra></extra>",
                    )
                )
                groups.append(group)
    lrs = sorted(set(table["peak_lr"].dropna()))
    ticks = (
        {"tickvals": lrs, "ticktext": [f"{v:.3g}" for v in lrs]}
        if len(lrs) <= 8
        else {"tickformat": "~g"}
    )
    fig.update_layout(
        xaxis={"type": "log", **ticks},
        xaxis_title="peak learning rate"
        + (" (every value tried is a tick)" if len(lrs) <= 8 else ""),
        yaxis_title="final eval loss",
        template="plotly_white",
    )
    return add_selector(fig, groups, label="horizon")
