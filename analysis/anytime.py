"""Horizon robustness and the anytime-optimal answer (definitions: :mod:`analysis.definitions`).

- :func:`robustness` — worst-case and mean regret of every candidate over the horizons, against
  the envelope (default) or the all-candidate oracle;
- :func:`anytime_optimal` — the *anytime* candidate with the lowest worst-case regret against
  the per-horizon tuned envelope of horizon-aware candidates (per scope, or per family);
- :func:`best_horizon_aware` — the single horizon-aware setting closest to its own envelope;
- :func:`anytime_answers` — the headline per scope, with the paired-seed test of whether the
  leader's lead over the runner-up exceeds the noise the sweep measured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.definitions import ANYTIME, HORIZON_AWARE
from analysis.horizons import SCOPE, envelope, regret, select_horizons
from analysis.noise import Comparison, paired_frame
from analysis.tables import CANDIDATE_COLUMNS

__all__ = [
    "AnytimeAnswer",
    "anytime_answers",
    "anytime_optimal",
    "best_horizon_aware",
    "best_per_family",
    "robustness",
    "seed_worst_regret",
]


def robustness(
    table: pd.DataFrame,
    horizons: Iterable[int] | None = None,
    *,
    horizon_range: tuple[float, float] | None = None,
    relative: bool = True,
    reference: str = "envelope",
) -> pd.DataFrame:
    """Worst-case and mean regret of every candidate over a set or range of horizons.

    Args:
        table: from :func:`analysis.horizons.loss_table`.
        horizons: the horizons (steps) to include; ``None`` = every horizon of the scope.
        horizon_range: optional inclusive (low, high) bounds in steps.
        relative: relative (default) or absolute regret.
        reference: ``"envelope"`` (default) or ``"oracle"`` (:func:`analysis.horizons.regret`).

    Returns:
        One row per (scope, candidate): ``member, kind`` and the candidate columns,
        ``worst_regret``, ``mean_regret``, ``worst_horizon`` (where the worst case occurs; the
        shortest if it repeats), ``n_horizons`` (with a result and a reference), ``n_missing``
        (scope horizons without), ``complete``, ``n_diverged``. Sorted by scope, then complete
        first, worst, mean, label.
    """
    reg = regret(
        select_horizons(table, horizons, horizon_range), relative=relative, reference=reference
    )
    keys = [*SCOPE, "candidate"]
    n_scope = reg.groupby(SCOPE, sort=True, dropna=False)["horizon"].nunique().rename("_n_scope")
    out = reg.groupby(keys, sort=True, dropna=False)[["member", "kind", *CANDIDATE_COLUMNS]].first()
    have = reg.loc[reg["regret"].notna()]
    g = have.groupby(keys, sort=True, dropna=False)["regret"]
    out["worst_regret"] = g.max()
    out["mean_regret"] = g.mean()
    worst = (
        have.sort_values(
            [*keys, "regret", "horizon"],
            ascending=[True] * len(keys) + [False, True],
            kind="stable",
        )
        .groupby(keys, sort=True, dropna=False)
        .head(1)
    )
    out["worst_horizon"] = worst.set_index(keys)["horizon"]
    out["n_horizons"] = g.count()
    out["n_diverged"] = (
        (reg["n_diverged"] > 0).groupby([reg[k] for k in keys], sort=True, dropna=False).sum()
    )
    out = out.reset_index().merge(n_scope.reset_index(), on=SCOPE, how="left")
    out["worst_horizon"] = out["worst_horizon"].fillna(-1).astype("int64")
    out["n_horizons"] = out["n_horizons"].fillna(0).astype("int64")
    out["n_diverged"] = out["n_diverged"].astype("int64")
    out["n_missing"] = (out.pop("_n_scope") - out["n_horizons"]).astype("int64")
    out["complete"] = out["n_missing"].eq(0)
    out = out.sort_values(
        [*SCOPE, "complete", "worst_regret", "mean_regret", "candidate"],
        ascending=[True] * len(SCOPE) + [False, True, True, True],
        kind="stable",
        na_position="last",
    )
    cols = [
        *keys, "member", "kind", *CANDIDATE_COLUMNS, "worst_regret", "mean_regret",
        "worst_horizon", "n_horizons", "n_missing", "n_diverged", "complete",
    ]  # fmt: skip
    return out[cols].reset_index(drop=True)


def _best_of(rob: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    # robustness() is sorted complete-first, then worst, mean, label: the head is the best.
    best = rob.groupby(keys, sort=True, dropna=False).head(1)
    return best.sort_values(
        [*SCOPE, "worst_regret", "mean_regret", "candidate"], kind="stable", na_position="last"
    ).reset_index(drop=True)


def anytime_optimal(
    table: pd.DataFrame,
    by: str | None = None,
    horizons: Iterable[int] | None = None,
    *,
    horizon_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """The anytime candidate with minimal worst-case regret against the envelope, per scope
    (``by=None``) or per scope and ``by`` column (``"family"``, ``"member"``).

    Only candidates with a result at every selected horizon qualify; if none does in a group,
    its best incomplete candidate is returned with ``complete=False``. Empty when the sweep has
    no anytime candidate.
    """
    rob = robustness(table, horizons, horizon_range=horizon_range)
    rob = rob.loc[rob["kind"] == ANYTIME]
    return _best_of(rob, SCOPE if by is None else [*SCOPE, by])


def best_horizon_aware(
    table: pd.DataFrame, by: str | None = None, horizons: Iterable[int] | None = None
) -> pd.DataFrame:
    """The horizon-aware candidate (one setting, re-placed at every horizon as its schedule
    does) with the lowest worst-case regret against the envelope, per scope or scope and ``by``."""
    rob = robustness(table, horizons)
    rob = rob.loc[rob["kind"] == HORIZON_AWARE]
    return _best_of(rob, SCOPE if by is None else [*SCOPE, by])


def best_per_family(table: pd.DataFrame) -> pd.DataFrame:
    """Each (scope, family)'s candidate with the lowest worst-case regret against the envelope,
    whatever its kind (the setting the curve figures draw for that family)."""
    return _best_of(robustness(table), [*SCOPE, "family"])


def seed_worst_regret(table: pd.DataFrame, seeds: pd.DataFrame) -> pd.DataFrame:
    """Per (scope, candidate, seed): the worst regret of that seed's losses over the horizons,
    against the (mean) envelope; only seeds with a result at every horizon the candidate has.

    This is the quantity the headline ranks, measured seed by seed, so that two candidates'
    worst-case regrets can be compared pair-wise by seed (:func:`analysis.noise.paired_frame`).
    """
    ref = envelope(table)[[*SCOPE, "horizon", "loss"]].rename(columns={"loss": "reference_loss"})
    s = seeds.merge(ref, on=[*SCOPE, "horizon"], how="inner")
    s = s.loc[s["reference_loss"].notna() & s["loss"].notna()]
    s = s.assign(regret=s["loss"] / s["reference_loss"] - 1.0)
    per = s.groupby([*SCOPE, "candidate", "seed"], dropna=False).agg(
        loss=("regret", "max"), n=("horizon", "nunique")
    )
    full = per["n"] == per.groupby(level=[*SCOPE, "candidate"])["n"].transform("max")
    return per.loc[full, ["loss"]].reset_index()


@dataclass(frozen=True)
class AnytimeAnswer:
    """The headline of one scope.

    Attributes:
        scope: (workload, model size).
        best: the anytime-optimal candidate's :func:`robustness` row, or None (no anytime one).
        runner_up: the next anytime candidate (complete when the best is), or None.
        lead: paired comparison of the runner-up's per-seed worst-case regret against the
            best's (positive diff = the best leads), or None without a runner-up.
        best_aware: the best horizon-aware candidate's row, or None.
        basis: ``"horizon-aware"`` (a true envelope) or ``"all candidates"`` (none horizon-aware).
        max_seeds: the most seeds any candidate of the scope has at one horizon.
    """

    scope: tuple[str, ...]
    best: pd.Series | None
    runner_up: pd.Series | None
    lead: Comparison | None
    best_aware: pd.Series | None
    basis: str
    max_seeds: int

    @property
    def is_winner(self) -> bool:
        """Whether the best anytime candidate's lead exceeds the measured noise."""
        return self.best is not None and (
            self.runner_up is None or bool(self.lead and self.lead.significant)
        )


