"""Where the optima sit on the sweep's grid: edge-of-grid warnings and the optimal-LR trend.

An optimum at the edge of a swept axis (the largest or smallest peak LR tried, the shortest
warmup, the longest EMA half-life, …) is not an optimum of the problem, only of the grid: the
true one may lie beyond. :func:`edge_warnings` finds them for the optima the report names and
says which axis to widen, and in which direction.

Axes are the numeric coordinates of a candidate that vary within its scope: ``peak_lr``,
``warmup``, ``batch_size``, every numeric key of ``optimizer_params`` and ``schedule_params``,
and the number of a weights label (``ema@0.1`` → axis ``ema@``). The values *tried* on an axis
are those of candidates equal to the optimum in every other coordinate (the grid line through
it), diverged ones included: an optimum just below an LR that diverged is not at the edge.

The optimal peak LR against the horizon (:func:`lr_trend`) is only fitted from horizons whose
optimum is *inside* the LR grid, and only with at least :data:`MIN_TREND_POINTS` of them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.horizons import SCOPE

__all__ = [
    "MIN_TREND_POINTS",
    "EdgeWarning",
    "LRSensitivity",
    "candidate_axes",
    "edge_sentences",
    "edge_warnings",
    "lr_sensitivity",
    "lr_trend",
]

MIN_TREND_POINTS = 3
_WEIGHTS = re.compile(r"^([A-Za-z_]+)@([0-9.eE+-]+)$")
_NUMERIC = ("peak_lr", "warmup", "batch_size")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None


def candidate_axes(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Every candidate's grid coordinates, and the names of the numeric axes that vary.

    Returns:
        (frame indexed like the unique (scope, candidate) rows with ``SCOPE``, ``candidate`` and
        one column per coordinate — numeric axes as floats, the rest as text —, the varying
        numeric axes in a stable order).
    """
    cands = table.drop_duplicates([*SCOPE, "candidate"]).reset_index(drop=True)
    coords = cands[[*SCOPE, "candidate"]].copy()
    for col in _NUMERIC:
        coords[col] = pd.to_numeric(cands[col], errors="coerce").astype(float)
    for col in ("family", "optimizer", "schedule", "tokens_per_step"):
        coords[f"={col}"] = cands[col].astype(str)
    for col in ("optimizer_params", "schedule_params"):
        parsed = cands[col].map(lambda s: json.loads(s) if s else {})
        keys = sorted({k for d in parsed if isinstance(d, dict) for k in d})
        for k in keys:
            vals = parsed.map(lambda d, k=k: d.get(k) if isinstance(d, dict) else None)
            nums = vals.map(_number)
            if nums.notna().all() or vals.map(lambda v: v is None).all():
                coords[f"{col}.{k}"] = nums.astype(float)
            else:
                coords[f"={col}.{k}"] = vals.map(lambda v: json.dumps(v, sort_keys=True))
    match = cands["weights"].astype(str).str.extract(_WEIGHTS)
    kind = match[0].fillna(cands["weights"].astype(str))
    coords["=weights"] = kind
    coords["weights@"] = pd.to_numeric(match[1], errors="coerce").astype(float)
    # A weights label with a non-numeric tail (swa@500/5) stays categorical.
    odd = match[0].isna() & cands["weights"].astype(str).str.contains("@")
    coords.loc[odd, "=weights"] = cands.loc[odd, "weights"].astype(str)
    axes = [
        c
        for c in coords.columns
        if not c.startswith("=")
        and c not in (*SCOPE, "candidate")
        and coords.groupby(SCOPE, dropna=False)[c].nunique().max() > 1
    ]
    return coords, axes


@dataclass(frozen=True)
class EdgeWarning:
    """An optimum at the edge of one axis of the grid.

    Attributes:
        scope: (workload, model size).
        candidate: the optimum's label.
        role: what the optimum is (``"anytime-optimal"``, ``"envelope at 800 steps"``, …).
        axis: the axis name (``"peak_lr"``, ``"schedule_params.gamma"``, ``"ema@"``, …).
        value: the optimum's value on it.
        side: ``"above"`` (the largest value tried) or ``"below"`` (the smallest).
        tried: the values tried on the grid line through the optimum, ascending.
    """

    scope: tuple[str, ...]
    candidate: str
    role: str
    axis: str
    value: float
    side: str
    tried: tuple[float, ...]


def _axis_name(axis: str, coords: pd.Series) -> str:
    return f"{coords['=weights']}@" if axis == "weights@" else axis


