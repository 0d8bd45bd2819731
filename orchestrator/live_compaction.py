"""Compaction while a sweep runs: the lineages that have finished are merged every
:data:`INTERVAL_S` seconds, so a long sweep's store never holds more than a minute's worth of
loose fragments and queries on it stay fast (``docs/store-scaling.md``).

Only lineages whose trial reported them finished are merged, so no trial is writing them (the
condition ``orchestrator/store/compaction.py`` sets). It runs only for a sweep that had no
merged parts when the run started: then every part in the store holds finished lineages only,
and no trial's truncation (which rewrites a part holding its own stale rows) can race it. A
sweep resumed over older parts is compacted at the end of the run, as before.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

__all__ = ["INTERVAL_S", "LiveCompactor"]

log = logging.getLogger(__name__)

INTERVAL_S = float(os.environ.get("LRSWEEP_COMPACT_EVERY_S", "60"))


class LiveCompactor:
    """Collects finished lineages; :meth:`finished` merges them once the interval has passed."""

    def __init__(self, store: Any, sweep_id: str, *, interval_s: float | None = None) -> None:
        self.store, self.sweep_id = store, sweep_id
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.pending: list[str] = []
        self.last = time.monotonic()
        self.enabled = not any(
            p.parts for table in ("curves", "runs") for p in store.snapshot(table, sweep_id).partitions.values()
        )
        self.merged = 0

    def finished(self, lineage_id: str) -> None:
        if not self.enabled:
            return
        self.pending.append(lineage_id)
        if time.monotonic() - self.last < self.interval_s:
            return
        batch, self.pending = self.pending, []
        try:
            merged = self.store.compact(self.sweep_id, lineages=batch)
            self.merged += sum(merged.values())
        except Exception as exc:  # noqa: BLE001 - the end-of-run compaction catches up
            log.warning("compaction during the run failed (the end of the run retries it): %s", exc)
        self.last = time.monotonic()
