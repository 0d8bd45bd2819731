"""Loss-curve-law figure: fit the multi-power law on some schedules' train curves and predict
another schedule's curve from its LR sequence alone (Luo et al. 2025; ALGORITHMS.md §4)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures._common import (
    MAX_POINTS_PER_TRACE,
    SCOPE,
    FigureUnavailable,
    downsample,
    family_color,
    scope_label,
)
from analysis.tables import (
    ResultsFrameError,
    train_curve_validated,
    validate_curves,
    validate_lineages,
)

__all__ = ["FIT_PREFERENCE", "MAX_HELD_OUT", "curve_law_figure", "pick_curves"]

FIT_PREFERENCE = ("constant", "cosine")  # fitted on first when present (Luo et al. fit on these)
MAX_HELD_OUT = 4


def pick_curves(
    lineages: pd.DataFrame, curves: pd.DataFrame
) -> tuple[tuple, float, list[tuple[str, pd.Series, pd.DataFrame]]]:
    """One full-length train curve per scheduled family, at a common peak LR and the first seed.

    Scope: the first (sorted) with ≥ 2 scheduled families; peak LR: the most common one there
    (ties: the smaller); per family the longest lineage/branch (a WSD cooldown branch with the
    trunk's rows before its fork). Schedule-free families (no ``schedule``) are left out: their
    LR sequence is not what drives their loss.

    Returns:
        (scope, peak_lr, [(family, lineage row, step/lr/loss frame), ...]) sorted by family.
    """
    sched = lineages.loc[
        lineages["schedule"].astype(str).ne("") & lineages["status"].astype(str).ne("failed")
    ]
    trained = curves.loc[curves["split"] == "train", ["lineage_id", "branch"]].drop_duplicates()
    sched = sched.merge(trained, on=["lineage_id", "branch"])
    for scope, rows in sched.groupby(SCOPE, sort=True, dropna=False):
        if rows["family"].nunique() < 2:
            continue
        counts = rows.groupby("peak_lr")["family"].nunique()
        lr = float(counts.loc[counts == counts.max()].index.min())
        rows = rows.loc[rows["peak_lr"] == lr]
        rows = rows.loc[rows["seed"] == rows["seed"].min()]
        picked = []
        for family, fr in rows.groupby("family", sort=True):
            fr = fr.loc[fr["branch"] != "trunk"].sort_values(
                ["max_step", "lineage_id", "branch"], kind="stable"
            )
            if fr.empty:
                continue
            lin = fr.iloc[-1]
            try:
                curve = train_curve_validated(curves, lin["lineage_id"], lin["branch"], lineages)
            except ResultsFrameError:
                continue
            curve = curve.loc[
                curve["lr"].notna() & np.isfinite(curve["loss"]) & (curve["loss"] > 0)
            ]
            if len(curve) >= 5:
                picked.append((family, lin, curve))
        if len(picked) >= 2:
            return tuple(scope), lr, picked
    raise FigureUnavailable("needs train curves (with LR) of ≥ 2 scheduled families at one peak LR")


def _as_law_curve(curve: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lr of every update from step 0, logged steps, losses): logged LRs interpolated between
    logged steps when train rows are sub-sampled."""
    steps = curve["step"].to_numpy(np.int64)
    lr_seq = np.interp(np.arange(steps.max() + 1), steps, curve["lr"].to_numpy(float))
    area = np.cumsum(lr_seq)[steps]
    keep = downsample(curve.loc[area > 0])
    return lr_seq, keep["step"].to_numpy(np.int64), keep["loss"].to_numpy(float)


def curve_law_figure(lineages: pd.DataFrame, curves: pd.DataFrame) -> go.Figure:
    """Measured train loss (solid) and the multi-power-law prediction (dashed) per schedule: fit
    on :data:`FIT_PREFERENCE` families (else the first one or two), the others held out and
    predicted from their LR sequence; the legend gives each curve's mean |relative error|."""
    try:
        from analysis.curves import fit_multi_power, prediction_error
    except ImportError as err:  # the curve-law module is written separately
        raise FigureUnavailable(f"analysis.curves is not available ({err})") from err
    scope, lr, picked = pick_curves(validate_lineages(lineages), validate_curves(curves))
    families = [f for f, _, _ in picked]
    ordered = [f for f in FIT_PREFERENCE if f in families] + [
        f for f in families if f not in FIT_PREFERENCE
    ]
    n_fit = 2 if len(ordered) >= 3 else 1
    fit_on, held = ordered[:n_fit], ordered[n_fit : n_fit + MAX_HELD_OUT]
    law = {f: _as_law_curve(c) for f, _, c in picked}
    try:
        with warnings.catch_warnings():
            # Overflow in far-off starts of the multi-start search is expected and harmless.
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = fit_multi_power([law[f] for f in fit_on])
    except ValueError as err:
        raise FigureUnavailable(f"the multi-power fit failed: {err}") from err
    fig, notes = go.Figure(), []
    for family in [*fit_on, *held]:
        lr_seq, steps, loss = law[family]
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", RuntimeWarning
            )  # log(0) of a zero final LR is fine there
            pred = fit.predict(lr_seq, steps)
        err = prediction_error(pred, loss)
        role = "fitted" if family in fit_on else "held out"
        color = family_color(family, families)
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=loss,
                mode="lines",
                name=f"{family} measured ({role})",
                legendgroup=family,
                opacity=0.55,
                line={"color": color, "width": 1},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=pred,
                mode="lines",
                legendgroup=family,
                line={"color": color, "dash": "dash", "width": 2},
                name=f"{family} predicted ({role}): mean |rel err| {err['mean_abs_rel_error']:.2%}",
            )
        )
        if family in held:
            notes.append(
                f"{family}: mean |rel err| {err['mean_abs_rel_error']:.2%}, "
                f"max {err['max_abs_rel_error']:.2%}"
            )
    # The first few percent of steps (loss falling from ~ln(vocab)) would flatten the part the
    # law is judged on: start the y range at the loss 5% into the longest curve.
    ys = np.concatenate([t.y for t in fig.data])
    top = max(float(np.interp(0.05 * law[f][1].max(), law[f][1], law[f][2])) for f in law)
    fig.update_yaxes(range=[float(ys.min()) - 0.02 * (top - ys.min()), top])
    where = scope_label(scope)
    fig.update_layout(
        xaxis_title="step",
        yaxis_title="train loss",
        template="plotly_white",
        meta={
            "note": f"{where}, peak LR {lr:g}, first seed; fitted on {', '.join(fit_on)}; "
            f"held-out prediction error: "
            + ("; ".join(notes) or "none held out")
            + f"; at most {MAX_POINTS_PER_TRACE} points per curve"
        },
    )
    return fig
