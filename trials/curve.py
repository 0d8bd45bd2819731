"""Curve rows and the segments a lineage reports them in.

A segment is every row of one branch between two checkpoints: train rows for updates
``start <= t < end`` and eval rows at ``start < e <= end`` (plus ``e = 0`` in a branch's first
segment). Segment keys are a pure function of (branch, start, end), so a lineage resumed from
its last checkpoint regenerates exactly the segments after it, under the same keys, and a
store keyed on them overwrites instead of duplicating.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["CurveRow", "Segment", "Reporter", "CURVE_COLUMNS"]

CURVE_COLUMNS = ("lineage_id", "branch", "step", "tokens", "flops", "lr", "split", "weights", "loss")

CurveRow = dict[str, Any]


@dataclass
class Segment:
    lineage_id: str
    branch: str
    start: int
    end: int
    rows: list[CurveRow] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.start:010d}-{self.end:010d}"


Reporter = Callable[[Segment], None]
