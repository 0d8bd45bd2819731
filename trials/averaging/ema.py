"""Exponential moving average with a half-life (docs/equations.md §6.1 and §5.7).

Two forms, chosen by ``half_life``:

- ``half_life >= 1``: a fixed half-life of ``h`` steps, ``delta = 2^(-1/h)``.
- ``0 < half_life < 1``: the anytime (fraction-of-time) form of Meterez et al. 2026
  (``olmo/train.py::EMA``), ``delta_t = 0.5^(G/(t+1))`` with ``G = 1/half_life``. We take
  ``t + 1 = step``, the number of updates completed, so the half-life is always
  ``half_life * step``: a fixed fraction of training so far (``half_life = 0.04`` is EMA-25).

Update: ``a_t = delta_t a_{t-1} + (1 - delta_t) theta_t``. **Warm start**: the first iterate the
averager sees is copied, ``a_1 = theta_1`` (docs/equations.md §6.1); no zero start, no debiasing.
With a fixed ``delta`` this gives
``a_T = delta^(T-1) theta_1 + (1 - delta) sum_{s=2..T} delta^(T-s) theta_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from trials.averaging._base import RunningAverage, format_number, is_number
from trials.errors import ConfigError

__all__ = ["EMA"]


@dataclass(kw_only=True, eq=False)
class EMA(RunningAverage):
    """EMA with ``half_life`` in steps (``>= 1``) or as a fraction of the steps so far (``< 1``)."""

    kind: ClassVar[str] = "ema"
    half_life: float

    def __post_init__(self) -> None:
        if not is_number(self.half_life) or self.half_life <= 0:
            raise ConfigError(
                "averagers.half_life",
                self.half_life,
                "a number > 0 (< 1: a fraction of the steps so far; >= 1: a number of steps)",
            )

    @property
    def anytime(self) -> bool:
        """True for the fraction-of-time form (``half_life < 1``)."""
        return self.half_life < 1

    def decay(self, step: int) -> float:
        """``delta`` used for the iterate after ``step`` updates."""
        if self.anytime:
            return 0.5 ** (1.0 / (self.half_life * step))  # 0.5^(G/(t+1)), G = 1/fraction, t+1 = step
        return 2.0 ** (-1.0 / self.half_life)

    def label_suffix(self) -> str:
        return format_number(self.half_life)

    def wants(self, step: int) -> bool:
        return True

    def update(self, step: int, src: list[torch.Tensor]) -> None:
        self._absorb(src, 1.0 - self.decay(step))
