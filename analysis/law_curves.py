"""Whole curves with their exact per-step LR, the input of the loss-curve laws.

A curve is identified by ``(setting_id, lineage_id, branch)`` (the store since schema 2 keeps
it *whole*: a WSD cooldown branch's rows include the shared trunk's rows before the fork). An
older store without ``setting_id`` in ``curves`` keeps only the cooldown's own rows on a branch;
then the parent's rows before ``fork_step`` (from ``lineages``) are put in front.

The laws need the LR of *every* update from step 0 (docs/equations.md §7.3), never one
interpolated between logged rows. It comes from the train rows' ``lr`` column when they were
logged at every step (the LR actually used), else from ``lr_sequences`` (``{curve key:
array}``, rebuilt by the caller from the schedule: ``orchestrator.reporting`` uses
``trials.schedules``). A curve with neither is left out, with the reason.

Indexing: the eval loss logged at step ``s`` was measured after ``s`` updates, i.e. after the
updates ``0 … s − 1``: the law predicts it at index ``s − 1`` of the LR sequence
(:data:`EVAL_OFFSET`). Only evals after the warmup are fitted: both laws describe the loss
after it (Luo et al. fit from the first logged step past their warmup), and the first steps'
fall from ln(vocabulary) would otherwise dominate a fit on log-spaced eval points.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.tables import SCOPE_COLUMNS

__all__ = [
    "EVAL_OFFSET",
    "CurveIndex",
    "LawCurve",
    "as_index",
    "curve_catalog",
    "curve_keys",
    "law_curves",
]

EVAL_OFFSET = 1
SCOPE = list(SCOPE_COLUMNS)
LawCurve = dict


def curve_keys(frame: pd.DataFrame) -> list[str]:
    """The columns that identify a curve in ``frame``: with ``setting_id`` when it has one."""
    return (
        ["setting_id", "lineage_id", "branch"]
        if "setting_id" in frame.columns
        else ["lineage_id", "branch"]
    )


class CurveIndex:
    """The ``curves`` frame indexed by (curve key, split), built once per report.

    Args:
        curves: validated ``curves``.
        lineages: validated ``lineages`` (only needed for an old store's forked branches).
    """

    def __init__(self, curves: pd.DataFrame, lineages: pd.DataFrame | None = None) -> None:
        self.curves = curves
        self.keys = curve_keys(curves)
        self.lineages = lineages
        cols = [*self.keys, "split"]
        self._pos = (
            curves.groupby([curves[c].astype(str) for c in cols], sort=False).indices
            if len(curves)
            else {}
        )
        self._parent: dict[tuple, tuple[str, int | None]] = {}
        if lineages is not None and "setting_id" not in self.keys and len(lineages):
            for lid, br, parent, fork in lineages[
                ["lineage_id", "branch", "parent", "fork_step"]
            ].itertuples(index=False):
                if pd.notna(parent) and str(parent) not in ("", "None"):
                    self._parent[(str(lid), str(br))] = (
                        str(parent),
                        int(fork) if pd.notna(fork) else None,
                    )

    def rows(self, key: tuple, split: str) -> pd.DataFrame:
        """The stored rows of one curve and split, by step."""
        idx = self._pos.get((*map(str, key), split))
        if idx is None:
            return self.curves.iloc[0:0]
        return self.curves.iloc[idx].sort_values("step", kind="stable")

    def whole(self, key: tuple, split: str) -> pd.DataFrame:
        """The rows of one curve from step 0; on an old store, the parent's rows before the
        fork in front of a forked branch's own."""
        rows = self.rows(key, split)
        link = self._parent.get(tuple(map(str, key)))
        if link is None:
            return rows
        parent, fork = link
        fork = fork if fork is not None else (int(rows["step"].min()) if len(rows) else 0)
        prefix = self.rows((key[0], parent), split)
        return pd.concat([prefix.loc[prefix["step"] < fork], rows.loc[rows["step"] >= fork]])


def as_index(curves: pd.DataFrame | CurveIndex, lineages: pd.DataFrame | None = None) -> CurveIndex:
    """``curves`` itself if already a :class:`CurveIndex`, else one built from it."""
    return curves if isinstance(curves, CurveIndex) else CurveIndex(curves, lineages)


def curve_catalog(
    final_losses: pd.DataFrame, keys: list[str], weights: str = "raw"
) -> pd.DataFrame:
    """One row per scheduled curve: its key columns, scope, ``family``, ``member``, ``peak_lr``,
    ``seed``, ``tokens_per_step``, ``n_params`` and ``horizon`` (the longest it answers).

    Args:
        final_losses: validated and labelled (:func:`analysis.horizons.labelled_final_losses`).
        keys: the curve key columns (:attr:`CurveIndex.keys`).
        weights: the weights variant whose curves are wanted.
    """
    fl = final_losses.loc[
        final_losses["schedule"].astype(str).ne("") & (final_losses["weights"] == weights)
    ]
    cols = (*SCOPE, "family", "member", "peak_lr", "warmup", "seed", "tokens_per_step", "n_params")
    return (
        fl.groupby(keys, sort=True, dropna=False)
        .agg(**{c: (c, "first") for c in cols}, horizon=("horizon", "max"))
        .reset_index()
    )


def law_curves(
    catalog: pd.DataFrame,
    curves: pd.DataFrame | CurveIndex,
    lineages: pd.DataFrame | None = None,
    lr_sequences: Mapping[tuple, np.ndarray] | None = None,
    *,
    weights: str = "raw",
) -> tuple[list[LawCurve], list[str]]:
    """The eval losses (``weights``) of the curves in ``catalog`` with their exact per-step LR.

    Args:
        catalog: rows of :func:`curve_catalog` (the curves wanted).
        curves: validated ``curves`` (or their :class:`CurveIndex`).
        lineages: validated ``lineages`` (only needed for an old store's forked branches).
        lr_sequences: ``{curve key: LR per update from step 0}``; the key is
            ``(setting_id, lineage_id, branch)`` (or ``(lineage_id, branch)`` on an old store).
        weights: the weights variant whose eval losses are fitted.

    Returns:
        (one dict per usable curve with ``key``, the catalog's columns, ``lr`` (the sequence),
        ``steps`` (law indices: eval step − 1), ``eval_steps`` and ``losses``; one reason per
        curve left out).
    """
    index = as_index(curves, lineages)
    keys = index.keys
    out, skipped = [], []
    lr_sequences = lr_sequences or {}
    for row in catalog.to_dict("records"):
        key = tuple(str(row[k]) for k in keys)
        ev = index.whole(key, "eval")
        first = max(1, int(row.get("warmup") or 0) + 1)  # the laws describe training after warmup
        ev = ev.loc[
            (ev["weights"] == weights)
            & np.isfinite(ev["loss"])
            & (ev["loss"] > 0)
            & (ev["step"] >= first)
        ]
        ev = ev.drop_duplicates("step")
        if len(ev) < 2:
            skipped.append(f"{'/'.join(key)}: fewer than 2 eval points")
            continue
        # The LR recorded at every step wins; else the one rebuilt from the schedule.
        tr = index.whole(key, "train").drop_duplicates("step")
        tr = tr.loc[tr["lr"].notna()]
        steps_tr = tr["step"].to_numpy()
        need = int(ev["step"].max())
        complete = (
            len(tr) > 0 and steps_tr[0] == 0 and steps_tr[-1] >= need - 1
            and bool((np.diff(steps_tr) == 1).all())
        )  # fmt: skip
        lr = tr["lr"].to_numpy(float) if complete else lr_sequences.get(key)
        if lr is None:
            skipped.append(
                f"{'/'.join(key)}: no exact per-step LR (train rows sub-sampled and no LR "
                "sequence given)"
            )
            continue
        lr = np.asarray(lr, dtype=float)
        steps = ev["step"].to_numpy(np.int64) - EVAL_OFFSET
        ok = (steps < len(lr)) & (np.cumsum(lr)[np.minimum(steps, len(lr) - 1)] > 0)
        if ok.sum() < 2:
            skipped.append(f"{'/'.join(key)}: the LR sequence does not cover the eval steps")
            continue
        out.append(
            {
                **row,
                "key": key,
                "lr": lr,
                "steps": steps[ok],
                "eval_steps": ev["step"].to_numpy(np.int64)[ok],
                "losses": ev["loss"].to_numpy(float)[ok],
            }
        )
    return out, skipped
