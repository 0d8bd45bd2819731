"""Horizon robustness: which candidate wins at which horizon, and which is anytime-optimal.

A *candidate* is a setting minus its seed, together with a weights variant (``analysis.tables``),
e.g. "constant lr=1e-3 with ema@0.05". Seeds give a mean and a standard error per horizon.
Candidates are compared only within a scope (workload, model size).

Definitions (every function below is a pure function of the :func:`loss_table` frame):

- oracle(T): the candidate with the lowest mean loss at horizon T (ties: the smallest label);
- regret(c, T) = loss(c, T)/oracle(T) − 1 (relative) or loss(c, T) − oracle(T) (absolute);
  a diverged candidate has loss +inf and so regret +inf — it stays in every output, worst;
- worst-case regret of c over a horizon range = max_T regret(c, T); the *anytime-optimal*
  candidate minimises it (ties: lower mean regret, then label). Regret relative to one oracle
  per horizon is the yardstick of "Anytime Pretraining" (Meterez et al., arXiv 2602.03702).
- within noise: |mean_a − mean_b| < 2·sqrt(se_a² + se_b²) (a two-standard-error rule).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.tables import (
    CANDIDATE_COLUMNS,
    SCOPE_COLUMNS,
    candidate_labels,
    validate_final_losses,
)

__all__ = [
    "LRSensitivity",
    "NOISE_RULE",
    "anytime_optimal",
    "horizon_multiples",
    "loss_table",
    "lr_sensitivity",
    "oracle",
    "regret",
    "robustness",
    "scope_names",
    "summary_sentences",
    "within_noise",
]

NOISE_RULE = "|Δmean| < 2·sqrt(se_a² + se_b²)"
SCOPE = list(SCOPE_COLUMNS)


def loss_table(final_losses: pd.DataFrame) -> pd.DataFrame:
    """Mean loss over seeds for every candidate at every horizon it was run at.

    Args:
        final_losses: the store's ``final_losses`` frame (one row per lineage, branch, horizon
            and weights).

    Returns:
        A long frame, one row per (scope, candidate, horizon): the scope and candidate columns,
        ``candidate`` (a unique label within the scope), ``horizon`` (steps), ``tokens``,
        ``n_params``, ``loss`` (mean over seeds; +inf if any seed diverged), ``stderr``
        (std/sqrt(n), NaN for one seed or a divergence), ``n_seeds`` (seeds with a result),
        ``n_diverged`` and ``n_failed`` (failed runs are missing, not infinite). Sorted by scope,
        candidate, horizon.
    """
    frame = validate_final_losses(final_losses)
    keys = [*SCOPE, *CANDIDATE_COLUMNS, "horizon"]
    frame["failed"] = frame["status"].eq("failed")
    frame["tokens"] = frame["horizon"] * pd.to_numeric(frame["tokens_per_step"], errors="coerce")
    grouped = frame.groupby(keys, sort=True, dropna=False)
    ok = frame.loc[~frame["failed"]].groupby(keys, sort=True, dropna=False)["loss"]
    table = grouped.agg(
        tokens=("tokens", "first"),
        n_params=("n_params", "first"),
        n_diverged=("diverged", "sum"),
        n_failed=("failed", "sum"),
    )
    # Mean over every seed that produced a result; one diverged seed makes it +inf on purpose:
    # a setting that diverges one time in three is not a safe recommendation.
    table["loss"] = ok.mean()
    table["n_seeds"] = ok.count()
    finite = frame.loc[~frame["failed"] & ~frame["diverged"]].groupby(keys, dropna=False)["loss"]
    std = finite.std(ddof=1)
    table["stderr"] = (std / np.sqrt(finite.count())).reindex(table.index)
    table.loc[table["n_diverged"] > 0, "stderr"] = np.nan
    table["n_seeds"] = table["n_seeds"].fillna(0).astype("int64")
    table = table.reset_index()
    table["candidate"] = ""
    for _scope, rows in table.groupby(SCOPE, sort=False, dropna=False):
        cands = rows[list(CANDIDATE_COLUMNS)].drop_duplicates()
        labels = candidate_labels(cands)
        lookup = dict(zip(map(tuple, cands.astype(str).to_numpy()), labels, strict=True))
        table.loc[rows.index, "candidate"] = [
            lookup[tuple(r)] for r in rows[list(CANDIDATE_COLUMNS)].astype(str).to_numpy()
        ]
    cols = [
        *SCOPE,
        "candidate",
        *CANDIDATE_COLUMNS,
        "horizon",
        "tokens",
        "n_params",
        "loss",
        "stderr",
        "n_seeds",
        "n_diverged",
        "n_failed",
    ]
    return (
        table[cols]
        .sort_values([*SCOPE, "candidate", "horizon"], kind="stable")
        .reset_index(drop=True)
    )


def oracle(table: pd.DataFrame) -> pd.DataFrame:
    """The best candidate per (scope, horizon): lowest mean loss, ties broken by label.

    Returns one row per (scope, horizon) with the winner's columns, its ``loss`` and ``stderr``,
    and ``n_within_noise``: how many *other* candidates are within noise of it. A horizon where
    every candidate diverged or failed has no oracle (``candidate`` empty, ``loss`` NaN).
    """
    keys = [*SCOPE, "horizon"]
    finite = table.loc[np.isfinite(table["loss"])]
    best = (
        finite.sort_values([*keys, "loss", "candidate"], kind="stable")
        .groupby(keys, sort=True, dropna=False)
        .head(1)
    )
    # Vectorised within_noise() of every finite candidate against its horizon's winner.
    pair = finite.merge(
        best[[*keys, "candidate", "loss", "stderr"]], on=keys, suffixes=("", "_best")
    )
    se2 = pair["stderr"].fillna(0.0) ** 2 + pair["stderr_best"].fillna(0.0) ** 2
    diff = (pair["loss"] - pair["loss_best"]).abs()
    close = ((diff == 0.0) | (diff < 2.0 * np.sqrt(se2))) & (
        pair["candidate"] != pair["candidate_best"]
    )
    counts = close.groupby([pair[k] for k in keys], dropna=False).sum().rename("n_within_noise")
    out = best.merge(counts.reset_index(), on=keys, how="left")
    missing = table.drop_duplicates(keys).merge(best[keys], on=keys, how="left", indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only"].drop(columns="_merge")
    if len(missing):  # every candidate diverged or failed at these horizons
        missing = missing.assign(candidate="", loss=np.nan, stderr=np.nan, n_within_noise=0)
        out = pd.concat([out, missing], ignore_index=True)
    out["n_within_noise"] = out["n_within_noise"].fillna(0).astype("int64")
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def regret(table: pd.DataFrame, relative: bool = True) -> pd.DataFrame:
    """Regret of every candidate at every horizon against that horizon's oracle.

    Adds ``oracle_loss`` and ``regret`` columns to a copy of ``table``: ``loss/oracle − 1`` if
    ``relative`` else ``loss − oracle``. Diverged candidates get +inf; failed (missing) ones and
    horizons with no oracle get NaN.
    """
    best = oracle(table)[[*SCOPE, "horizon", "loss"]].rename(columns={"loss": "oracle_loss"})
    out = table.merge(best, on=[*SCOPE, "horizon"], how="left", sort=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["regret"] = (
            out["loss"] / out["oracle_loss"] - 1.0 if relative else out["loss"] - out["oracle_loss"]
        )
    out.loc[np.isposinf(out["loss"]) & out["oracle_loss"].notna(), "regret"] = np.inf
    out.loc[out["oracle_loss"].isna(), "regret"] = np.nan
    return out


def _select_horizons(
    table: pd.DataFrame, horizons: Iterable[int] | None, horizon_range: tuple[float, float] | None
) -> pd.DataFrame:
    if horizons is not None:
        wanted = {int(h) for h in horizons}
        table = table.loc[table["horizon"].isin(wanted)]
    if horizon_range is not None:
        lo, hi = horizon_range
        table = table.loc[(table["horizon"] >= lo) & (table["horizon"] <= hi)]
    if table.empty:
        raise ValueError(
            f"no horizons left after selecting horizons={horizons!r}, horizon_range={horizon_range!r}"
        )
    return table


def robustness(
    table: pd.DataFrame,
    horizons: Iterable[int] | None = None,
    *,
    horizon_range: tuple[float, float] | None = None,
    relative: bool = True,
) -> pd.DataFrame:
    """Worst-case and mean regret of every candidate over a set or range of horizons.

    Args:
        table: from :func:`loss_table`.
        horizons: the horizons (steps) to include; ``None`` = every horizon of the scope.
        horizon_range: optional inclusive (low, high) bounds in steps.
        relative: relative (default) or absolute regret.

    Returns:
        One row per (scope, candidate): ``family, weights, peak_lr``, ``worst_regret``,
        ``mean_regret``, ``worst_horizon`` (where the worst case occurs), ``n_horizons`` (with a
        result), ``n_missing`` (scope horizons with no result for this candidate),
        ``complete``, ``n_diverged``. Sorted by scope, then complete first, worst, mean, label.
    """
    reg = regret(_select_horizons(table, horizons, horizon_range), relative=relative)
    keys = [*SCOPE, "candidate"]
    n_scope_horizons = (
        reg.groupby(SCOPE, sort=True, dropna=False)["horizon"].nunique().rename("_n_scope")
    )
    out = reg.groupby(keys, sort=True, dropna=False)[list(CANDIDATE_COLUMNS)].first()
    have = reg.loc[reg["regret"].notna()]
    g = have.groupby(keys, sort=True, dropna=False)["regret"]
    out["worst_regret"] = g.max()
    out["mean_regret"] = g.mean()
    # The horizon of the worst case (the shortest one if it repeats).
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
    out = out.reset_index().merge(n_scope_horizons.reset_index(), on=SCOPE, how="left")
    out["worst_horizon"] = out["worst_horizon"].fillna(-1).astype("int64")
    out["n_horizons"] = out["n_horizons"].fillna(0).astype("int64")
    out["n_diverged"] = out["n_diverged"].astype("int64")
    out["n_missing"] = (out.pop("_n_scope") - out["n_horizons"]).astype("int64")
    out["complete"] = out["n_missing"].eq(0)
    out["_incomplete"] = ~out["complete"]
    out = out.sort_values(
        [*SCOPE, "_incomplete", "worst_regret", "mean_regret", "candidate"],
        kind="stable",
        na_position="last",
    )
    cols = [
        *keys,
        *CANDIDATE_COLUMNS,
        "worst_regret",
        "mean_regret",
        "worst_horizon",
        "n_horizons",
        "n_missing",
        "n_diverged",
        "complete",
    ]
    return out[cols].reset_index(drop=True)


def anytime_optimal(
    table: pd.DataFrame,
    by: str | None = "family",
    horizons: Iterable[int] | None = None,
    *,
    horizon_range: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """The candidate with minimal worst-case regret, per scope (``by=None``) or per scope and
    ``by`` column (e.g. ``"family"``); regret is always against the oracle over *all* candidates.

    Only candidates with a result at every selected horizon qualify; if none does in a group,
    the group's best incomplete candidate is returned with ``complete=False``.
    """
    rob = robustness(table, horizons, horizon_range=horizon_range)
    keys = SCOPE if by is None else [*SCOPE, by]
    # robustness() is already sorted complete-first, then worst, mean, label: take the head.
    best = rob.groupby(keys, sort=True, dropna=False).head(1)
    return best.sort_values(
        [*SCOPE, "worst_regret", "mean_regret", "candidate"], kind="stable", na_position="last"
    ).reset_index(drop=True)


def within_noise(mean_a: float, se_a: float, mean_b: float, se_b: float) -> bool:
    """Whether two means differ by less than two standard errors of their difference.

    Rule: ``|mean_a − mean_b| < 2·sqrt(se_a² + se_b²)``. An unknown standard error (one seed,
    NaN) counts as 0, so single-seed results are within noise only when exactly equal; two
    diverged (+inf) results are treated as tied, a diverged and a finite one never are.
    """
    if math.isinf(mean_a) or math.isinf(mean_b):
        return math.isinf(mean_a) and math.isinf(mean_b) and (mean_a > 0) == (mean_b > 0)
    if math.isnan(mean_a) or math.isnan(mean_b):
        return False
    sa = 0.0 if se_a is None or math.isnan(se_a) else float(se_a)
    sb = 0.0 if se_b is None or math.isnan(se_b) else float(se_b)
    diff = abs(mean_a - mean_b)
    return diff == 0.0 or diff < 2.0 * math.sqrt(sa * sa + sb * sb)


@dataclass(frozen=True)
class LRSensitivity:
    """Loss against peak LR, and how the optimal peak LR moves with the horizon.

    Attributes:
        curves: one row per (scope, family, weights, horizon, peak_lr): the best ``loss`` over
            the family's other settings at that LR, with its ``stderr`` and ``candidate``.
        optimal: one row per (scope, family, weights, horizon): the ``peak_lr`` with the lowest
            finite loss (ties: the smaller LR) and that ``loss``; NaN where all diverged.
        trend: one row per (scope, family, weights): ``slope`` of log(optimal LR) against
            log(horizon) by least squares (``optimal LR ∝ horizon^slope``), ``n_horizons`` used,
            ``n_lrs`` tried; NaN slope with fewer than two horizons or a single LR.
    """

    curves: pd.DataFrame
    optimal: pd.DataFrame
    trend: pd.DataFrame


def lr_sensitivity(table: pd.DataFrame) -> LRSensitivity:
    """Loss vs peak LR per (scope, family, weights) and horizon, and the optimal-LR trend."""
    keys = [*SCOPE, "family", "weights"]
    ordered = table.sort_values([*keys, "horizon", "peak_lr", "loss", "candidate"], kind="stable")
    curves = ordered.groupby([*keys, "horizon", "peak_lr"], sort=True, dropna=False).head(1)
    curves = curves[[*keys, "horizon", "peak_lr", "loss", "stderr", "candidate"]].reset_index(
        drop=True
    )
    finite = curves.loc[np.isfinite(curves["loss"])]
    optimal = (
        finite.sort_values([*keys, "horizon", "loss", "peak_lr"], kind="stable")
        .groupby([*keys, "horizon"], sort=True, dropna=False)
        .head(1)
        .reset_index(drop=True)[[*keys, "horizon", "peak_lr", "loss"]]
    )
    trend_rows = []
    for key, group in curves.groupby(keys, sort=True, dropna=False):
        opt = optimal.loc[
            (optimal[keys] == pd.Series(dict(zip(keys, key, strict=True)))).all(axis=1)
        ]
        opt = opt.loc[opt["peak_lr"] > 0]
        n_lrs = int(group["peak_lr"].nunique())
        slope = np.nan
        if len(opt) >= 2 and n_lrs >= 2 and opt["horizon"].nunique() >= 2:
            # The same optimal LR at every horizon is exactly flat, not polyfit's ±1e-15.
            slope = (
                0.0
                if opt["peak_lr"].nunique() == 1
                else float(
                    np.polyfit(np.log(opt["horizon"].astype(float)), np.log(opt["peak_lr"]), 1)[0]
                )
            )
        trend_rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "slope": slope,
                "n_horizons": int(len(opt)),
                "n_lrs": n_lrs,
            }
        )
    trend = pd.DataFrame(trend_rows, columns=[*keys, "slope", "n_horizons", "n_lrs"])
    return LRSensitivity(curves=curves, optimal=optimal, trend=trend)


def horizon_multiples(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Each (scope, horizon) as a multiple, for plain-English ranges.

    Multiples of Chinchilla's 20 tokens per parameter when every horizon's tokens and the model's
    ``n_params`` are known, else multiples of the scope's shortest horizon.

    Returns:
        (frame with ``[*scope, horizon, multiple]``, unit) where unit is ``"Chinchilla"`` or
        ``"shortest horizon"``.
    """
    per = (
        table.groupby([*SCOPE, "horizon"], sort=True, dropna=False)
        .agg(tokens=("tokens", "median"), n_params=("n_params", "median"))
        .reset_index()
    )
    if per["tokens"].notna().all() and (per["n_params"] > 0).all():
        per["multiple"] = per["tokens"] / (20.0 * per["n_params"])
        return per[[*SCOPE, "horizon", "multiple"]], "Chinchilla"
    shortest = per.groupby(SCOPE, dropna=False)["horizon"].transform("min")
    per["multiple"] = per["horizon"] / shortest
    return per[[*SCOPE, "horizon", "multiple"]], "shortest horizon"


