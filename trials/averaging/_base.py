"""What every averager is: a running average of the weights, fed one iterate at a time.

Indexing (pinned by tests/trials_tests/test_averaging.py): ``step`` is the number of optimizer
updates completed, so the first call is ``update(1, ...)`` with the weights that update produced
(the initial weights, step 0, are never averaged). ``count`` is the number of iterates (LAWA:
snapshots) an averager has absorbed so far. Averagers never allocate per step: the first update
clones the iterate (warm start), later updates are one fused ``torch._foreach_*`` call over the
whole parameter list (docs/equations.md §6).

An averager holds hyperparameters (validated in ``__post_init__``, raising :class:`ConfigError`)
and its state; it does not know the parameters it averages. :class:`AveragerSet` owns those,
decides the storage device and dtype, and hands each averager a list of tensors already in that
device and dtype.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from trials.errors import ConfigError

__all__ = ["Averager", "Placer", "RunningAverage"]

# Turns a list of tensors from a state dict into tensors on the averages' device and dtype.
Placer = Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]


def format_number(value: float) -> str:
    """``200 -> "200"``, ``200.0 -> "200"``, ``0.05 -> "0.05"`` (repr: no precision lost)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def check_int(field_name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"averagers.{field_name}", value, f"an integer >= {minimum}")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(kw_only=True, eq=False)
class Averager:
    """Base class. Subclasses set ``kind``, declare hyperparameters as dataclass fields and
    implement ``label_suffix``, ``wants``, ``update``, ``weights`` and the tensor state."""

    kind: ClassVar[str] = ""
    count: int = field(default=0, init=False)

    def params(self) -> dict[str, Any]:
        """The hyperparameters as plain values (what an ``AveragerSpec.params`` holds)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def label(self) -> str:
        """Default evaluation label, ``"<kind>@<suffix>"`` (e.g. ``"ema@0.05"``)."""
        return f"{self.kind}@{self.label_suffix()}"

    def label_suffix(self) -> str:
        raise NotImplementedError

    @property
    def has_data(self) -> bool:
        """True once at least one iterate has been absorbed."""
        return self.count > 0

    def wants(self, step: int) -> bool:
        """Whether the iterate after ``step`` updates goes into this average."""
        raise NotImplementedError

    def update(self, step: int, src: list[torch.Tensor]) -> None:
        """Absorb ``src`` (the iterate after ``step`` updates); called only when ``wants(step)``."""
        raise NotImplementedError

    def weights(self) -> list[torch.Tensor]:
        """The averaged weights, one tensor per parameter. May alias internal state: read only."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Counters and tensors (aliased, as ``torch.nn.Module.state_dict`` does)."""
        return {"count": self.count, **self._tensor_state()}

    def load_state_dict(self, state: dict[str, Any], place: Placer) -> None:
        """Restore from :meth:`state_dict`; ``place`` copies tensors to the storage device/dtype."""
        self.count = int(state["count"])
        self._load_tensor_state(state, place)

    def _tensor_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_tensor_state(self, state: dict[str, Any], place: Placer) -> None:
        raise NotImplementedError


@dataclass(kw_only=True, eq=False)
class RunningAverage(Averager):
    """One shadow copy updated by ``a <- lerp(a, theta, w_t)``; EMA, SWA and poly differ only in
    ``w_t`` and in which steps they take."""

    _avg: list[torch.Tensor] | None = field(default=None, init=False, repr=False)

    def _absorb(self, src: list[torch.Tensor], weight: float) -> None:
        if self._avg is None:
            # Warm start: the first iterate is copied (every running average's w_0 is 1).
            self._avg = [t.detach().clone() for t in src]
        else:
            # a <- a + w (theta - a), fused over the parameter list
            torch._foreach_lerp_(self._avg, src, weight)
        self.count += 1

    def weights(self) -> list[torch.Tensor]:
        if self._avg is None:
            raise RuntimeError(f"averager {self.label()!r} has no data yet")
        return self._avg

    def _tensor_state(self) -> dict[str, Any]:
        return {"avg": self._avg}

    def _load_tensor_state(self, state: dict[str, Any], place: Placer) -> None:
        self._avg = None if state["avg"] is None else place(state["avg"])
