"""Search: Optuna-driven tuning of a sweep's numeric axes on Ray Tune, with horizon-aware stopping.

The ``[search]`` section (:mod:`orchestrator.search.spec`) names ranges; ``lrsweep run`` runs the
grid, then :func:`orchestrator.search.runner.run_search` asks an Optuna study (kept in the store,
:mod:`orchestrator.search.study`) for settings and trains each as lineages through the same
trainable and store as the grid (:mod:`orchestrator.search.job`), judging them at horizon rungs
(:mod:`orchestrator.search.rungs`). Importing this package imports neither ray nor optuna.
"""

from __future__ import annotations

from typing import Any

from orchestrator.search.spec import OBJECTIVES, SAMPLERS, STOPPING, Range, SearchSpec

__all__ = ["OBJECTIVES", "SAMPLERS", "STOPPING", "Range", "SearchSpec", "run_search"]


def __getattr__(name: str) -> Any:  # the driver imports ray and optuna: only when asked for
    if name == "run_search":
        from orchestrator.search.runner import run_search

        return run_search
    raise AttributeError(name)