def edge_warnings(table: pd.DataFrame, optima: pd.DataFrame) -> list[EdgeWarning]:
    """Edge-of-grid warnings for ``optima`` (rows with ``SCOPE``, ``candidate`` and ``role``)."""
    coords, axes = candidate_axes(table)
    if not axes or optima.empty:
        return []
    text = coords.drop(columns="candidate").apply(lambda col: col.map(str))
    line_key = {
        axis: text.drop(columns=axis).agg("\x1f".join, axis=1) for axis in axes
    }  # the grid line through each candidate, per axis
    where = {
        (*map(str, r[: len(SCOPE)]), r[-1]): i
        for i, r in enumerate(coords[[*SCOPE, "candidate"]].itertuples(index=False))
    }
    out: list[EdgeWarning] = []
    seen: set[tuple] = set()
    for opt in optima.itertuples(index=False):
        scope = tuple(str(getattr(opt, c)) for c in SCOPE)
        i = where.get((*scope, opt.candidate))
        if i is None:
            continue
        me = coords.iloc[i]
        for axis in axes:
            if not np.isfinite(me[axis]):
                continue
            line = coords.loc[line_key[axis] == line_key[axis].iloc[i], axis]
            tried = tuple(sorted(set(line.dropna().tolist())))
            if len(tried) < 2 or me[axis] not in (tried[0], tried[-1]):
                continue
            side = "above" if me[axis] == tried[-1] else "below"
            mark = (scope, opt.candidate, axis, side)
            if mark in seen:
                continue
            seen.add(mark)
            out.append(
                EdgeWarning(
                    scope,
                    opt.candidate,
                    str(opt.role),
                    _axis_name(axis, me),
                    float(me[axis]),
                    side,
                    tried,
                )
            )
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def edge_sentences(warnings: list[EdgeWarning], *, prefix_scope: bool = False) -> list[str]:
    """One sentence per (scope, axis, side): which optima sit there and which way to widen."""
    groups: dict[tuple, list[EdgeWarning]] = {}
    for w in warnings:
        groups.setdefault((w.scope, w.axis, w.side), []).append(w)
    out = []
    for (scope, axis, side), ws in groups.items():
        word = "largest" if side == "above" else "smallest"
        values = sorted({w.value for w in ws})
        where = ", ".join(f"{w.role} ({w.candidate})" for w in ws[:4])
        more = f" and {len(ws) - 4} more" if len(ws) > 4 else ""
        prefix = f"[{' '.join(s for s in scope if s)}] " if prefix_scope else ""
        verb = "sits" if len(ws) == 1 else "sit"
        out.append(
            f"{prefix}grid edge: {where}{more} {verb} at the {word} {axis} tried "
            f"({', '.join(_fmt(v) for v in values)} of {', '.join(_fmt(v) for v in ws[0].tried)}): "
            f"widen the {axis} axis {side} {_fmt(values[-1] if side == 'above' else values[0])}."
        )
    return out


@dataclass(frozen=True)
class LRSensitivity:
    """Loss against peak LR per (scope, member, weights) and horizon, and the optimal LR.

    Attributes:
        curves: one row per (scope, member, weights, horizon, peak_lr): the best ``loss`` over
            the member's other settings at that LR, its ``stderr`` and ``candidate``.
        optimal: one row per (scope, member, weights, horizon): the ``peak_lr`` with the lowest
            finite loss (ties: the smaller LR), that ``loss``, ``n_lrs`` tried and ``interior``
            (True when LRs were tried on both sides of it).
    """

    curves: pd.DataFrame
    optimal: pd.DataFrame


def lr_sensitivity(table: pd.DataFrame) -> LRSensitivity:
    """Loss vs peak LR per (scope, member, weights) and horizon, and the optimum at each."""
    keys = [*SCOPE, "member", "family", "weights"]
    ordered = table.sort_values([*keys, "horizon", "peak_lr", "loss", "candidate"], kind="stable")
    curves = ordered.groupby([*keys, "horizon", "peak_lr"], sort=True, dropna=False).head(1)
    curves = curves[
        [*keys, "horizon", "peak_lr", "loss", "stderr", "candidate", "tokens", "n_params", "kind"]
    ].reset_index(drop=True)
    g = curves.groupby([*keys, "horizon"], sort=True, dropna=False)["peak_lr"]
    span = g.agg(lo="min", hi="max", n_lrs="nunique").reset_index()
    finite = curves.loc[np.isfinite(curves["loss"])]
    optimal = (
        finite.sort_values([*keys, "horizon", "loss", "peak_lr"], kind="stable")
        .groupby([*keys, "horizon"], sort=True, dropna=False)
        .head(1)[[*keys, "horizon", "peak_lr", "loss", "candidate"]]
        .merge(span, on=[*keys, "horizon"], how="left")
    )
    optimal["interior"] = (optimal["peak_lr"] > optimal["lo"]) & (
        optimal["peak_lr"] < optimal["hi"]
    )
    optimal = optimal.drop(columns=["lo", "hi"]).reset_index(drop=True)
    return LRSensitivity(curves=curves, optimal=optimal)


def lr_trend(table: pd.DataFrame, sens: LRSensitivity | None = None) -> pd.DataFrame:
    """``optimal LR ∝ horizon^slope`` per (scope, member, weights), from interior optima only.

    Returns:
        One row per (scope, member, family, weights): ``slope`` (least squares of log optimal
        LR on log horizon over the horizons whose optimum is inside the LR grid; NaN with fewer
        than :data:`MIN_TREND_POINTS` of them), ``n_interior`` and ``n_horizons``.
    """
    sens = sens or lr_sensitivity(table)
    keys = [*SCOPE, "member", "family", "weights"]
    rows = []
    for key, opt in sens.optimal.groupby(keys, sort=True, dropna=False):
        inner = opt.loc[opt["interior"] & (opt["peak_lr"] > 0)]
        slope = math.nan
        if inner["horizon"].nunique() >= MIN_TREND_POINTS:
            x = np.log(inner["horizon"].to_numpy(float))
            y = np.log(inner["peak_lr"].to_numpy(float))
            slope = 0.0 if np.ptp(y) == 0 else float(np.polyfit(x, y, 1)[0])
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "slope": slope,
                "n_interior": int(inner["horizon"].nunique()),
                "n_horizons": int(opt["horizon"].nunique()),
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "slope", "n_interior", "n_horizons"])
