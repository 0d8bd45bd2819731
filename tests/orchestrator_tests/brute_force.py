"""The fewest optimizer steps a sweep needs, counted by brute force, independently of the planner.

Used by the planner's property test and by ``benchmarks/planning.py``.
"""

from __future__ import annotations

import json

from orchestrator.planner import expand_settings

__all__ = ["brute_force_minimum"]


def brute_force_minimum(spec) -> int:
    """The fewest optimizer steps answering every setting x horizon, counted independently of the
    planner: each setting x horizon run is a set of (trajectory, update) identities — two runs
    share an update when the same model, data, optimizer and LR history produce it — and the
    minimum is the size of their union (docs/equations.md §5.5 for the decay start). Each run is a
    few intervals of updates per trajectory; the union is counted per trajectory."""
    spans: dict[tuple, list[tuple[int, int]]] = {}
    for s in expand_settings(spec):
        t = s.trial
        base = (t.workload, json.dumps(t.workload_params, sort_keys=True), t.optimizer,
                json.dumps(t.optimizer_params, sort_keys=True), t.peak_lr, t.warmup, t.batch_size, t.seed)
        p = t.schedule_params
        for h in t.horizons:
            if t.schedule is None:
                trunk = ("sf",)
            elif t.schedule in ("constant", "wsd"):
                trunk = ("constant",)
            elif t.schedule in ("cosine", "linear"):
                trunk = (t.schedule, p["final_fraction"], h)
            else:
                trunk = (t.schedule, json.dumps(p, sort_keys=True))
            if t.schedule == "wsd":
                start = max(t.warmup, h - round(p["cooldown_fraction"] * h))
                spans.setdefault((base, trunk), []).append((0, start))
                cooldown = ("cooldown", start, h, p["cooldown_shape"], p["final_fraction"])
                spans.setdefault((base, trunk, cooldown), []).append((start, h))
            else:
                spans.setdefault((base, trunk), []).append((0, h))
    total = 0
    for intervals in spans.values():
        end = None
        for a, b in sorted(intervals):
            if end is None or a > end:
                total += b - a
                end = b
            elif b > end:
                total += b - end
                end = b
    return total
