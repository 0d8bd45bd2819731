"""Bundles: small lineages the driver hands to one Ray Tune trial, to run one after another.

A Tune trial costs a fixed overhead (scheduling, an actor round trip, reports) of the order of
a tenth of a second; a lineage of a tiny model trains in about as long. Below a few seconds per
lineage that overhead dominates the sweep, so the driver groups such lineages into *bundles*
(``docs/store-scaling.md``). Each lineage of a bundle is still run by the same trial body
(``orchestrator/trainable.py``): its rows go to the store exactly as a lone lineage's, with its
own ``runs`` rows and status; a retried bundle re-plans each lineage against the store, so the
lineages it already finished cost one scoped read and are skipped.

A bundle is filled, in planning order, with lineages whose estimated run time is under
:data:`SMALL_S`, up to :data:`BUNDLE_S` of estimated time, and never so large that the sweep has
fewer than :data:`PER_SLOT` bundles per concurrent trial (load balance). Larger lineages run
alone. The estimate is deliberately crude — per update a fixed Python cost plus
``6 N tokens`` FLOPs at :data:`FLOPS_PER_S` — it only has to tell tiny from not tiny.
"""

from __future__ import annotations

from typing import Any

from trials.lineage_spec import LineageSpec

__all__ = ["BUNDLE_S", "SMALL_S", "estimate_s", "make_bundles"]

STEP_OVERHEAD_S = 5e-4  # per update of a tiny model: step, evals and bookkeeping (linreg: ~0.5-0.8 ms)
FLOPS_PER_S = 1e10  # one CPU thread, order of magnitude
SMALL_S = 2.0  # lineages estimated under this ride in bundles
BUNDLE_S = 10.0  # a bundle's estimated length at most
PER_SLOT = 4  # at least this many bundles per concurrent trial


def estimate_s(compute: Any) -> float:
    """A lineage's estimated training seconds from its planned compute (``planner.LineageCompute``)."""
    per_step = STEP_OVERHEAD_S + 6.0 * compute.n_params * compute.tokens_per_step / FLOPS_PER_S
    return float(compute.run_steps) * per_step


def make_bundles(todo: list[LineageSpec], plan: Any, slots: int, *, gpu: float = 0.0,
                 workers: int = 1) -> list[list[LineageSpec]]:
    """Group ``todo`` into bundles (most of one lineage) for ``slots`` concurrent trials.

    GPU trials and data-parallel ones (``workers`` > 1) are never bundled (their cost is not
    estimated by this rule).
    """
    if gpu > 0 or workers > 1 or len(todo) <= 1:
        return [[lin] for lin in todo]
    est = {lin.lineage_id: estimate_s(plan.compute_of(lin.lineage_id)) for lin in todo}
    small = [lin for lin in todo if est[lin.lineage_id] < SMALL_S]
    out: list[list[LineageSpec]] = [[lin] for lin in todo if est[lin.lineage_id] >= SMALL_S]
    if not small:
        return out
    total = sum(est[lin.lineage_id] for lin in small)
    target = min(BUNDLE_S, total / max(1, PER_SLOT * max(1, slots)))
    current: list[LineageSpec] = []
    length = 0.0
    for lin in small:
        if current and length + est[lin.lineage_id] > target:
            out.append(current)
            current, length = [], 0.0
        current.append(lin)
        length += est[lin.lineage_id]
    if current:
        out.append(current)
    return out
