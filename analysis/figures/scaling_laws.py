"""Scaling-law figures: the data law L(D) per (family, weights, model size) with a bootstrap
band and extrapolation, and the Chinchilla law L(N, D) per family when there are ≥ 2 sizes.

Points are each group's *envelope*: the best mean loss at each horizon over the group's other
settings (peak LR, …), i.e. the loss of a schedule re-tuned for every horizon (docs/equations.md
§8.3: fit end-points, never a single run's intermediate points).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.anytime import best_per_family
from analysis.figures._common import (
    SCOPE,
    FigureUnavailable,
    add_selector,
    family_color,
    horizon_axis,
    horizon_text,
    readable_log_axis,
    scope_label,
    si,
    weights_dash,
    weights_marker,
)
from analysis.fit_checks import FitRefused
from analysis.scaling import fit_chinchilla, fit_data_law
from analysis.units import short_numbers

__all__ = ["EXTRAPOLATE", "MAX_LAW_FITS", "chinchilla_figure", "data_law_figure"]

log = logging.getLogger(__name__)

EXTRAPOLATE = 4.0  # curves run to 4× the longest horizon (and, for Chinchilla, the largest N)
MAX_LAW_FITS = 20  # data-law fits drawn: each (scope, family)'s best weights first
MAX_CHINCHILLA_FAMILIES = 6


def _envelope(table: pd.DataFrame, keys: list[str], xcol: str) -> pd.DataFrame:
    rows = table.loc[np.isfinite(table["loss"])]
    rows = rows.sort_values([*keys, "horizon", "loss", "candidate"], kind="stable")
    return (
        rows.groupby([*keys, "horizon"], sort=True, dropna=False)
        .head(1)
        .assign(x=lambda f: f[xcol])
    )


def _fit_note(what: str, err: Exception) -> str:
    reason = str(err).split(": ", 1)[-1] if isinstance(err, FitRefused) else str(err)
    return f"{what}: {'refused' if isinstance(err, FitRefused) else 'fit failed'} ({reason})"


def _band_traces(fig, grid, band, color, name, group) -> None:
    lo, hi = band
    fig.add_trace(
        go.Scatter(x=grid, y=lo, mode="lines", line={"width": 0}, showlegend=False,
                   legendgroup=group, hoverinfo="skip")
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=grid, y=hi, mode="lines", line={"width": 0}, fill="tonexty",
            fillcolor=_alpha(color, 0.18), name=name, legendgroup=group, hoverinfo="skip",
        )
    )  # fmt: skip


def data_law_figure(
    table: pd.DataFrame,
    *,
    n_bootstrap: int = 50,
    seed: int = 0,
    level: float = 0.95,
    max_fits: int = MAX_LAW_FITS,
) -> go.Figure:
    """``L(D) = E + B·D^−beta`` fitted per (scope, family, weights) on the envelope (the best
    loss at each horizon over the group's other settings), colour = family, marker = weights.

    Honesty rules: a group with fewer than 4 horizons (3 parameters + 1) is refused; the
    extrapolation to :data:`EXTRAPOLATE`× the longest horizon is drawn only with a ``level``
    bootstrap band (refits on horizons resampled with replacement) and only for a fit with no
    parameter on a bound (``E ≈ 0`` …); the caption's note lists what was refused or flagged.
    """
    xcol, xtitle = horizon_axis(table)
    env = _envelope(table, [*SCOPE, "family", "weights"], xcol)
    counts = env.groupby([*SCOPE, "family", "weights"], dropna=False)["horizon"].nunique()
    most = int(counts.max()) if len(counts) else 0
    fit_keys = [k for k, n in counts.items() if n >= 4]
    if not fit_keys:
        raise FigureUnavailable(
            "a data-law fit L(D) = E + B/D^beta has 3 parameters and needs ≥ 4 horizons with a "
            f"finite loss (3 + 1); no (family, weights) has more than {most}"
        )
    # Within the cap, every (scope, family) first gets its best weights variant.
    best = {
        tuple(r[:-1]): r[-1]
        for r in best_per_family(table)[[*SCOPE, "family", "weights"]].itertuples(index=False)
    }
    fit_keys.sort(key=lambda k: (best.get(tuple(k[:-1])) != k[-1], k))
    skipped = len(fit_keys) - max_fits
    fit_keys = sorted(fit_keys[:max_fits])
    many_scopes = table[SCOPE].drop_duplicates().shape[0] > 1
    fig, groups, notes = go.Figure(), [], []
    for key in fit_keys:
        *scope, family, weights = key
        pts = env.loc[
            (env[[*SCOPE, "family", "weights"]].astype(str) == [str(k) for k in key]).all(axis=1)
        ]
        D, L = pts["x"].to_numpy(float), pts["loss"].to_numpy(float)
        try:
            fit = fit_data_law(D, L, bootstrap=n_bootstrap, seed=seed, ci_level=level)
        except ValueError as err:
            notes.append(_fit_note(f"{family}/{short_numbers(weights)}", err))
            continue
        color = family_color(family)
        group = (f"{scope_label(scope)} · " if many_scopes else "") + family
        band = fit.band(np.geomspace(D.min(), D.max() * EXTRAPOLATE, 80), level)
        extrapolate = band is not None and not fit.flags
        grid = np.geomspace(D.min(), D.max() * (EXTRAPOLATE if extrapolate else 1.0), 80)
        inside = grid <= D.max() * (1 + 1e-9)
        n_traces = len(fig.data)
        if extrapolate:
            _band_traces(
                fig, grid, fit.band(grid, level), color,
                f"{short_numbers(weights)}: {level:.0%} bootstrap band ({fit.n_bootstrap} refits)", weights,
            )  # fmt: skip
        elif fit.flags:
            notes.append(f"{family}/{short_numbers(weights)}: flagged, not extrapolated — {fit.flags[0]}")
        else:
            notes.append(f"{family}/{short_numbers(weights)}: no bootstrap band, not extrapolated")
        flag = " [flagged: parameter on a bound]" if fit.flags else ""
        fig.add_trace(
            go.Scatter(
                x=grid[inside], y=fit.predict(grid[inside]), mode="lines",
                name=f"{short_numbers(weights)}: L = {fit.E:.3g} + {fit.B:.3g}·D^−{fit.beta:.3g}{flag}",
                legendgroup=weights, line={"color": color, "dash": weights_dash(weights)},
            )
        )  # fmt: skip
        if extrapolate:
            fig.add_trace(
                go.Scatter(
                    x=grid[~inside], y=fit.predict(grid[~inside]), mode="lines",
                    name=f"{short_numbers(weights)}: extrapolated to {EXTRAPOLATE:g}×", legendgroup=weights,
                    line={"color": color, "dash": "dot", "width": 1.5},
                )
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=D, y=L, mode="markers", name=f"{short_numbers(weights)}: measured (best per horizon)",
                legendgroup=weights,
                marker={"color": color, "size": 9, "symbol": weights_marker(weights)},
                customdata=np.column_stack([horizon_text(pts, table), pts["candidate"]]),
                hovertemplate="%{customdata[0]}<br>loss %{y:.4f}<br>%{customdata[1]}<extra></extra>",
            )
        )  # fmt: skip
        groups += [group] * (len(fig.data) - n_traces)
    if not fig.data:
        raise FigureUnavailable("every data-law fit was refused or failed: " + "; ".join(notes))
    if skipped > 0:
        notes.append(f"{skipped} further (family, weights) groups not drawn (cap {max_fits})")
    readable_log_axis(fig, "xaxis", [*env["x"].tolist(), float(env["x"].max()) * EXTRAPOLATE])
    fig.update_layout(
        yaxis_type="log", xaxis_title=xtitle, yaxis_title="final eval loss",
        template="plotly_white", meta={"note": "; ".join(notes)},
    )  # fmt: skip
    return add_selector(fig, groups, label="family")


def _shade(hex_color: str, t: float) -> str:
    """``hex_color`` mixed with white by ``t`` ∈ [0, 1) (0: itself) — model sizes of one family."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    mix = [round(c + (255 - c) * t) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def chinchilla_figure(table: pd.DataFrame, *, bootstrap: int = 20, seed: int = 0) -> go.Figure:
    """``L(N, D) = E + A/N^alpha + B/D^beta`` per family on the envelope over weights and
    settings, needing ≥ 2 model sizes with known ``n_params``, tokens, and ≥ 6 points (5
    parameters + 1); one curve per size (the family's colour, lighter for smaller models).
    Curves for a model :data:`EXTRAPOLATE`× the largest and to :data:`EXTRAPOLATE`× the longest
    horizon are drawn only with a bootstrap band and only for an unflagged fit."""
    if table["n_params"].nunique(dropna=True) < 2:
        raise FigureUnavailable("a Chinchilla fit needs at least 2 model sizes with known n_params")
    xcol, _ = horizon_axis(table)
    if xcol != "tokens":
        raise FigureUnavailable("a Chinchilla fit needs tokens per step for every horizon")
    env = _envelope(table, [*SCOPE, "family"], "tokens")
    sizes = sorted(env["n_params"].dropna().unique())
    fig, groups, notes = go.Figure(), [], []
    families = sorted(env["family"].unique())
    for family in families[:MAX_CHINCHILLA_FAMILIES]:
        pts = env.loc[(env["family"] == family) & env["n_params"].notna()]
        if pts["n_params"].nunique() < 2:
            notes.append(f"{family}: one model size only")
            continue
        N, D, L = (pts[c].to_numpy(float) for c in ("n_params", "tokens", "loss"))
        try:
            fit = fit_chinchilla(N, D, L, bootstrap=bootstrap, seed=seed)
        except ValueError as err:
            notes.append(_fit_note(family, err))
            continue
        ci = fit.ci
        tag = (
            f"α={fit.alpha:.3g} [{ci['alpha'][0]:.3g}, {ci['alpha'][1]:.3g}], "
            f"β={fit.beta:.3g} [{ci['beta'][0]:.3g}, {ci['beta'][1]:.3g}]"
            if ci
            else f"α={fit.alpha:.3g}, β={fit.beta:.3g}"
        )
        extrapolate = len(fit.replicates) >= 10 and not fit.flags
        if fit.flags:
            notes.append(f"{family}: flagged, not extrapolated — {fit.flags[0]}")
        grid = np.geomspace(D.min(), D.max() * (EXTRAPOLATE if extrapolate else 1.0), 60)
        base = family_color(family)
        targets = [*sizes, sizes[-1] * EXTRAPOLATE] if extrapolate else list(sizes)
        for i, n in enumerate(targets):
            extrap = i == len(sizes)
            color = "#444444" if extrap else _shade(base, 0.6 * (1 - i / max(len(sizes) - 1, 1)))
            n_traces = len(fig.data)
            if extrap:
                _band_traces(fig, grid, fit.band(np.full_like(grid, n), grid), base,
                             f"{family} N={si(n)}: 95% bootstrap band", f"{n}")  # fmt: skip
            fig.add_trace(
                go.Scatter(
                    x=grid, y=fit.predict(np.full_like(grid, n), grid), mode="lines",
                    name=f"{family} N={si(n)}{' (extrapolated)' if extrap else ''}: {tag}",
                    line={"color": color, "dash": "dot" if extrap else "solid"},
                    legendgroup=f"{n}",
                )
            )  # fmt: skip
            at = pts.loc[pts["n_params"] == n]
            if len(at):
                fig.add_trace(
                    go.Scatter(
                        x=at["tokens"], y=at["loss"], mode="markers",
                        name=f"measured N={si(n)}", legendgroup=f"{n}",
                        marker={"color": color, "size": 8, "line": {"color": base, "width": 1}},
                        customdata=np.column_stack([horizon_text(at, table), at["candidate"]]),
                        hovertemplate="%{customdata[0]}<br>loss %{y:.4f}<br>%{customdata[1]}"
                        "<extra></extra>",
                    )
                )  # fmt: skip
            groups += [family] * (len(fig.data) - n_traces)
    if not fig.data:
        raise FigureUnavailable("no family could be fitted: " + "; ".join(notes))
    readable_log_axis(
        fig, "xaxis", [*env["tokens"].tolist(), float(env["tokens"].max()) * EXTRAPOLATE]
    )
    fig.update_layout(
        yaxis_type="log", xaxis_title="training tokens D", yaxis_title="final eval loss",
        template="plotly_white", meta={"note": "; ".join(notes)},
    )  # fmt: skip
    return add_selector(fig, groups, label="family")


def _alpha(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
