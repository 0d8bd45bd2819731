"""Compute figure: what the plan spends against the naive one-run-per-(setting, horizon) sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures._common import FigureUnavailable, si
from analysis.throughput import throughput_sentence

__all__ = ["compute_figure", "compute_totals"]


def compute_totals(
    plan: dict | None, lineages: pd.DataFrame | None
) -> dict[str, tuple[float, float]]:
    """``{"tokens": (spent, naive), "FLOPs": (spent, naive)}`` from the plan, else estimated from
    the lineages frame: spent = Σ tokens/FLOPs trained over branches; naive = Σ over every
    (setting, seed, horizon) answered of horizon × tokens per step (FLOPs ≈ 6·N per token)."""
    out: dict[str, tuple[float, float]] = {}
    if plan:
        for key, name in (("tokens", "tokens"), ("flops", "FLOPs")):
            spent, naive = plan.get(f"planned_{key}"), plan.get(f"naive_{key}")
            if spent and naive:
                out[name] = (float(spent), float(naive))
        if out:
            return out
    if lineages is None or not {"horizons", "tokens_per_step", "tokens_trained"} <= set(
        lineages.columns
    ):
        return out
    horizon_sum = lineages["horizons"].map(
        lambda h: float(np.sum(h)) if h is not None and len(h) else 0.0
    )
    naive_tokens = float((horizon_sum * lineages["tokens_per_step"]).sum())
    spent_tokens = float(lineages["tokens_trained"].sum())
    if naive_tokens > 0 and spent_tokens > 0:
        out["tokens"] = (spent_tokens, naive_tokens)
        if "flops_trained" in lineages.columns and "n_params" in lineages.columns:
            naive_flops = float(
                (6.0 * horizon_sum * lineages["tokens_per_step"] * lineages["n_params"]).sum()
            )
            spent_flops = float(lineages["flops_trained"].sum())
            if naive_flops > 0 and spent_flops > 0:
                out["FLOPs"] = (spent_flops, naive_flops)
    return out


def _amount(value: float, name: str) -> str:
    """``11.5M tokens``, ``6.89T FLOPs``: a bar's label in readable units."""
    return f"{si(value)} {name}"


def compute_figure(plan: dict | None, lineages: pd.DataFrame | None = None) -> go.Figure:
    """Bars of spent and naive compute, as % of naive, with the absolute values as labels; with
    ``plan["search_tokens"]`` (a sweep with a search) a third bar adds the tokens the search's
    trials trained to the plan's."""
    totals = compute_totals(plan, lineages)
    if not totals:
        raise FigureUnavailable("no plan and no token accounting in the lineages frame")
    names = list(totals)
    spent = [totals[n][0] for n in names]
    naive = [totals[n][1] for n in names]
    searched = float((plan or {}).get("search_tokens") or 0.0)
    fig = go.Figure(
        [
            go.Bar(
                x=names,
                y=[100.0] * len(names),
                name="naive (one run per setting and horizon)",
                marker_color="#bbbbbb",
                text=[_amount(v, n) for v, n in zip(naive, names, strict=True)],
                textposition="outside",
            ),
            go.Bar(
                x=names,
                y=[100.0 * s / n for s, n in zip(spent, naive, strict=True)],
                name="this sweep's plan",
                marker_color="#1f77b4",
                text=[
                    f"{_amount(s, name)} ({100 * s / n:.0f}%)"
                    for s, n, name in zip(spent, naive, names, strict=True)
                ],
                textposition="outside",
            ),
        ]
    )
    top = 120.0
    if searched > 0 and "tokens" in totals:
        grid, nv = totals["tokens"]
        share = 100.0 * (grid + searched) / nv
        fig.add_trace(
            go.Bar(
                x=["tokens"],
                y=[share],
                name="plan + the search's trials",
                marker_color="#ff7f0e",
                text=[f"{_amount(grid + searched, 'tokens')} ({share:.0f}%; search {si(searched)})"],
                textposition="outside",
            )
        )
        top = max(top, 1.2 * share)
    fig.update_layout(
        barmode="group",
        yaxis_title="% of the naive grid",
        template="plotly_white",
        yaxis_range=[0, top],
    )
    note = throughput_sentence(lineages)
    if note:  # the panel's caption gains it (analysis/report.py reads layout.meta["note"])
        fig.update_layout(meta={"note": note})
    return fig
