"""The unit of execution handed from the planner to a trial: one :class:`LineageSpec`.

A lineage is one training trajectory answering one setting at several horizons (DESIGN.md):
- a horizon-free setting (constant, polynomial, inverse_sqrt, schedule-free) runs once to the
  longest horizon, branch ``"main"``, evaluated at every horizon;
- a horizon-dependent setting (cosine, linear) runs once per horizon, branch ``"main"``;
- a WSD setting runs a constant-LR trunk (branch ``"trunk"``) to the latest decay start and forks a
  cooldown branch ``"h=<T>"`` at each horizon's decay start.

Steps count optimizer updates. A curve's ``step`` for a train row is the update index ``t``
(loss measured before that update, ``lr`` the one it used); for an eval row it is the number of
updates done. So eval at ``step == T`` is the end of a ``T``-step horizon.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AveragerSpec", "LineageSpec", "canonical_hash"]


def canonical_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (sorted keys): identity, never a hand-made name."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@dataclass(frozen=True, kw_only=True)
class AveragerSpec:
    """One weight averager riding along a lineage.

    Attributes:
        kind: registry name in :mod:`trials.averaging` (``ema``, ``swa``, ``lawa``, ``poly``).
        params: its parameters (e.g. ``{"half_life": 0.05}``: a float < 1 is a fraction of the
            steps so far, an int >= 1 a number of steps).
        label: the ``weights`` value its evaluations carry (e.g. ``"ema@0.05"``); unique per lineage.
        eval_at: if set, evaluate this averager only at that step (a tail/SWA window defined as a
            fraction of one horizon is instantiated once per horizon and read at that horizon).
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    eval_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class LineageSpec:
    """Everything a trial needs; plain values only, so it pickles and hashes canonically."""

    lineage_id: str
    setting_id: str
    workload: str
    workload_params: dict[str, Any]
    optimizer: str
    optimizer_params: dict[str, Any]
    peak_lr: float
    schedule: str | None  # None for schedule-free optimizers
    schedule_params: dict[str, Any]
    warmup: int
    batch_size: int
    seed: int
    horizons: tuple[int, ...]  # sorted ascending, in steps
    eval_steps: tuple[int, ...]  # sorted ascending; always includes every horizon
    averagers: tuple[AveragerSpec, ...] = ()
    checkpoint_every: int = 0  # 0: only at forks and the end
    log_every: int = 1  # train rows every n updates
    divergence_factor: float = 5.0  # smoothed loss above factor x its running mean = diverged
    device: str = "cpu"

    @property
    def max_horizon(self) -> int:
        return max(self.horizons)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageSpec:
        data = dict(data)
        data["averagers"] = tuple(AveragerSpec(**a) for a in data.get("averagers", ()))
        data["horizons"] = tuple(data["horizons"])
        data["eval_steps"] = tuple(data["eval_steps"])
        return cls(**data)
