"""Loss-curve-law figure: the multi-power law (Luo et al. 2025; docs/equations.md §7.2) fitted on the
*eval* losses of some schedules with their exact per-step LR, chosen among its multi-start
optima and its authors' regularised fit by leave-one-schedule-out error — or, with fewer than
three fitted schedules, where that cannot discriminate, the regularised fit — (the rule of
:mod:`analysis.curve_validation`), and used to predict a held-out schedule from its LR sequence
alone — the prediction drawn over the measured points.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.curve_validation import (
    MULTI_START,
    REGULARISED,
    CurveLawSelection,
    select_curve_law,
)
from analysis.figures._common import (
    FigureUnavailable,
    family_color,
    scope_label,
    step_text,
)
from analysis.fit_checks import FitRefused
from analysis.horizons import SCOPE
from analysis.law_curves import EVAL_OFFSET, CurveIndex, as_index, curve_catalog, law_curves

__all__ = ["FIT_PREFERENCE", "MAX_HELD_OUT", "curve_law_figure", "curve_law_selection"]

FIT_PREFERENCE = ("constant", "cosine")  # fitted on when present (Luo et al. fit on these)
MAX_HELD_OUT = 4
_DENSE = 200  # points per drawn law line


def _pick(catalog: pd.DataFrame) -> pd.DataFrame:
    """The curves of one (scope, peak LR, first seed) with ≥ 2 scheduled family members: the
    first scope (sorted) that has them, its most common peak LR (ties: the smaller)."""
    for _scope, rows in catalog.groupby(SCOPE, sort=True, dropna=False):
        if rows["member"].nunique() < 2:
            continue
        counts = rows.groupby("peak_lr")["member"].nunique()
        lr = float(counts.loc[counts == counts.max()].index.min())
        rows = rows.loc[rows["peak_lr"] == lr]
        return rows.loc[rows["seed"] == rows["seed"].min()]
    raise FigureUnavailable("needs eval curves of ≥ 2 scheduled family members at one peak LR")


def curve_law_selection(
    final_losses: pd.DataFrame,
    curves: pd.DataFrame | CurveIndex,
    lineages: pd.DataFrame | None = None,
    lr_sequences: Mapping[tuple, np.ndarray] | None = None,
) -> tuple[
    CurveLawSelection, CurveLawSelection | None, dict[str, list[dict]], list[str], list[str]
]:
    """The multi-power-law selection the figure draws.

    Training schedules: the :data:`FIT_PREFERENCE` members first, then the others (sorted), up
    to three and always leaving one out (two with three members); the rest (at most
    :data:`MAX_HELD_OUT`) are held out.

    Returns:
        (multi-power selection, LR-annealing selection (None if refused), ``{member: [law
        curve, …]}``, training members, held-out members).
    """
    index = as_index(curves, lineages)
    picked = _pick(curve_catalog(final_losses, index.keys))
    found, skipped = law_curves(picked, index, lineages, lr_sequences)
    by_member: dict[str, list[dict]] = {}
    for c in found:
        by_member.setdefault(c["member"], []).append(c)
    members = sorted(by_member)
    if len(members) < 2:
        why = "; ".join(skipped[:3]) or "too few eval points"
        raise FigureUnavailable(f"needs ≥ 2 scheduled members with usable eval curves ({why})")
    # Fit on the preferred members, topped up to 3 schedules (two leave the decay term weakly
    # determined; see benchmarks/curve_law.py), always holding at least one member out.
    preferred = [m for m in members if by_member[m][0]["family"] in FIT_PREFERENCE]
    ordered = preferred + [m for m in members if m not in preferred]
    n_train = max(2, min(3, len(members) - 1))
    train = ordered[:n_train]
    held = [m for m in members if m not in train][:MAX_HELD_OUT]
    as_law = {m: [(c["lr"], c["steps"], c["losses"]) for c in by_member[m]] for m in members}
    try:
        with warnings.catch_warnings():
            # Overflow in far-off starts of the multi-start search is expected and harmless.
            warnings.simplefilter("ignore", RuntimeWarning)
            fit_on, held_out = {m: as_law[m] for m in train}, {m: as_law[m] for m in held}
            sel = select_curve_law(fit_on, held_out)
            try:
                ann = select_curve_law(fit_on, held_out, law="lr_annealing")
            except FitRefused:
                ann = None
    except FitRefused as err:
        raise FigureUnavailable(str(err)) from err
    return sel, ann, by_member, train, held


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.2g}%"


def _errors_text(e: Mapping[str, float]) -> str:
    return (
        f"mean |rel err| {_pct(e['mean_abs_rel_error'])}, at the horizon "
        f"{_pct(e['final_abs_rel_error'])}, in the decay {_pct(e['decay_mean_abs_rel_error'])}"
    )


def curve_law_figure(
    final_losses: pd.DataFrame,
    curves: pd.DataFrame | CurveIndex,
    lineages: pd.DataFrame | None = None,
    lr_sequences: Mapping[tuple, np.ndarray] | None = None,
) -> go.Figure:
    """Measured eval losses (markers) and the law (lines) per schedule, colour = family:
    training schedules with the chosen fit (solid) and their leave-one-schedule-out prediction
    (dashed, fitted without them); held-out schedules with the prediction from their LR
    sequence alone (thick dashed). The legend and the note give each schedule's error."""
    sel, ann, by_member, train, held = curve_law_selection(
        final_losses, curves, lineages, lr_sequences
    )
    loso = (
        sel.loso.loc[
            sel.loso["candidate"]
            == int(sel.candidates.loc[sel.candidates["chosen"], "candidate"].iloc[0])
        ]
        if len(sel.loso)
        else sel.loso
    )
    fig, notes = go.Figure(), []
    for member in [*train, *held]:
        color = family_color(by_member[member][0]["family"])
        role = "fitted" if member in train else "held out"
        if member in train:
            row = loso.loc[loso["schedule"] == member]
            err = row.iloc[0].to_dict() if len(row) else None
            fold = sel.fold_fits.get(member)
        else:
            err = sel.held_out.loc[sel.held_out["schedule"] == member].iloc[0].to_dict()
            fold = None
        for i, c in enumerate(by_member[member]):
            first = i == 0
            tps, n = float(c["tokens_per_step"]), float(c["n_params"])
            fig.add_trace(
                go.Scatter(
                    x=c["eval_steps"], y=c["losses"], mode="markers",
                    name=f"{member} measured eval loss ({role})", legendgroup=member,
                    showlegend=first, marker={"color": color, "size": 7, "symbol": "circle-open"},
                    customdata=step_text(c["eval_steps"], tps, n),
                    hovertemplate="%{customdata}<br>eval loss %{y:.4f}<extra>" + member + "</extra>",
                )
            )  # fmt: skip
            dense = np.unique(
                np.linspace(c["steps"].min(), c["steps"].max(), _DENSE).astype(np.int64)
            )
            x = dense + EVAL_OFFSET
            lines = []
            if member in train:
                lines.append((sel.fit, "solid", 1.5, "law (chosen fit)"))
                if fold is not None:
                    lines.append((fold, "dash", 2.5, "predicted without it (LOSO)"))
            else:
                lines.append((sel.fit, "dash", 3.0, "predicted from its LR alone"))
                if ann is not None:
                    lines.append((ann.fit, "dot", 2.0, "LR-annealing law, predicted"))
            for law, dash, width, what in lines:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    pred = law.predict(c["lr"], dense)
                label = f"{member}: {what}"
                shown = err
                if law is not sel.fit and ann is not None and law is ann.fit:
                    shown = ann.held_out.loc[ann.held_out["schedule"] == member].iloc[0].to_dict()
                if shown is not None and what != "law (chosen fit)":
                    label += f" — {_errors_text(shown)}"
                fig.add_trace(
                    go.Scatter(
                        x=x, y=pred, mode="lines", name=label, legendgroup=member,
                        showlegend=first, line={"color": color, "dash": dash, "width": width},
                        customdata=step_text(x, tps, n),
                        hovertemplate="%{customdata}<br>" + what + " %{y:.4f}<extra>" + member + "</extra>",
                    )
                )  # fmt: skip
        if err is not None:
            notes.append(
                f"{member} ({'LOSO' if member in train else 'held out'}): {_errors_text(err)}"
            )
    cands = sel.candidates
    best_obj = cands.sort_values("objective").iloc[0]
    chosen = cands.loc[cands["chosen"]].iloc[0]
    first = by_member[train[0]][0]
    n_ms = int((cands["method"] == MULTI_START).sum())
    pool = f"{n_ms} multi-start optim{'um' if n_ms == 1 else 'a'}" + (
        " and the law authors' regularised fit" if (cands["method"] == REGULARISED).any() else ""
    )
    why = (
        f"chosen by leave-one-schedule-out error {_pct(chosen['loso_error'])} among {pool}: "
        + ("the regularised fit" if chosen["method"] == REGULARISED else "a multi-start optimum")
        + (
            f" (the lowest training objective's would be {_pct(best_obj['loso_error'])})"
            if best_obj["candidate"] != chosen["candidate"]
            else ", also the lowest training objective"
        )
        if not sel.note
        else f"candidates: {pool}; {sel.note}"
    )
    losses = np.concatenate([c["losses"] for m in by_member for c in by_member[m]])
    lo, hi = float(losses.min()), float(np.percentile(losses, 90))
    fig.update_yaxes(range=[lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)])
    fig.update_layout(
        xaxis_title="step", xaxis_tickformat="~s", yaxis_title="eval loss (raw weights)",
        template="plotly_white",
        meta={
            "note": f"{scope_label([first[c] for c in SCOPE])}, peak LR {first['peak_lr']:g}, "
            f"seed {first['seed']}; fitted on the eval losses of {', '.join(train)} with the exact "
            f"per-step LR; {why}; fit {sel.seconds:.2f} s; " + "; ".join(notes)
            + (
                "; LR-annealing law (Tissue et al. 2024, dotted), held out: "
                + "; ".join(
                    f"{r['schedule']}: {_errors_text(r)}" for r in ann.held_out.to_dict("records")
                )
                if ann is not None and len(ann.held_out)
                else ""
            )
        },
    )  # fmt: skip
    return fig
