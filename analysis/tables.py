"""Validation and normalisation of the results frames the store hands to the analysis.

The store (``orchestrator.store``) gives three pandas frames — ``lineages``, ``curves`` and
``final_losses`` (docs/store.md). Every public function of :mod:`analysis` takes
them as given, validates them here, and works on a normalised copy: dictionary columns that
pyarrow reads as ``category`` (docs/platform.md §4) become plain values, optional setting columns
get neutral defaults, and a frame that cannot be analysed raises :class:`ResultsFrameError` naming
the frame, the column and what was expected.

It also defines what a *candidate* is (the unit the horizon analysis ranks): a setting minus
its seed, together with a ``weights`` variant, inside a *scope* (workload and model size).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis.units import short_numbers, sig3

__all__ = [
    "CANDIDATE_COLUMNS",
    "MEMBER_COLUMNS",
    "SCOPE_COLUMNS",
    "SETTING_COLUMNS",
    "ResultsFrameError",
    "candidate_labels",
    "member_labels",
    "train_curve",
    "validate_curves",
    "validate_final_losses",
    "validate_lineages",
]

SCOPE_COLUMNS: tuple[str, ...] = ("workload", "model_size")
"""Candidates are only compared inside one scope: same workload, same model size."""

SETTING_COLUMNS: tuple[str, ...] = (
    "family",
    "optimizer",
    "optimizer_params",
    "schedule",
    "schedule_params",
    "peak_lr",
    "warmup",
    "batch_size",
    "tokens_per_step",
)
"""A setting minus horizon and seed (docs/design.md §1), inside a scope."""

CANDIDATE_COLUMNS: tuple[str, ...] = (*SETTING_COLUMNS, "weights")
"""A candidate: a seed-free setting together with the weights variant evaluated."""

_DEFAULTS: dict[str, object] = {
    "workload": "",
    "model_size": "",
    "optimizer": "",
    "optimizer_params": "{}",
    "schedule": "",
    "schedule_params": "{}",
    "warmup": 0,
    "batch_size": 0,
    "tokens_per_step": np.nan,
    "n_params": np.nan,
    "seed": 0,
    "sweep_id": "",
}

STATUSES = ("completed", "diverged", "failed", "pending", "stopped")
MISSING_STATUSES = ("failed", "pending", "stopped")
"""Rows without a result that are not the setting's fault: an infrastructure failure, a run not
trained yet (a sweep in progress), or a horizon a search stopped the setting before (successive
halving). They count as missing, never as diverged; a stopped setting is compared only at the
horizons it reached."""


class ResultsFrameError(ValueError):
    """A results frame lacks a column or holds a value the analysis cannot interpret."""


def _require(frame: pd.DataFrame, name: str, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ResultsFrameError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ResultsFrameError(
            f"{name} is missing column(s) {missing}; expected the results store's {name} frame "
            f"(has {sorted(map(str, frame.columns))})"
        )


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy with categorical columns turned into plain values (groupby keeps unobserved levels)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def _fill_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    for col, default in _DEFAULTS.items():
        if col not in frame.columns:
            frame[col] = default
    for col in [
        c
        for c in ("workload", "model_size", "optimizer", "schedule", "family", "weights")
        if c in frame
    ]:
        # None/NaN in a key column would make groupby drop the row: a schedule-free optimizer
        # has no schedule, which is a value ("") and not a missing one.
        frame[col] = frame[col].astype(object).where(frame[col].notna(), "").astype(str)
    for col in ("optimizer_params", "schedule_params"):
        frame[col] = frame[col].map(_canonical_json)
    return frame


def _canonical_json(value: object) -> str:
    """JSON parameters as one canonical string, so equal dicts group together."""
    import json

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "{}"
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def validate_final_losses(final_losses: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise the ``final_losses`` frame; return a normalised copy.

    Required: ``family, peak_lr, weights, horizon, loss``. Optional columns get neutral
    defaults (``seed`` 0, ``status`` from the loss). A row counts as *diverged* when its loss is
    not finite and its status is neither ``failed`` nor ``pending``; a ``failed`` row (an
    infrastructure failure, not the setting's fault) or a ``pending`` one (not trained yet)
    counts as missing. A finite loss counts even when its lineage diverged
    later: the run up to that horizon is the same run.

    Raises:
        ResultsFrameError: a column is missing, a status is unknown, or one (candidate, seed,
            horizon) is answered twice (e.g. by a WSD trunk and its branch).
    """
    _require(final_losses, "final_losses", ("family", "peak_lr", "weights", "horizon", "loss"))
    frame = _fill_defaults(_plain(final_losses))
    frame["loss"] = pd.to_numeric(frame["loss"], errors="coerce").astype(float)
    frame["peak_lr"] = pd.to_numeric(frame["peak_lr"], errors="coerce").astype(float)
    if frame["horizon"].isna().any():
        raise ResultsFrameError(
            "final_losses.horizon must be an integer step count, got a missing value"
        )
    frame["horizon"] = frame["horizon"].astype("int64")
    if "status" not in frame.columns:
        frame["status"] = np.where(np.isfinite(frame["loss"]), "completed", "diverged")
    frame["status"] = (
        frame["status"].astype(object).where(frame["status"].notna(), "completed").astype(str)
    )
    unknown = sorted(set(frame["status"]) - set(STATUSES))
    if unknown:
        raise ResultsFrameError(
            f"final_losses.status must be one of {list(STATUSES)}, got {unknown!r}"
        )
    failed = frame["status"].isin(MISSING_STATUSES)
    frame["diverged"] = ~failed & ~np.isfinite(frame["loss"])
    frame.loc[failed & ~np.isfinite(frame["loss"]), "loss"] = np.nan
    frame.loc[frame["diverged"], "loss"] = np.inf
    keys = [*SCOPE_COLUMNS, *CANDIDATE_COLUMNS, "seed", "horizon"]
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        row = frame.loc[dup].iloc[0]
        branches = (
            sorted(
                frame.loc[dup & (frame["horizon"] == row["horizon"]), "branch"].astype(str).unique()
            )
            if "branch" in frame.columns
            else []
        )
        raise ResultsFrameError(
            f"final_losses answers horizon {row['horizon']} of setting family={row['family']!r} "
            f"peak_lr={row['peak_lr']!r} weights={row['weights']!r} seed={row['seed']!r} more than "
            f"once (branches {branches}); expected one row per (setting, seed, horizon, weights)"
        )
    return frame


