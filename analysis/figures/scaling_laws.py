"""Scaling-law figures: the data law L(D) per (family, weights, model size) with a bootstrap
band and extrapolation, and the Chinchilla law L(N, D) per family when there are ≥ 2 sizes.

Points are each group's *envelope*: the best mean loss at each horizon over the group's other
settings (peak LR, …), i.e. the loss of a schedule re-tuned for every horizon (ALGORITHMS-NOTES
§8.3: fit end-points, never a single run's intermediate points).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures._common import (
    SCOPE,
    FigureUnavailable,
    add_selector,
    family_color,
    horizon_axis,
    scope_label,
)
from analysis.horizons import anytime_optimal

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


def _refit(start: np.ndarray, D: np.ndarray, y: np.ndarray, delta: float) -> np.ndarray | None:
    """(log E, log B, beta) minimising Σ Huber_δ(log y − log(E + B·D^−beta)) from ``start``.

    The data law's own objective (ALGORITHMS-NOTES §8.3), warm-started at the point estimate as
    bootstrap refits are (``analysis.scaling`` does the same for its parameter intervals); a
    full multi-start fit per replicate costs up to 0.1 s on flat data, this ~1 ms.
    """
    from scipy.optimize import least_squares

    log_d, log_y = np.log(D), np.log(y)

    def resid(th: np.ndarray) -> np.ndarray:
        return np.logaddexp(th[0], th[1] - th[2] * log_d) - log_y

    def jac(th: np.ndarray) -> np.ndarray:
        p_e = 1.0 / (1.0 + np.exp(th[1] - th[2] * log_d - th[0]))  # share of E in the prediction
        return np.column_stack([p_e, 1.0 - p_e, -(1.0 - p_e) * log_d])

    hi_e = float(log_y.min())
    x0 = np.array([min(start[0], hi_e - 1e-9), start[1], max(start[2], 0.0)])
    try:
        out = least_squares(
            resid,
            x0,
            jac=jac,
            loss="huber",
            f_scale=delta,
            method="trf",
            bounds=([-np.inf, -np.inf, 0.0], [hi_e, np.inf, np.inf]),
            max_nfev=200,
        )
    except ValueError:
        return None
    return out.x if out.success or out.status == 0 else None


def _band(
    fit,
    D: np.ndarray,
    L: np.ndarray,
    se: np.ndarray,
    grid: np.ndarray,
    n_bootstrap: int,
    seed: int,
    level: float,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Percentile band of the prediction on ``grid`` over bootstrap refits.

    Each replicate resamples the horizons with replacement (when there are ≥ 4; a replicate with
    fewer than 3 distinct horizons cannot identify 3 parameters and is skipped) and redraws each
    point from N(mean, stderr²) — the seed noise, which is all a 3-horizon fit can show. The
    prediction is computed per replicate (ALGORITHMS-NOTES §8.4).
    """
    rng = np.random.default_rng(seed)
    se = np.nan_to_num(se, nan=0.0)
    if len(D) < 4 and not (se > 0).any():
        return None
    start = np.array([np.log(fit.E), np.log(fit.B), fit.beta])
    log_grid = np.log(grid)
    preds = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(D), size=len(D)) if len(D) >= 4 else np.arange(len(D))
        if len(np.unique(idx)) < 3:
            continue
        y = L[idx] + rng.normal(0.0, 1.0, size=len(idx)) * se[idx]
        if (y <= 0).any():
            continue
        th = _refit(start, D[idx], y, fit.delta)
        if th is not None:
            preds.append(np.exp(np.logaddexp(th[0], th[1] - th[2] * log_grid)))
    if len(preds) < 10:
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(np.vstack(preds), [tail, 100.0 - tail], axis=0)
    return lo, hi, len(preds)