def anytime_answers(table: pd.DataFrame, seeds: pd.DataFrame) -> list[AnytimeAnswer]:
    """The :class:`AnytimeAnswer` of every scope (sorted by scope)."""
    rob = robustness(table)
    env = envelope(table)
    worst = seed_worst_regret(table, seeds)
    out = []
    for scope, rows in rob.groupby(SCOPE, sort=True, dropna=False):
        key = tuple(str(s) for s in scope)
        anytime = rows.loc[rows["kind"] == ANYTIME]
        aware = rows.loc[rows["kind"] == HORIZON_AWARE]
        best = anytime.iloc[0] if len(anytime) else None
        # The runner-up is the next candidate as complete as the best (an incomplete one is
        # reported as incomplete, not as a rival).
        rivals = anytime.iloc[1:]
        if best is not None and bool(best["complete"]):
            rivals = rivals.loc[rivals["complete"]]
        runner = rivals.iloc[0] if len(rivals) else None
        lead = None
        if best is not None and runner is not None:
            sw = worst.loc[(worst[SCOPE].astype(str) == list(key)).all(axis=1)]
            a = sw.loc[sw["candidate"] == runner["candidate"]].assign(_k=0)
            b = sw.loc[sw["candidate"] == best["candidate"]].assign(_k=0)
            cmp = paired_frame(a, b, ["_k"])
            lead = (
                Comparison(
                    *(cmp.iloc[0][c] for c in ("diff", "stderr", "n", "t", "critical", "verdict"))
                )
                if len(cmp)
                else Comparison(np.nan, np.nan, 0, np.nan, np.nan, "n/a (no common seed)")
            )
        se = env.loc[(env[SCOPE].astype(str) == list(key)).all(axis=1), "basis"]
        st = table.loc[(table[SCOPE].astype(str) == list(key)).all(axis=1), "n_seeds"]
        out.append(
            AnytimeAnswer(
                scope=key,
                best=best,
                runner_up=runner,
                lead=lead,
                best_aware=aware.iloc[0] if len(aware) else None,
                basis=str(se.iloc[0]) if len(se) else "horizon-aware",
                max_seeds=int(st.max()) if len(st) else 0,
            )
        )
    return out
