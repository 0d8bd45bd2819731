"""When a lineage has diverged: a non-finite train loss, a smoothed loss that stays far above
the lineage's own running mean, or losses exploding far above where the lineage started.

Per update ``t`` with train loss ``l_t`` (``f`` = ``factor``, 5 by default):

1. ``l_t`` is inf or NaN: diverged at once.
2. **Level.** ``s_t`` = debiased EMA of the losses with decay 0.99 (about the last 100
   updates), ``m_t`` = mean of ``l_1 .. l_t``: diverged once ``s_t > f m_t`` for 5
   consecutive updates. A loss that starts doubling every update after a healthy phase trips
   11-15 updates later (growing 1.2x: 35-45); a slow drift upwards trips too, later.
3. **Explosion.** ``b`` = the lineage's *scale*: the eval loss of its initial weights on the
   fixed held-out set, given by the training loop (:func:`trials._lineage_steps._build`), or,
   where none is given, the largest of the first 10 losses. Diverged once ``l_t > f^3 b`` for 5
   consecutive updates. This catches a learning rate that blows up from the very first
   updates, before the running mean is worth anything (a mean that already contains the
   explosion never looks small): a loss growing 5x per update from the first one trips at
   update 17, doubling at 20, 1.2x at 40 (float32 would overflow at 56, 128, 487).
   The scale is measured before any update, so an explosion that starts inside the warmup
   cannot raise it: nano char-GPT at peak LR 10 with warmup 10 goes 4.4 -> 28 -> 75 -> ... ->
   2,268 by update 9, which made the first ten losses' maximum 3,585 and a threshold of 448k
   that the run never reached; against its initial eval loss (4.2) it trips at update 10.

Why these and not "``f`` × the first loss" (the previous rule): a single minibatch loss is a
noisy reference. With batch 1 on the linreg testbed a loss is the square of one Gaussian
residual, often several times below the mean, and ``examples/linreg_theory.toml`` marked
healthy lineages diverged at step 2. The running mean averages the noise out, and never falls
below a healthy, decreasing loss. The slow EMA absorbs the testbed's transient bursts: at a
constant LR of 0.3 its batch-1 SGD has spikes where a 10-update EMA sits at 5-14x the running
mean for up to 15 updates while the excess risk rises 5x and recovers (that EMA, with the same
patience, marked 3 of the 24 example lineages diverged within 64,000 updates); the 100-update
EMA stays under 2.7x. Rule 3's reference is a maximum (rarely far below the start level,
unlike one loss or a short mean), its threshold ``f^3`` (125x) is far above any burst, and the
patience lets a single outlier pass. Over the 24 lineages at 64,000 updates and 200 simulated
flat batch-1 sequences, ``benchmarks/divergence_rule.py`` finds no false alarm (the first-loss
rule: 8 of 24, 60%).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DivergenceMonitor"]


class DivergenceMonitor:
    """Feed it every train loss; it says when the lineage should stop as diverged.

    Args:
        factor: how far above its reference a loss may rise (> 1); see the module docstring.
        decay: the EMA decay of the smoothed loss (rule 2).
        patience: consecutive updates a rule must hold before it trips (rules 2 and 3).
        start: how many first losses define the start level of rule 3 when no ``scale`` is given.
        scale: the loss of the initial weights (rule 3's reference); ``None``, or a value that is
            not finite and positive, falls back to the largest of the first ``start`` losses.
    """

    def __init__(self, factor: float, decay: float = 0.99, patience: int = 5, start: int = 10,
                 scale: float | None = None) -> None:
        self.factor = factor
        self.decay = decay
        self.patience = patience
        self.start = start
        self.scale = scale if scale is not None and math.isfinite(scale) and scale > 0 else None
        self.ema = 0.0  # biased EMA of the losses
        self.total = 0.0  # sum of the losses
        self.count = 0
        self.start_max = 0.0  # largest of the first `start` losses
        self.level_streak = 0  # consecutive updates with s_t > factor * m_t
        self.explosion_streak = 0  # consecutive updates with l_t > factor^3 * start_max

    def diverged(self, loss: float) -> bool:
        """Feed one train loss; True if the lineage should stop as diverged."""
        if not math.isfinite(loss):
            return True
        self.count += 1
        self.total += loss
        self.ema = self.decay * self.ema + (1 - self.decay) * loss
        if self.count <= self.start:
            self.start_max = max(self.start_max, loss)
        smoothed = self.ema / (1 - self.decay**self.count)
        mean = self.total / self.count
        if not (math.isfinite(smoothed) and math.isfinite(mean)):  # finite losses, overflowed sums
            return True
        level = mean > 0 and smoothed > self.factor * mean
        cube = self.factor * self.factor * self.factor  # f*f*f: inf, never an error
        if self.scale is not None:
            explosion = loss > cube * self.scale
        else:
            explosion = self.count > self.start and self.start_max > 0 and loss > cube * self.start_max
        self.level_streak = self.level_streak + 1 if level else 0
        self.explosion_streak = self.explosion_streak + 1 if explosion else 0
        return max(self.level_streak, self.explosion_streak) >= self.patience

    def state_dict(self) -> dict[str, Any]:
        """Plain floats and ints: restoring them continues the rule exactly."""
        state = {"ema": self.ema, "total": self.total, "count": self.count, "start_max": self.start_max,
                 "level_streak": self.level_streak, "explosion_streak": self.explosion_streak}
        if self.scale is not None:
            state["scale"] = self.scale
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "total" not in state:  # written by the first-loss rule: only its first loss carries over
            self.__init__(self.factor, self.decay, self.patience, self.start, self.scale)  # type: ignore[misc]
            first = state.get("first")
            if first is not None:
                self.diverged(float(first))
            return
        self.ema, self.total = float(state["ema"]), float(state["total"])
        self.count, self.start_max = int(state["count"]), float(state["start_max"])
        self.level_streak, self.explosion_streak = int(state["level_streak"]), int(state["explosion_streak"])
        if state.get("scale") is not None:  # absent in states written before the scale existed
            self.scale = float(state["scale"])
