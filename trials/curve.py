"""The columns of a curve row (what :mod:`trials.lineage` reports and the store keeps).

``step`` is the update index ``t`` for a train row (loss before that update, ``lr`` the one it
used) and the number of updates done for an eval row; ``weights`` is ``raw``, ``x`` (the
evaluation point of a schedule-free optimizer) or an averager's label. How rows are grouped
into keyed segments is :mod:`trials.sinks`' business.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CURVE_COLUMNS", "CurveRow"]

CURVE_COLUMNS = ("lineage_id", "branch", "step", "tokens", "flops", "lr", "split", "weights", "loss")

CurveRow = dict[str, Any]
