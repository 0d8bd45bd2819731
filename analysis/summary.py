"""The report's answer in words: plain-English findings, one sentence each, deterministic.

Per scope (prefixed ``[workload model_size]`` when there are several):

1. the headline: the anytime-optimal candidate (horizon-free; :mod:`analysis.definitions`) and
   its worst-case and mean regret against the per-horizon tuned envelope of horizon-aware
   candidates — called a *winner* only when its lead over the runner-up exceeds the seed noise
   (:mod:`analysis.noise`); with one seed it is "the best by mean" and every comparison n/a;
2. the best horizon-aware setting, and which horizon-aware candidate makes the envelope where;
3. the best anytime candidate of each family;
4. the noise the sweep measured (or that it measured none);
5. the tuning budget per family in a sweep with a search, with a warning when the families
   compared differ by more than 2× (:mod:`analysis.budget`); diverged candidates, candidates a
   search stopped early (compared at the horizons they reached, never called failed) and
   incomplete ones;
6. grid edges: optima at the edge of an axis, and which axis to widen (:mod:`analysis.grid`);
7. the optimal-LR trend against the horizon, only from ≥ 3 interior optima.

Then, with a ``plan``, the compute spent against the naive one-run-per-(setting, horizon).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

from analysis.anytime import (
    AnytimeAnswer,
    anytime_answers,
    anytime_optimal,
    robustness,
)
from analysis.budget import budget_sentences
from analysis.grid import MIN_TREND_POINTS, EdgeWarning, edge_sentences, edge_warnings, lr_trend
from analysis.horizons import SCOPE, envelope, horizon_multiples, scope_names, select_horizons
from analysis.noise import NOISE_RULE
from analysis.units import pct3, si

__all__ = ["grid_warnings", "optima", "summary_sentences"]


def _pct(x: float) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞ (diverged)"
    v = 100.0 * x
    if v == 0.0:
        return "0%"
    if abs(v) >= 1000:  # never "6.1e+04%" nor five digits: 3 significant digits
        return pct3(x)
    return f"{v:.0f}%" if abs(v) >= 10 else f"{v:.2g}%"


def _mult(x: float) -> str:
    return f"{x:.3g}"


def _span(mults: Sequence[float]) -> str:
    lo, hi = min(mults), max(mults)
    return f"{_mult(lo)}×" if lo == hi else f"{_mult(lo)}–{_mult(hi)}×"


def _in_scope(frame: pd.DataFrame, scope: tuple[str, ...]) -> pd.DataFrame:
    return frame.loc[(frame[SCOPE].astype(str) == list(scope)).all(axis=1)]


def optima(table: pd.DataFrame, answers: list[AnytimeAnswer] | None = None) -> pd.DataFrame:
    """The optima the summary names, as rows (``SCOPE``, ``candidate``, ``role``): the headline,
    the best horizon-aware setting, each family's best anytime candidate and the envelope at
    every horizon — the ones whose position on the grid is checked."""
    answers = answers if answers is not None else anytime_answers(table, _no_seeds(table))
    mults, unit = horizon_multiples(table)
    rows = []
    for ans in answers:
        scope = dict(zip(SCOPE, ans.scope, strict=True))
        if ans.best is not None:
            role = "anytime-optimal" if ans.is_winner else "best anytime"
            rows.append({**scope, "candidate": ans.best["candidate"], "role": role})
        if ans.best_aware is not None:
            rows.append(
                {**scope, "candidate": ans.best_aware["candidate"], "role": "best horizon-aware"}
            )
    for r in anytime_optimal(table, by="family").itertuples(index=False):
        rows.append(
            {
                **{c: getattr(r, c) for c in SCOPE},
                "candidate": r.candidate,
                "role": f"best {r.family}",
            }
        )
    env = envelope(table).merge(mults, on=[*SCOPE, "horizon"], how="left")
    short = "Chinchilla" if unit == "Chinchilla" else "shortest"
    for r in env.loc[env["candidate"] != ""].itertuples(index=False):
        rows.append(
            {
                **{c: getattr(r, c) for c in SCOPE},
                "candidate": r.candidate,
                "role": f"envelope at {_mult(r.multiple)}× {short}",
            }
        )
    return pd.DataFrame(rows, columns=[*SCOPE, "candidate", "role"])


def _no_seeds(table: pd.DataFrame) -> pd.DataFrame:
    cols = {c: pd.Series(dtype=object) for c in (*SCOPE, "candidate", "kind")}
    return pd.DataFrame(
        {**cols, "horizon": pd.Series(dtype="int64"), "seed": pd.Series(dtype="int64"),
         "loss": pd.Series(dtype=float)}
    )  # fmt: skip


def grid_warnings(
    table: pd.DataFrame, answers: list[AnytimeAnswer] | None = None
) -> list[EdgeWarning]:
    """Edge-of-grid warnings for :func:`optima` (what the CLI prints after a fit or report)."""
    return edge_warnings(table, optima(table, answers))


def _headline(ans: AnytimeAnswer, m: pd.Series, span: str, seeds_given: bool) -> list[str]:
    out = []
    if ans.basis != "horizon-aware":
        out.append(
            "no horizon-aware candidate (cosine, linear, WSD) in this scope: regret is against the "
            "per-horizon best of all candidates, not a tuned envelope."
        )
    if ans.best is None:
        out.append(
            "no anytime (horizon-free) candidate in this scope: nothing can be anytime-optimal; "
            "the best horizon-aware setting is below."
        )
        return out
    b = ans.best
    tail = "" if b["complete"] else f" (missing at {b['n_missing']} horizon(s))"
    where = f"worst at {_mult(m[b['worst_horizon']])}×" if b["worst_horizon"] in m.index else ""
    reg = (
        f"worst-case regret {_pct(b['worst_regret'])} against the tuned envelope over {span} "
        f"(mean {_pct(b['mean_regret'])}{', ' + where if where else ''}){tail}"
    )
    if ans.runner_up is None:
        out.append(
            f"anytime-optimal: {b['candidate']}, the only anytime candidate with a result at every "
            f"horizon; {reg}."
        )
        return out
    r, lead = ans.runner_up, ans.lead
    versus = f"runner-up {r['candidate']} (worst-case regret {_pct(r['worst_regret'])})"
    if ans.max_seeds <= 1:
        out.append(
            f"best anytime candidate by mean: {b['candidate']}, {reg}; {versus}; "
            "n/a (1 seed): no difference can be tested, so no winner is declared."
        )
    elif lead is None or lead.verdict.startswith("n/a") or not seeds_given:
        why = (
            lead.verdict if lead is not None and seeds_given else "n/a (per-seed losses not given)"
        )
        out.append(f"best anytime candidate by mean: {b['candidate']}, {reg}; {versus}; {why}.")
    elif lead.significant:
        out.append(
            f"anytime-optimal: {b['candidate']}, {reg}; its lead over the {versus} is "
            f"significant: {lead.text(scale=100, unit=' pt')} in per-seed worst-case regret."
        )
    else:
        out.append(
            f"best anytime candidate by mean: {b['candidate']}, {reg}; not a winner: its lead over "
            f"the {versus} is within noise ({lead.text(scale=100, unit=' pt')})."
        )
    return out


def summary_sentences(
    table: pd.DataFrame,
    seeds: pd.DataFrame | None = None,
    *,
    horizons: Iterable[int] | None = None,
    plan: dict | None = None,
    max_listed: int = 5,
) -> list[str]:
    """Plain-English findings, one sentence each, deterministic in content and order.

    Args:
        table: from :func:`analysis.horizons.loss_table`.
        seeds: from :func:`analysis.horizons.seed_losses` (for the paired tests); without it
            every comparison reads "n/a (per-seed losses not given)".
        horizons: restrict to these horizons (steps).
        plan: the planner's summary (``planned_tokens``, ``naive_tokens``, …).
        max_listed: at most this many names in a list sentence.
    """
    table = select_horizons(table, horizons, None)
    seeds_given = seeds is not None
    seeds = seeds if seeds is not None else _no_seeds(table)
    if horizons is not None:
        seeds = seeds.loc[seeds["horizon"].isin(set(table["horizon"]))]
    mults, unit = horizon_multiples(table)
    answers = anytime_answers(table, seeds)
    rob = robustness(table)
    fam = anytime_optimal(table, by="family")
    env = envelope(table)
    trend = lr_trend(table)
    warnings = grid_warnings(table, answers)
    scopes = scope_names(table)
    out: list[str] = []
    for scope, ans in zip(scopes, answers, strict=True):
        prefix = f"[{' '.join(s for s in scope if s)}] " if len(scopes) > 1 else ""
        m = _in_scope(mults, scope).set_index("horizon")["multiple"]
        span = f"{_span(list(m))} {unit}"
        out += [prefix + s for s in _headline(ans, m, span, seeds_given)]
        if ans.best_aware is not None:
            a = ans.best_aware
            out.append(
                f"{prefix}best horizon-aware setting: {a['candidate']}, worst-case regret "
                f"{_pct(a['worst_regret'])} against the envelope (mean {_pct(a['mean_regret'])})."
            )
        runs: list[tuple[str, list[float]]] = []
        for r in _in_scope(env, scope).itertuples(index=False):
            name = r.candidate or "none (none finite)"
            if runs and runs[-1][0] == name:
                runs[-1][1].append(m[r.horizon])
            else:
                runs.append((name, [m[r.horizon]]))
        label = (
            "envelope (best horizon-aware per horizon)"
            if ans.basis == "horizon-aware"
            else "per-horizon best"
        )
        out.append(f"{prefix}{label}: " + "; ".join(f"{n} at {_span(ms)}" for n, ms in runs) + ".")
        best_fam = _in_scope(fam, scope)
        if len(best_fam) > 1:
            parts = [
                f"{r['family']} {_pct(r['worst_regret'])} [{r['candidate']}]"
                for _, r in best_fam.iterrows()
            ]
            out.append(
                f"{prefix}best anytime per family, worst-case regret against the envelope: "
                + "; ".join(parts)
                + "."
            )
        if ans.max_seeds <= 1:
            out.append(
                f"{prefix}noise: one seed per setting — every comparison is n/a (1 seed) and no "
                "difference is called significant; run ≥ 2 seeds (3 or more to detect small gaps)."
            )
        else:
            out.append(
                f"{prefix}noise: up to {ans.max_seeds} seeds per setting; comparisons are paired by "
                f"seed ({NOISE_RULE})."
            )
        out += budget_sentences(table, scope, prefix)
        scope_rob = _in_scope(rob, scope)
        stopped = _stopped(_in_scope(table, scope))
        scope_rob = scope_rob.assign(
            n_stopped_only=scope_rob["n_missing"].where(scope_rob["candidate"].isin(stopped), 0),
            n_missing=scope_rob["n_missing"].where(~scope_rob["candidate"].isin(stopped), 0),
        )
        for column, text in (
            ("n_diverged", "diverged: {n} candidate(s) at one or more horizons, counted as "
             "infinite regret: {names}."),
            ("n_stopped_only", "stopped early by the search: {n} candidate(s), compared only at "
             "the horizons they reached (not failed; a setting the search stopped cannot be "
             "anytime-optimal over horizons it never trained to): {names}."),
            ("n_missing", "incomplete: {n} candidate(s) lack a result at some horizon (failed or "
             "not run) and cannot be anytime-optimal: {names}."),
        ):  # fmt: skip
            names = scope_rob.loc[scope_rob[column] > 0, "candidate"].tolist()
            if names:
                more = f" and {len(names) - max_listed} more" if len(names) > max_listed else ""
                out.append(
                    prefix + text.format(n=len(names), names=", ".join(names[:max_listed]) + more)
                )
        out += edge_sentences(
            [w for w in warnings if w.scope == tuple(scope)], prefix_scope=bool(prefix)
        )
        out += _trend_sentences(_in_scope(trend, scope), _in_scope(rob, scope), prefix)
    if plan:
        for kind in ("tokens", "flops"):
            planned, naive = plan.get(f"planned_{kind}"), plan.get(f"naive_{kind}")
            if planned and naive:
                out.append(
                    f"compute: the plan spends {_pct(planned / naive)} of the naive {kind} "
                    f"({si(planned)} vs {si(naive)}; naive = one run per setting and horizon)."
                )
                break
        searched = plan.get("search_tokens")
        if searched and plan.get("planned_tokens"):
            total = plan["planned_tokens"] + searched
            out.append(
                f"compute of the search: its trials trained {si(searched)} tokens more, "
                f"{si(total)} in all ({total / plan['planned_tokens']:.3g}× the grid's plan)."
            )
    return out


def _stopped(table: pd.DataFrame) -> set[str]:
    """Candidates a search stopped before some horizon (and never failed or pending there)."""
    if "n_stopped" not in table.columns:
        return set()
    missing = table.loc[table["n_seeds"].eq(0) | table["loss"].isna()]
    by_cand = missing.groupby("candidate")
    only_stopped = by_cand["n_stopped"].min().gt(0) & by_cand["n_failed"].max().eq(0)
    return set(only_stopped[only_stopped].index)


def _trend_sentences(trend: pd.DataFrame, rob: pd.DataFrame, prefix: str) -> list[str]:
    """The optimal-LR trend of each family's best (member, weights), from interior optima only."""
    best = rob.groupby("family", sort=True).head(1)[["member", "weights"]]
    t = trend.merge(best, on=["member", "weights"])
    valid = t.loc[t["slope"].notna()]
    if len(valid):
        parts = [
            f"{r['member']} with {r['weights']} ∝ T^{r['slope']:+.2f} ({r['n_interior']} horizons)"
            for _, r in valid.iterrows()
        ]
        return [
            f"{prefix}optimal peak LR vs horizon T: "
            + ", ".join(parts)
            + " (least-squares slope of log optimal LR on log T, horizons whose optimum is "
            "inside the LR grid only)."
        ]
    if t.empty:
        return []
    most = int(t["n_interior"].max())
    return [
        f"{prefix}optimal peak LR vs horizon: not estimated — a trend needs the optimum inside "
        f"the LR grid at ≥ {MIN_TREND_POINTS} horizons; the best here has {most}."
    ]