def data_law_figure(
    table: pd.DataFrame,
    *,
    n_bootstrap: int = 50,
    seed: int = 0,
    level: float = 0.95,
    max_fits: int = MAX_LAW_FITS,
) -> go.Figure:
    """``L(D) = E + B·D^−beta`` fitted per (scope, family, weights) on the envelope, drawn to
    :data:`EXTRAPOLATE`× the longest horizon (dashed beyond the data) with a ``level`` bootstrap
    band; a dropdown picks the family (and scope)."""
    try:
        from analysis.scaling import fit_data_law
    except ImportError as err:  # the scaling module is written separately
        raise FigureUnavailable(f"analysis.scaling is not available ({err})") from err
    xcol, xtitle = horizon_axis(table)
    env = _envelope(table, [*SCOPE, "family", "weights"], xcol)
    counts = env.groupby([*SCOPE, "family", "weights"], dropna=False)["horizon"].nunique()
    fit_keys = [k for k, n in counts.items() if n >= 3]
    if not fit_keys:
        raise FigureUnavailable(
            "a data-law fit needs ≥ 3 horizons with a finite loss in one group; none has"
        )
    # Within the cap, every (scope, family) first gets its anytime-best weights variant.
    best = {
        tuple(r[:-1]): r[-1]
        for r in anytime_optimal(table, by="family")[[*SCOPE, "family", "weights"]].itertuples(
            index=False
        )
    }
    fit_keys.sort(key=lambda k: (best.get(tuple(k[:-1])) != k[-1], k))
    skipped = len(fit_keys) - max_fits
    fit_keys = sorted(fit_keys[:max_fits])
    many_scopes = table[SCOPE].drop_duplicates().shape[0] > 1
    weights_all = sorted(table["weights"].unique())
    fig, groups, notes = go.Figure(), [], []
    for key in fit_keys:
        *scope, family, weights = key
        pts = env.loc[
            (env[[*SCOPE, "family", "weights"]].astype(str) == [str(k) for k in key]).all(axis=1)
        ]
        D, L = pts["x"].to_numpy(float), pts["loss"].to_numpy(float)
        try:
            fit = fit_data_law(D, L)
        except ValueError as err:
            notes.append(f"{family}/{weights}: fit failed ({err})")
            continue
        grid = np.geomspace(D.min(), D.max() * EXTRAPOLATE, 80)
        inside = grid <= D.max() * (1 + 1e-9)
        group = (f"{scope_label(scope)} · " if many_scopes else "") + family
        color = family_color(weights, weights_all)
        band = _band(fit, D, L, pts["stderr"].to_numpy(float), grid, n_bootstrap, seed, level)
        if band is not None:
            lo, hi, n_ok = band
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=lo,
                    mode="lines",
                    line={"width": 0},
                    showlegend=False,
                    legendgroup=weights,
                    hoverinfo="skip",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=hi,
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=_alpha(color, 0.18),
                    name=f"{weights}: {level:.0%} bootstrap band ({n_ok} refits)",
                    legendgroup=weights,
                    hoverinfo="skip",
                )
            )
            groups += [group, group]
        else:
            notes.append(f"{family}/{weights}: no band (3 horizons and one seed)")
        label = f"{weights}: L = {fit.E:.3g} + {fit.B:.3g}·D^−{fit.beta:.3g}"
        fig.add_trace(
            go.Scatter(
                x=grid[inside],
                y=fit.predict(grid[inside]),
                mode="lines",
                name=label,
                legendgroup=weights,
                line={"color": color},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=grid[~inside],
                y=fit.predict(grid[~inside]),
                mode="lines",
                name=f"{weights}: extrapolated",
                legendgroup=weights,
                line={"color": color, "dash": "dash"},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=D,
                y=L,
                mode="markers",
                name=f"{weights}: measured (best per horizon)",
                legendgroup=weights,
                marker={"color": color, "size": 8},
                text=pts["candidate"],
                hovertemplate="%{x:.3g}: %{y:.4f}<br>%{text}<extra></extra>",
            )
        )
        groups += [group, group, group]
    if not fig.data:
        raise FigureUnavailable("every data-law fit failed: " + "; ".join(notes))
    if skipped > 0:
        notes.append(f"{skipped} further (family, weights) groups not drawn (cap {max_fits})")
    fig.update_layout(
        xaxis_type="log",
        yaxis_type="log",
        xaxis_title=xtitle,
        yaxis_title="final eval loss",
        template="plotly_white",
        meta={"note": "; ".join(notes)},
    )
    return add_selector(fig, groups, label="family")


