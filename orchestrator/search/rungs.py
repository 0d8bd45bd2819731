"""Objectives over horizons and successive halving at horizon rungs: pure functions.

A trial's *loss vector* ``L[k]`` is its loss at the sweep's k-th horizon (shortest first),
averaged over seeds, read where that horizon is answered: on a horizon-free trunk its eval at
step ``T_k`` (every eval point of a horizon-free trunk *is* the answer at that horizon), on a
WSD trunk the cooled branch ending at ``T_k``, for cosine/linear the lineage run for ``T_k``.
A diverged answer is ``+inf``.

Rung ``r`` is the point where a trial's answers at horizons ``0..r`` all exist. Its *rung value*
is the objective restricted to those horizons (``final``: ``L[r]``, the standard multi-fidelity
proxy; ``mean``: the mean of ``L[0..r]``; ``regret``: the worst relative regret
``L[k]/E[k] - 1`` against the envelope ``E[k]`` of every loss the search has seen at horizon k;
``pareto``: the vector ``L[0..r]``). Judged only at completed horizons, a horizon-dependent
schedule is never judged mid-schedule: its rung-r answer is the end of its own run.

Successive halving (Jamieson & Talwalkar 2016; the promotion rule of Li et al. 2020, "A
System for Massively Parallel Hyperparameter Tuning", as in Optuna's
``SuccessiveHalvingPruner``): with ``n`` values recorded at a rung (this trial's included),
a trial continues if its value is among the best ``max(1, n // eta)``. For ``pareto``
(several objectives, which Optuna cannot prune, optuna#3450) the order is non-dominated
sorting: a trial continues if its front is no worse than the front of the
``max(1, n // eta)``-th best trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "keep_at_rung",
    "keep_pareto",
    "loss_vector",
    "nondominated_ranks",
    "objective_values",
    "relative_regret",
    "rung_value",
]

INF = math.inf


def loss_vector(per_seed: Sequence[Sequence[float | None]]) -> list[float]:
    """Mean over seeds per horizon; a missing (diverged) answer makes that horizon ``+inf``."""
    n = len(per_seed[0])
    out = []
    for k in range(n):
        values = [row[k] for row in per_seed]
        if any(v is None or not math.isfinite(v) for v in values):
            out.append(INF)
        else:
            out.append(sum(values) / len(values))  # type: ignore[arg-type]
    return out


def relative_regret(losses: Sequence[float], envelope: Sequence[float]) -> float:
    """Worst relative regret ``max_k L[k]/E[k] - 1`` (``analysis.horizons.regret``'s definition)."""
    worst = -INF
    for loss, best in zip(losses, envelope, strict=True):
        if not math.isfinite(loss):
            return INF
        if math.isfinite(best):  # no finite loss seen there yet: nothing to regret against
            worst = max(worst, loss / best - 1.0)
    return worst if worst > -INF else 0.0


def rung_value(objective: str, losses: Sequence[float], envelope: Sequence[float] | None = None) -> list[float]:
    """The objective over the horizons in ``losses`` (the first ``r + 1``); a list (one value
    except for ``pareto``). ``envelope`` (same length) is needed for ``regret``."""
    if objective == "final":
        return [losses[-1]]
    if objective == "mean":
        return [INF if any(not math.isfinite(v) for v in losses) else sum(losses) / len(losses)]
    if objective == "regret":
        if envelope is None:
            raise ValueError("objective 'regret' needs the envelope")
        return [relative_regret(losses, envelope)]
    if objective == "pareto":
        return list(losses)
    raise ValueError(f"unknown objective {objective!r}")


def objective_values(objective: str, losses: Sequence[float], envelope: Sequence[float] | None = None) -> list[float]:
    """What the study is told for a finished trial: the rung value at the last horizon."""
    return rung_value(objective, losses, envelope)


def keep_at_rung(value: float, pool: Sequence[float], eta: int) -> bool:
    """Whether a trial with ``value`` continues, ``pool`` being every value recorded at this
    rung including its own (lower is better; ties continue)."""
    ranked = sorted(pool)
    k = max(1, len(ranked) // eta)
    return value <= ranked[k - 1]


def nondominated_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """The front index of every point (0 = non-dominated), minimising every coordinate."""
    n = len(points)

    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    ranks = [-1] * n
    left = set(range(n))
    front = 0
    while left:
        current = {i for i in left if not any(dominates(points[j], points[i]) for j in left if j != i)}
        for i in current:
            ranks[i] = front
        left -= current
        front += 1
    return ranks


def keep_pareto(vector: Sequence[float], pool: Sequence[Sequence[float]], eta: int) -> bool:
    """Successive halving by non-dominated sorting; ``pool`` includes ``vector`` itself."""
    ranks = nondominated_ranks(pool)
    mine = ranks[list(map(list, pool)).index(list(vector))]
    k = max(1, len(pool) // eta)
    return mine <= sorted(ranks)[k - 1]