def scope_names(table: pd.DataFrame) -> Sequence[tuple[str, ...]]:
    """The scopes (workload, model size) present, sorted."""
    return [tuple(k) for k in table[SCOPE].drop_duplicates().sort_values(SCOPE).to_numpy()]


def _pct(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞ (diverged)"
    v = 100.0 * x
    if v == 0.0:
        return "0%"
    return f"{v:.0f}%" if abs(v) >= 10 else f"{v:.2g}%"


def _mult(x: float) -> str:
    return f"{x:.3g}"


def _span(mults: Sequence[float]) -> str:
    lo, hi = min(mults), max(mults)
    return f"{_mult(lo)}×" if lo == hi else f"{_mult(lo)}–{_mult(hi)}×"


def summary_sentences(
    table: pd.DataFrame,
    *,
    horizons: Iterable[int] | None = None,
    plan: dict | None = None,
    max_listed: int = 5,
) -> list[str]:
    """Plain-English findings, one sentence each, deterministic in content and order.

    Per scope (prefixed ``[workload model_size]`` when there are several): the anytime-optimal
    candidate with its worst-case and mean regret over the horizon span (as multiples of
    Chinchilla's 20 tokens/param or of the shortest horizon), the runner-up and at how many
    horizons it is within noise of the winner (:data:`NOISE_RULE`), the best candidate of every
    family, the per-horizon oracle, diverged and missing candidates, and the optimal-LR trend.
    Then, with a ``plan``, the compute spent against the naive one-run-per-(setting, horizon).

    Example: ``"anytime-optimal: wsd (cooldown_shape=1-sqrt) lr=0.001 with ema@0.05, worst-case
    regret 0.8% over 1–16× shortest horizon (mean 0.3%)."``
    """
    table = _select_horizons(table, horizons, None)
    mults, unit = horizon_multiples(table)
    rob = robustness(table)
    fam = anytime_optimal(table, by="family")
    overall = anytime_optimal(table, by=None)
    orc = oracle(table)
    sens = lr_sensitivity(table)
    scopes = scope_names(table)
    out: list[str] = []
    for scope in scopes:
        prefix = f"[{' '.join(s for s in scope if s)}] " if len(scopes) > 1 else ""

        def in_scope(frame: pd.DataFrame, scope: tuple[str, ...] = scope) -> pd.DataFrame:
            return frame.loc[(frame[SCOPE].astype(str) == list(scope)).all(axis=1)]

        m = in_scope(mults).set_index("horizon")["multiple"]
        span = f"{_span(list(m))} {unit}"
        win = in_scope(overall).iloc[0]
        tail = "" if win["complete"] else f" (missing at {win['n_missing']} horizon(s))"
        if win["worst_regret"] == 0.0:
            out.append(
                f"{prefix}anytime-optimal: {win['candidate']}, the best candidate at every "
                f"horizon over {span}{tail}."
            )
        else:
            out.append(
                f"{prefix}anytime-optimal: {win['candidate']}, worst-case regret "
                f"{_pct(win['worst_regret'])} over {span} (mean {_pct(win['mean_regret'])}, "
                f"worst at {_mult(m[win['worst_horizon']])}×){tail}."
            )
        scope_rob = in_scope(rob)
        if len(scope_rob) > 1:
            second = scope_rob.iloc[1]
            t = in_scope(table)
            a = t.loc[t["candidate"] == win["candidate"]].set_index("horizon")
            b = t.loc[t["candidate"] == second["candidate"]].set_index("horizon")
            common = a.index.intersection(b.index)
            k = sum(
                within_noise(a.at[h, "loss"], a.at[h, "stderr"], b.at[h, "loss"], b.at[h, "stderr"])
                for h in common
            )
            out.append(
                f"{prefix}runner-up: {second['candidate']}, worst-case regret "
                f"{_pct(second['worst_regret'])}; within noise of the winner at {k} of "
                f"{len(common)} horizons ({NOISE_RULE})."
            )
        best_fam = in_scope(fam)
        if len(best_fam) > 1:
            parts = [
                f"{r['family']} {_pct(r['worst_regret'])} [{r['candidate']}]"
                for _, r in best_fam.iterrows()
            ]
            out.append(f"{prefix}best per family, by worst-case regret: " + "; ".join(parts) + ".")
        runs: list[tuple[str, list[float]]] = []
        for _, r in in_scope(orc).iterrows():
            name = r["candidate"] or "none (all diverged)"
            if runs and runs[-1][0] == name:
                runs[-1][1].append(m[r["horizon"]])
            else:
                runs.append((name, [m[r["horizon"]]]))
        out.append(
            f"{prefix}per-horizon oracle: "
            + "; ".join(f"{n} at {_span(ms)}" for n, ms in runs)
            + "."
        )
        diverged = scope_rob.loc[scope_rob["n_diverged"] > 0, "candidate"].tolist()
        if diverged:
            more = f" and {len(diverged) - max_listed} more" if len(diverged) > max_listed else ""
            out.append(
                f"{prefix}diverged: {len(diverged)} candidate(s) at one or more horizons, "
                f"counted as infinite regret: {', '.join(diverged[:max_listed])}{more}."
            )
        missing = scope_rob.loc[scope_rob["n_missing"] > 0, "candidate"].tolist()
        if missing:
            more = f" and {len(missing) - max_listed} more" if len(missing) > max_listed else ""
            out.append(
                f"{prefix}incomplete: {len(missing)} candidate(s) lack a result at some "
                f"horizon (failed or not run) and cannot be anytime-optimal: "
                f"{', '.join(missing[:max_listed])}{more}."
            )
        trend = in_scope(sens.trend).merge(
            best_fam[["family", "weights"]], on=["family", "weights"]
        )
        trend = trend.loc[trend["slope"].notna()]
        if len(trend):
            parts = [
                f"{r['family']} with {r['weights']} ∝ T^{r['slope']:+.2f}"
                for _, r in trend.iterrows()
            ]
            out.append(
                f"{prefix}optimal peak LR vs horizon T: "
                + ", ".join(parts)
                + " (least-squares slope of log optimal LR on log T)."
            )
    if plan:
        for kind in ("tokens", "flops"):
            planned, naive = plan.get(f"planned_{kind}"), plan.get(f"naive_{kind}")
            if planned and naive:
                out.append(
                    f"compute: the plan spends {_pct(planned / naive)} of the naive {kind} "
                    f"({planned:.3g} vs {naive:.3g}; naive = one run per setting and horizon)."
                )
                break
    return out
