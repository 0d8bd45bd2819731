"""When a lineage has diverged: a non-finite loss, or a smoothed loss far above the start.

A single minibatch loss is too noisy to compare with the first one (small batches on the
linreg testbed routinely spike to several times the mean), so the rule compares an EMA of the
train loss (decay 0.9, debiased) with ``factor`` times the first loss. A real blow-up (inf/NaN
or a loss growing geometrically) trips it within a few steps.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DivergenceMonitor"]


class DivergenceMonitor:
    def __init__(self, factor: float, decay: float = 0.9) -> None:
        self.factor = factor
        self.decay = decay
        self.first: float | None = None
        self.ema = 0.0
        self.count = 0

    def diverged(self, loss: float) -> bool:
        """Feed one train loss; True if the lineage should stop as diverged."""
        if not math.isfinite(loss):
            return True
        if self.first is None:
            self.first = loss
        self.count += 1
        self.ema = self.decay * self.ema + (1 - self.decay) * loss
        smoothed = self.ema / (1 - self.decay**self.count)
        return smoothed > self.factor * self.first

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first, "ema": self.ema, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.first, self.ema, self.count = state["first"], state["ema"], state["count"]
