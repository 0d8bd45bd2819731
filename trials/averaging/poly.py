"""Polynomial-decay averaging (Shamir & Zhang 2013; docs/equations.md §6.4).

``a <- (1 - w_t) a + w_t theta`` with ``w_t = (q + 1)/(t + q + 1)``, where ``t`` is the number of
iterates already absorbed (``count``): the first update has ``t = 0``, ``w = 1`` and copies theta.
After iterates ``j = 0 .. N`` (the j-th absorbed at ``t = j``) the weight of iterate ``j`` is
``w_j prod_{i>j} (1 - w_i) = Gamma(j+q+1)/Gamma(j+1) / Z`` — proportional to ``(j+1)(j+2)...(j+q)``
for integer ``q``: ``q = 0`` is the uniform mean, ``q = 1`` weights ``∝ j + 1``. It takes every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from trials.averaging._base import RunningAverage, format_number, is_number
from trials.errors import ConfigError

__all__ = ["Poly"]


@dataclass(kw_only=True, eq=False)
class Poly(RunningAverage):
    """Polynomial averaging of order ``q >= 0``; weights of iterate ``j`` grow like ``j^q``."""

    kind: ClassVar[str] = "poly"
    q: float

    def __post_init__(self) -> None:
        if not is_number(self.q) or self.q < 0:
            raise ConfigError("averagers.q", self.q, "a number >= 0")

    def label_suffix(self) -> str:
        return format_number(self.q)

    def wants(self, step: int) -> bool:
        return True

    def update(self, step: int, src: list[torch.Tensor]) -> None:
        self._absorb(src, (self.q + 1.0) / (self.count + self.q + 1.0))
