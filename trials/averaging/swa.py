"""Tail / stochastic weight averaging: the uniform mean of the iterates after a start step
(Izmailov et al. 2018; docs/equations.md §6.2).

``a <- a + (theta - a)/(n + 1)``, ``n`` the iterates absorbed so far. It takes the iterates after
steps ``start + every, start + 2 every, ...``: the weights produced by the updates *after* step
``start``. So ``start = T - W`` with ``every = 1`` averages exactly the last ``W`` iterates of a
``T``-step run, and ``start = 0`` averages every iterate (the same as ``poly`` with ``q = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from trials.averaging._base import RunningAverage, check_int

__all__ = ["SWA"]


@dataclass(kw_only=True, eq=False)
class SWA(RunningAverage):
    """Uniform average of the iterates after ``start + k every`` updates, ``k = 1, 2, ...``."""

    kind: ClassVar[str] = "swa"
    start: int = 0
    every: int = 1

    def __post_init__(self) -> None:
        check_int("start", self.start, 0)
        check_int("every", self.every, 1)

    def label_suffix(self) -> str:
        return str(self.start) if self.every == 1 else f"{self.start}/{self.every}"

    def wants(self, step: int) -> bool:
        return step > self.start and (step - self.start) % self.every == 0

    def update(self, step: int, src: list[torch.Tensor]) -> None:
        self._absorb(src, 1.0 / (self.count + 1))
