"""Losses per candidate and horizon, and the per-horizon references regret is measured against.

A *candidate* is a setting minus its seed, together with a weights variant (``analysis.tables``),
e.g. "constant lr=1e-3 with ema@0.05"; its *kind* is anytime or horizon-aware
(:mod:`analysis.definitions`). Seeds give a mean and a standard error per horizon. Candidates
are compared only within a scope (workload, model size).

- oracle(T): the candidate with the lowest mean loss at horizon T over *all* candidates
  (ties: the smallest label);
- envelope(T): the same over the *horizon-aware* candidates only — the per-horizon tuned
  envelope anytime candidates are measured against (the oracle where a scope has none);
- regret(c, T) = loss(c, T)/reference(T) − 1 (relative) or loss(c, T) − reference(T)
  (absolute); a diverged candidate has loss +inf and so regret +inf — it stays in every
  output, worst.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.definitions import HORIZON_AWARE, kinds
from analysis.tables import (
    CANDIDATE_COLUMNS,
    MEMBER_COLUMNS,
    MISSING_STATUSES,
    SCOPE_COLUMNS,
    candidate_labels,
    member_labels,
    validate_final_losses,
)
from analysis.units import count_unit

__all__ = [
    "envelope",
    "horizon_multiples",
    "labelled_final_losses",
    "loss_table",
    "oracle",
    "regret",
    "scope_names",
    "seed_losses",
    "select_horizons",
]

SCOPE = list(SCOPE_COLUMNS)
_TABLE_COLUMNS = [
    *SCOPE,
    "candidate",
    "member",
    "kind",
    *CANDIDATE_COLUMNS,
    "horizon",
    "tokens",
    "n_params",
    "loss",
    "stderr",
    "n_seeds",
    "n_diverged",
    "n_failed",
    "n_stopped",
]


def labelled_final_losses(final_losses: pd.DataFrame) -> pd.DataFrame:
    """The validated ``final_losses`` with ``candidate``, ``member``, ``kind`` and ``tokens``.

    Labels are unique within a scope and depend only on the set of candidates, so
    :func:`loss_table` and :func:`seed_losses` of one frame agree.
    """
    frame = validate_final_losses(final_losses).reset_index(drop=True)
    frame["tokens"] = frame["horizon"] * pd.to_numeric(frame["tokens_per_step"], errors="coerce")
    frame["candidate"] = ""
    frame["member"] = ""
    cols = list(CANDIDATE_COLUMNS)
    for _scope, rows in frame.groupby(SCOPE, sort=False, dropna=False):
        cands = rows[cols].drop_duplicates()
        lookup = dict(
            zip(map(tuple, cands.astype(str).to_numpy()), candidate_labels(cands), strict=True)
        )
        keys = list(map(tuple, rows[cols].astype(str).to_numpy()))
        frame.loc[rows.index, "candidate"] = [lookup[k] for k in keys]
        members = rows[list(MEMBER_COLUMNS)].drop_duplicates()
        mlookup = dict(
            zip(map(tuple, members.astype(str).to_numpy()), member_labels(members), strict=True)
        )
        mkeys = map(tuple, rows[list(MEMBER_COLUMNS)].astype(str).to_numpy())
        frame.loc[rows.index, "member"] = [mlookup[k] for k in mkeys]
    frame["kind"] = kinds(frame)
    return frame


def loss_table(final_losses: pd.DataFrame) -> pd.DataFrame:
    """Mean loss over seeds for every candidate at every horizon it was run at.

    Args:
        final_losses: the store's ``final_losses`` frame (one row per setting, horizon and
            weights).

    Returns:
        A long frame, one row per (scope, candidate, horizon): the scope and candidate columns,
        ``candidate`` (a unique label within the scope), ``member`` (the family member),
        ``kind`` (``"anytime"`` or ``"horizon-aware"``), ``horizon`` (steps), ``tokens``,
        ``n_params``, ``loss`` (mean over seeds; +inf if any seed diverged), ``stderr``
        (std/sqrt(n), NaN for one seed or a divergence), ``n_seeds`` (seeds with a result),
        ``n_diverged``, ``n_failed`` (failed runs are missing, not infinite) and ``n_stopped``
        (seeds a search stopped before this horizon: missing, never "failed"). Sorted by scope,
        candidate, horizon.
    """
    return _aggregate(labelled_final_losses(final_losses))


def _aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [*SCOPE, "candidate", "horizon"]
    frame = frame.assign(
        failed=frame["status"].eq("failed"),
        stopped=frame["status"].eq("stopped"),
        missing=frame["status"].isin(MISSING_STATUSES),
    )
    grouped = frame.groupby(keys, sort=True, dropna=False)
    extra = ["origin"] if "origin" in frame.columns else []  # grid or search (analysis.budget)
    table = grouped[["member", "kind", *CANDIDATE_COLUMNS, "tokens", "n_params", *extra]].first()
    table["n_diverged"] = grouped["diverged"].sum()
    table["n_failed"] = grouped["failed"].sum()
    table["n_stopped"] = grouped["stopped"].sum()
    ok = frame.loc[~frame["missing"]].groupby(keys, sort=True, dropna=False)["loss"]
    # Mean over every seed that produced a result; one diverged seed makes it +inf on purpose:
    # a setting that diverges one time in three is not a safe recommendation.
    table["loss"] = ok.mean()
    table["n_seeds"] = ok.count()
    finite = frame.loc[~frame["missing"] & ~frame["diverged"]].groupby(keys, dropna=False)["loss"]
    table["stderr"] = (finite.std(ddof=1) / np.sqrt(finite.count())).reindex(table.index)
    table.loc[table["n_diverged"] > 0, "stderr"] = np.nan
    table["n_seeds"] = table["n_seeds"].fillna(0).astype("int64")
    table = table.reset_index()
    return table[_TABLE_COLUMNS + extra].sort_values(keys, kind="stable").reset_index(drop=True)


def seed_losses(final_losses: pd.DataFrame) -> pd.DataFrame:
    """Per-seed losses: one row per (scope, candidate, horizon, seed) with ``loss`` (+inf for a
    divergence, NaN for a failure), for the paired comparisons of :mod:`analysis.noise`."""
    frame = labelled_final_losses(final_losses)
    return frame[[*SCOPE, "candidate", "kind", "horizon", "seed", "loss"]].reset_index(drop=True)


def _best(table: pd.DataFrame, all_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Lowest finite mean loss per (scope, horizon), ties broken by label; plus every
    (scope, horizon) of ``all_rows`` (default ``table``) where nothing finite exists there
    (``candidate`` empty, ``loss`` NaN)."""
    keys = [*SCOPE, "horizon"]
    finite = table.loc[np.isfinite(table["loss"].to_numpy(float))]
    best = finite.sort_values([*keys, "loss", "candidate"], kind="stable").drop_duplicates(keys)
    want = (table if all_rows is None else all_rows).drop_duplicates(keys)
    missing = want.merge(best[keys], on=keys, how="left", indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only"].drop(columns="_merge")
    if len(missing):  # every candidate diverged or failed at these horizons
        best = pd.concat(
            [best, missing.assign(candidate="", loss=np.nan, stderr=np.nan)], ignore_index=True
        )
    return best.sort_values(keys, kind="stable").reset_index(drop=True)


def oracle(table: pd.DataFrame) -> pd.DataFrame:
    """The best candidate per (scope, horizon) over all candidates: lowest mean loss, ties by
    label; a horizon where every candidate diverged or failed has ``candidate`` "" and NaN loss."""
    return _best(table)


def envelope(table: pd.DataFrame) -> pd.DataFrame:
    """The per-horizon tuned envelope: per (scope, horizon), the best *horizon-aware* candidate.

    A scope without any horizon-aware candidate falls back to the oracle over all candidates;
    a horizon that no horizon-aware candidate answers (in a scope that has some) has none.
    Returns :func:`oracle`'s columns plus ``basis``: ``"horizon-aware"`` or ``"all candidates"``.
    """
    aware = (table["kind"] == HORIZON_AWARE).to_numpy()
    scope_has = (
        pd.Series(aware, index=table.index)
        .groupby([table[c] for c in SCOPE], dropna=False)
        .transform("any")
    ).to_numpy(bool)
    best = _best(table.loc[aware | ~scope_has], table)
    has = (
        table.assign(_a=aware).groupby(SCOPE, dropna=False)["_a"].any().rename("_has").reset_index()
    )
    best = best.merge(has, on=SCOPE, how="left")
    best["basis"] = np.where(best.pop("_has").to_numpy(bool), "horizon-aware", "all candidates")
    return best


def regret(table: pd.DataFrame, relative: bool = True, reference: str = "envelope") -> pd.DataFrame:
    """Regret of every candidate at every horizon against that horizon's reference.

    Args:
        table: from :func:`loss_table`.
        relative: ``loss/reference − 1`` (default) or ``loss − reference``.
        reference: ``"envelope"`` (the horizon-aware best; the anytime yardstick) or
            ``"oracle"`` (the best of all candidates).

    Returns:
        A copy of ``table`` with ``reference_loss``, ``reference_candidate`` and ``regret``.
        Diverged candidates get +inf; failed (missing) ones and horizons with no reference NaN.
    """
    if reference not in ("envelope", "oracle"):
        raise ValueError(f"reference must be 'envelope' or 'oracle', got {reference!r}")
    ref = envelope(table) if reference == "envelope" else oracle(table)
    ref = ref[[*SCOPE, "horizon", "loss", "candidate"]].rename(
        columns={"loss": "reference_loss", "candidate": "reference_candidate"}
    )
    out = table.merge(ref, on=[*SCOPE, "horizon"], how="left", sort=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["regret"] = (
            out["loss"] / out["reference_loss"] - 1.0
            if relative
            else out["loss"] - out["reference_loss"]
        )
    out.loc[np.isposinf(out["loss"]) & out["reference_loss"].notna(), "regret"] = np.inf
    out.loc[out["reference_loss"].isna(), "regret"] = np.nan
    return out


def select_horizons(
    table: pd.DataFrame, horizons: Iterable[int] | None, horizon_range: tuple[float, float] | None
) -> pd.DataFrame:
    """Rows of ``table`` at the given horizons and/or within an inclusive (low, high) range."""
    if horizons is not None:
        table = table.loc[table["horizon"].isin({int(h) for h in horizons})]
    if horizon_range is not None:
        lo, hi = horizon_range
        table = table.loc[(table["horizon"] >= lo) & (table["horizon"] <= hi)]
    if table.empty:
        raise ValueError(
            f"no horizons left after selecting horizons={horizons!r}, horizon_range={horizon_range!r}"
        )
    return table


def horizon_multiples(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Each (scope, horizon) as a multiple, for plain-English ranges.

    Multiples of Chinchilla's 20 tokens per parameter when every horizon's tokens and the model's
    ``n_params`` are known and the workloads are language models, else multiples of the scope's
    shortest horizon (a linear regression's samples are no tokens; :mod:`analysis.units`).

    Returns:
        (frame with ``[*scope, horizon, multiple]``, unit) where unit is ``"Chinchilla"`` or
        ``"shortest horizon"``.
    """
    per = (
        table.groupby([*SCOPE, "horizon"], sort=True, dropna=False)
        .agg(tokens=("tokens", "median"), n_params=("n_params", "median"))
        .reset_index()
    )
    lm = count_unit(table["workload"].unique()) == "tokens" if "workload" in table.columns else True
    if lm and per["tokens"].notna().all() and (per["n_params"] > 0).all():
        per["multiple"] = per["tokens"] / (20.0 * per["n_params"])
        return per[[*SCOPE, "horizon", "multiple"]], "Chinchilla"
    shortest = per.groupby(SCOPE, dropna=False)["horizon"].transform("min")
    per["multiple"] = per["horizon"] / shortest
    return per[[*SCOPE, "horizon", "multiple"]], "shortest horizon"


def scope_names(table: pd.DataFrame) -> Sequence[tuple[str, ...]]:
    """The scopes (workload, model size) present, sorted."""
    return [tuple(k) for k in table[SCOPE].drop_duplicates().sort_values(SCOPE).to_numpy()]