def validate_lineages(lineages: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise the ``lineages`` frame (one row per lineage and branch)."""
    _require(lineages, "lineages", ("lineage_id", "branch", "family", "peak_lr"))
    frame = _fill_defaults(_plain(lineages))
    for col in ("parent", "fork_step", "max_step", "status"):
        if col not in frame.columns:
            frame[col] = None
    frame["lineage_id"] = frame["lineage_id"].astype(str)
    frame["branch"] = frame["branch"].astype(str)
    return frame


def validate_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Check and normalise the long ``curves`` frame."""
    _require(curves, "curves", ("lineage_id", "branch", "step", "split", "weights", "loss"))
    frame = _plain(curves)
    for col in ("lineage_id", "branch", "split", "weights"):
        frame[col] = frame[col].astype(str)
    if "lr" not in frame.columns:
        frame["lr"] = np.nan
    bad = sorted(set(frame["split"]) - {"train", "eval"})
    if bad:
        raise ResultsFrameError(f"curves.split must be 'train' or 'eval', got {bad!r}")
    frame["step"] = frame["step"].astype("int64")
    frame["loss"] = pd.to_numeric(frame["loss"], errors="coerce").astype(float)
    return frame


def _fmt_value(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return sig3(value, digits)
    return str(value)


def _params_text(blob: str, digits: int = 3) -> str:
    import json

    try:
        params = json.loads(blob)
    except (TypeError, json.JSONDecodeError):
        return str(blob)
    if not isinstance(params, dict):
        return str(params)
    return ", ".join(f"{k}={_fmt_value(v, digits)}" for k, v in sorted(params.items()))


def _varying_text(row: pd.Series, columns: tuple[str, ...], digits: int = 3) -> str:
    return ", ".join(
        _params_text(row[c], digits) if c.endswith("_params") else f"{c}={_fmt_value(row[c], digits)}"
        for c in columns
    )


def _lr_text(lrs: pd.Series, start: int = 3) -> pd.Series:
    """Peak LRs with 3 significant digits, or as many as it takes to keep distinct LRs distinct."""
    for digits in (d for d in (3, 4, 6, 10, 17) if d >= start):
        text = lrs.map(lambda v, d=digits: sig3(v, d))
        if text.nunique(dropna=False) == lrs.nunique(dropna=False):
            return text
    return text


MEMBER_COLUMNS: tuple[str, ...] = ("family", "schedule_params", "optimizer", "optimizer_params")
"""A family *member*: several WSD cooldowns (fraction, shape) are members of the family ``wsd``."""


def member_labels(candidates: pd.DataFrame) -> pd.Series:
    """Short labels of the family members of ``candidates``: the family, then only the member
    values that vary within that family (``"wsd (cooldown_fraction=0.1)"``)."""
    labels = pd.Series("", index=candidates.index, dtype=object)
    for _family, rows in candidates.groupby("family", sort=True, dropna=False):
        varying = [c for c in MEMBER_COLUMNS[1:] if rows[c].astype(str).nunique(dropna=False) > 1]
        text = rows["family"].astype(str)
        if varying:
            inner = rows.apply(_varying_text, axis=1, columns=tuple(varying))
            text = text + " (" + inner.astype(str) + ")"
        labels.loc[rows.index] = text.str.replace(" ()", "", regex=False)
    return labels


def candidate_labels(candidates: pd.DataFrame) -> pd.Series:
    """Short unique human labels for candidates (rows with :data:`CANDIDATE_COLUMNS`).

    A label names the family, then only the setting values that *vary* among candidates of that
    family (so a sweep over one cosine shape does not repeat the shape), the peak LR, and the
    weights: ``"wsd (cooldown_shape=1-sqrt) lr=0.001 with ema@0.05"``. Every float is written
    with 3 significant digits (a searched ``ema@0.028402848718690213`` reads ``ema@0.0284``;
    :func:`analysis.units.sig3`), with more only where 3 would make two candidates' labels equal.
    """
    n_distinct = len(candidates.astype(str).drop_duplicates())
    for digits in (3, 4, 6, 10, 17):
        labels = _candidate_labels(candidates, digits)
        if labels.nunique() >= n_distinct:
            break
    return labels


def _candidate_labels(candidates: pd.DataFrame, digits: int) -> pd.Series:
    labels = pd.Series("", index=candidates.index, dtype=object)
    for _family, rows in candidates.groupby("family", sort=True, dropna=False):
        parts: list[pd.Series] = [rows["family"].astype(str)]
        varying = [
            c
            for c in SETTING_COLUMNS
            if c not in ("family", "peak_lr") and rows[c].astype(str).nunique(dropna=False) > 1
        ]
        if varying:
            inner = rows.apply(_varying_text, axis=1, columns=tuple(varying), digits=digits)
            parts.append(" (" + inner.astype(str) + ")")
        parts.append(" lr=" + _lr_text(rows["peak_lr"], digits))
        parts.append(" with " + rows["weights"].astype(str).map(lambda w: short_numbers(w, digits)))
        text = parts[0]
        for p in parts[1:]:
            text = text + p
        labels.loc[rows.index] = text.str.replace(" ()", "", regex=False)
    return labels


def train_curve(
    curves: pd.DataFrame, lineage_id: str, branch: str, lineages: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The train rows ``step, lr, loss`` of one lineage branch, sorted by step.

    With ``lineages``, a forked branch (a WSD cooldown ``h=T``) is prefixed with its parent's
    rows before the fork step, so the LR sequence starts at step 0 as loss-curve laws need
    (docs/equations.md §7.3). Several rows at one step (e.g. several weights) keep the first.

    Raises:
        ResultsFrameError: no train rows for that lineage and branch.
    """
    return train_curve_validated(
        validate_curves(curves),
        lineage_id,
        branch,
        None if lineages is None else validate_lineages(lineages),
    )


def train_curve_validated(
    cur: pd.DataFrame, lineage_id: str, branch: str, lin: pd.DataFrame | None
) -> pd.DataFrame:
    """:func:`train_curve` on frames already through :func:`validate_curves` / :func:`validate_lineages`."""

    def rows(lin: str, br: str) -> pd.DataFrame:
        sel = cur.loc[
            (cur["lineage_id"] == str(lin)) & (cur["branch"] == str(br)) & (cur["split"] == "train")
        ]
        return sel.sort_values("step", kind="stable").drop_duplicates("step")[
            ["step", "lr", "loss"]
        ]

    out = rows(lineage_id, branch)
    if out.empty:
        raise ResultsFrameError(
            f"curves has no train rows for lineage_id={lineage_id!r}, branch={branch!r}"
        )
    if lin is not None:
        me = lin.loc[(lin["lineage_id"] == str(lineage_id)) & (lin["branch"] == str(branch))]
        if (
            len(me)
            and me["parent"].notna().iloc[0]
            and str(me["parent"].iloc[0]) not in ("", "None")
        ):
            parent, fork = str(me["parent"].iloc[0]), me["fork_step"].iloc[0]
            fork = int(fork) if pd.notna(fork) else int(out["step"].min())
            # The parent is a branch of the same lineage ("trunk"); else a lineage's main branch.
            prefix = rows(lineage_id, parent)
            if prefix.empty:
                prefix = (
                    rows(parent, "trunk") if rows(parent, "main").empty else rows(parent, "main")
                )
            out = pd.concat([prefix.loc[prefix["step"] < fork], out.loc[out["step"] >= fork]])
    return out.reset_index(drop=True)