def chinchilla_figure(table: pd.DataFrame, *, bootstrap: int = 20, seed: int = 0) -> go.Figure:
    """``L(N, D) = E + A/N^alpha + B/D^beta`` per family on the envelope over weights and
    settings, needing ≥ 2 model sizes with known ``n_params`` and tokens; drawn per size and for
    a model :data:`EXTRAPOLATE`× the largest, to :data:`EXTRAPOLATE`× the longest horizon.
    Bootstrap intervals of alpha and beta are in the legend."""
    if table["n_params"].nunique(dropna=True) < 2:
        raise FigureUnavailable("a Chinchilla fit needs at least 2 model sizes with known n_params")
    xcol, _ = horizon_axis(table)
    if xcol != "tokens":
        raise FigureUnavailable("a Chinchilla fit needs tokens per step for every horizon")
    try:
        from analysis.scaling import fit_chinchilla
    except ImportError as err:
        raise FigureUnavailable(f"analysis.scaling is not available ({err})") from err
    env = _envelope(table, [*SCOPE, "family"], "tokens")
    sizes = sorted(env["n_params"].dropna().unique())
    fig, groups, notes = go.Figure(), [], []
    families = sorted(env["family"].unique())
    for family in families[:MAX_CHINCHILLA_FAMILIES]:
        pts = env.loc[(env["family"] == family) & env["n_params"].notna()]
        if pts["n_params"].nunique() < 2 or len(pts) < 5:
            notes.append(f"{family}: too few sizes or points for a Chinchilla fit")
            continue
        N, D, L = (pts[c].to_numpy(float) for c in ("n_params", "tokens", "loss"))
        try:
            fit = fit_chinchilla(N, D, L, bootstrap=bootstrap, seed=seed)
        except ValueError as err:
            notes.append(f"{family}: fit failed ({err})")
            continue
        ci = fit.ci
        tag = (
            f"α={fit.alpha:.3g} [{ci['alpha'][0]:.3g}, {ci['alpha'][1]:.3g}], "
            f"β={fit.beta:.3g} [{ci['beta'][0]:.3g}, {ci['beta'][1]:.3g}]"
            if ci
            else f"α={fit.alpha:.3g}, β={fit.beta:.3g}"
        )
        grid = np.geomspace(D.min(), D.max() * EXTRAPOLATE, 60)
        for i, n in enumerate([*sizes, sizes[-1] * EXTRAPOLATE]):
            extrap = i == len(sizes)
            color = "#444444" if extrap else family_color(str(n), [str(s) for s in sizes])
            at = pts.loc[pts["n_params"] == n]
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=fit.predict(np.full_like(grid, n), grid),
                    mode="lines",
                    name=f"{family} N={n:.3g}{' (extrapolated)' if extrap else ''}: {tag}",
                    line={"color": color, "dash": "dot" if extrap else "solid"},
                    legendgroup=f"{n}",
                )
            )
            groups.append(family)
            if len(at):
                fig.add_trace(
                    go.Scatter(
                        x=at["tokens"],
                        y=at["loss"],
                        mode="markers",
                        name=f"measured N={n:.3g}",
                        marker={"color": color, "size": 8},
                        legendgroup=f"{n}",
                        text=at["candidate"],
                        hovertemplate="%{x:.3g}: %{y:.4f}<br>%{text}<extra></extra>",
                    )
                )
                groups.append(family)
    if not fig.data:
        raise FigureUnavailable(
            "no family has enough points for a Chinchilla fit: " + "; ".join(notes)
        )
    fig.update_layout(
        xaxis_type="log",
        yaxis_type="log",
        xaxis_title="training tokens D",
        yaxis_title="final eval loss",
        template="plotly_white",
        meta={"note": "; ".join(notes)},
    )
    return add_selector(fig, groups, label="family")


def _alpha(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
