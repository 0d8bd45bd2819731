"""LAWA, latest weight averaging (Kaddour 2022; Sanyal et al. 2023; docs/equations.md §6.3).

A snapshot is taken after every ``every``-th update (steps ``every, 2 every, ...``) into a ring
buffer of ``k`` copies; the average is the uniform mean of the snapshots in the buffer — the
last ``k``, or all of them while fewer than ``k`` have been taken. The mean is computed from the
buffer when read (no running sum, so no rounding drift: docs/equations.md §6.3). Per step the cost
is one ``torch._foreach_copy_`` on snapshot steps and nothing otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from trials.averaging._base import Averager, Placer, check_int

__all__ = ["LAWA"]


@dataclass(kw_only=True, eq=False)
class LAWA(Averager):
    """Mean of the last ``k`` snapshots taken every ``every`` steps (label ``lawa@<k>x<every>``)."""

    kind: ClassVar[str] = "lawa"
    k: int
    every: int = 1
    _ring: list[list[torch.Tensor] | None] = field(default_factory=list, init=False, repr=False)
    _head: int = field(default=0, init=False)  # slot the next snapshot goes to

    def __post_init__(self) -> None:
        check_int("k", self.k, 1)
        check_int("every", self.every, 1)
        self._ring = [None] * self.k

    def label_suffix(self) -> str:
        return f"{self.k}x{self.every}"

    def wants(self, step: int) -> bool:
        return step % self.every == 0

    def update(self, step: int, src: list[torch.Tensor]) -> None:
        slot = self._ring[self._head]
        if slot is None:
            self._ring[self._head] = [t.detach().clone() for t in src]
        else:
            torch._foreach_copy_(slot, src)
        self._head = (self._head + 1) % self.k
        self.count += 1

    def snapshots(self) -> list[list[torch.Tensor]]:
        """The snapshots in the buffer, oldest first."""
        filled = min(self.count, self.k)
        order = range(filled) if self.count < self.k else [(self._head + i) % self.k for i in range(self.k)]
        return [self._ring[i] for i in order]  # type: ignore[misc]

    def weights(self) -> list[torch.Tensor]:
        snaps = self.snapshots()
        if not snaps:
            raise RuntimeError(f"averager {self.label()!r} has no data yet")
        total = [t.clone() for t in snaps[0]]  # a fresh list: the buffer is never modified
        for snap in snaps[1:]:
            torch._foreach_add_(total, snap)
        torch._foreach_div_(total, float(len(snaps)))
        return total

    def _tensor_state(self) -> dict[str, Any]:
        return {"ring": list(self._ring), "head": self._head}

    def _load_tensor_state(self, state: dict[str, Any], place: Placer) -> None:
        ring = state["ring"]
        if len(ring) != self.k:
            raise ValueError(f"LAWA state has {len(ring)} slots, expected k={self.k}")
        self._ring = [None if slot is None else place(slot) for slot in ring]
        self._head = int(state["head"])
