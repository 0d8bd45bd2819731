"""Many averagers over one model's parameters: update after each optimizer step, swap in to evaluate.

The training loop calls ``averagers.update(step)`` right after ``optimizer.step()`` (``step`` = updates
completed, so 1 after the first) and, at an eval point, ``with averagers.swapped(label): evaluate()``
for each label with ``is_ready(label, step)``. Averages live on ``device`` in ``dtype`` (default:
each parameter's own device, float32), so a GPU model can keep its averages in CPU memory: the
parameters are then copied once per step into a staging buffer that every averager reads.

Per step the cost is one fused ``torch._foreach_*`` call per active averager (plus one
``_foreach_copy_`` into the staging buffer when storage differs from the parameters) and no
Python loop over tensors (docs/platform.md §3: ``_foreach_lerp_`` ≈ 0.16 ms per averager on 0.85M params).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from trials.averaging._base import Averager
from trials.averaging._registry import averager_label, build_averager
from trials.errors import ConfigError
from trials.lineage_spec import AveragerSpec

__all__ = ["AveragerSet"]

_FORMAT = 1  # state_dict layout version


@dataclass(eq=False)
class _Slot:
    label: str
    spec: AveragerSpec
    averager: Averager

    def active(self, step: int) -> bool:
        # An averager read only at eval_at stops updating after it: nobody reads it later.
        eval_at = self.spec.eval_at
        return (eval_at is None or step <= eval_at) and self.averager.wants(step)


def _resolve(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class AveragerSet:
    """The averagers of one lineage over one list of parameter tensors.

    Args:
        params: the live parameters (e.g. ``list(model.parameters())``); averaged in this order.
        specs: one :class:`AveragerSpec` per averager; labels (``spec.label`` or the default
            label) must be unique.
        device: where the averages live; ``None`` keeps each next to its parameter.
        dtype: dtype of the averages (float32 even for a bf16 model; float64 for reference runs).

    Raises:
        ConfigError: an unknown kind, bad parameters, a duplicate label or a bad ``eval_at``.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        specs: Sequence[AveragerSpec],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self._params = list(params)
        if not self._params:
            raise ValueError("AveragerSet needs at least one parameter tensor")
        self.device = None if device is None else _resolve(torch.device(device))
        self.dtype = dtype
        self._slots: dict[str, _Slot] = {}
        for spec in specs:
            if spec.eval_at is not None and (
                not isinstance(spec.eval_at, int) or isinstance(spec.eval_at, bool) or spec.eval_at < 1
            ):
                raise ConfigError("averagers.eval_at", spec.eval_at, "an integer >= 1 or None")
            averager = build_averager(spec)
            label = averager_label(spec)
            # A per-horizon window (e.g. SWA over the last half of each horizon) is one averager per
            # horizon, all with the same label but each read only at its own ``eval_at``.
            key = label if spec.eval_at is None else f"{label}#{spec.eval_at}"
            if key in self._slots:
                raise ConfigError("averagers.label", key, "unique within a lineage (per eval_at)")
            self._slots[key] = _Slot(label, spec, averager)
        self._devices = [self.device or p.device for p in self._params]
        needs_staging = any(p.device != d or p.dtype != dtype for p, d in zip(self._params, self._devices, strict=True))
        self._staging: list[torch.Tensor] | None = (
            [torch.empty(p.shape, device=d, dtype=dtype) for p, d in zip(self._params, self._devices, strict=True)]
            if needs_staging
            else None
        )
        self._last_step = 0

    @property
    def labels(self) -> list[str]:
        """The averagers' keys in spec order: the label, plus ``#<eval_at>`` for per-horizon ones."""
        return list(self._slots)

    def weights_label(self, key: str) -> str:
        """The ``weights`` value curves carry for the averager behind ``key``."""
        return self._slots[key].label

    @property
    def last_step(self) -> int:
        """The last ``step`` passed to :meth:`update` (0 before the first)."""
        return self._last_step

    def __len__(self) -> int:
        return len(self._slots)

    def averager(self, label: str) -> Averager:
        """The averager behind ``label``."""
        if label not in self._slots:
            raise KeyError(f"no averager labelled {label!r}; labels are {self.labels}")
        return self._slots[label].averager

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Feed the current parameters, the iterate after ``step`` optimizer updates, to every
        averager that takes this step. ``step`` must increase from call to call."""
        if step <= self._last_step:
            raise ValueError(f"step must increase: got {step} after {self._last_step}")
        self._last_step = step
        active = [slot.averager for slot in self._slots.values() if slot.active(step)]
        if not active:
            return
        src = self._params
        if self._staging is not None:
            torch._foreach_copy_(self._staging, self._params)  # one copy to the storage device/dtype
            src = self._staging
        for averager in active:
            averager.update(step, src)

    def is_ready(self, label: str, step: int) -> bool:
        """Whether ``label`` should be evaluated at ``step``: it has absorbed at least one iterate
        and, if its spec has ``eval_at``, ``step == eval_at``."""
        averager = self.averager(label)
        eval_at = self._slots[label].spec.eval_at
        return averager.has_data and (eval_at is None or step == eval_at)

    def ready_labels(self, step: int) -> list[str]:
        """The labels with :meth:`is_ready` at ``step``, in spec order."""
        return [label for label in self._slots if self.is_ready(label, step)]

    def weights(self, label: str) -> list[torch.Tensor]:
        """The averaged weights of ``label`` on the storage device (read only)."""
        return self.averager(label).weights()

    @contextmanager
    def swapped(self, label: str) -> Iterator[None]:
        """Copy ``label``'s averaged weights into the live parameters for the ``with`` body, then
        put the originals back bit for bit, also when the body raises."""
        averager = self.averager(label)
        if not averager.has_data:
            raise RuntimeError(f"averager {label!r} has no data yet at step {self._last_step}")
        with torch.no_grad():
            backup = [p.detach().clone() for p in self._params]
        try:
            with torch.no_grad():
                torch._foreach_copy_(self._params, averager.weights())
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self._params, backup)

    def state_dict(self, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """Everything needed to resume bit for bit (of the averagers ``keys``, default all).
        Tensors are aliased, as in ``Module.state_dict``: save (or :meth:`clone`) before
        updating again."""
        chosen = list(self._slots) if keys is None else list(keys)
        return {
            "format": _FORMAT,
            "last_step": self._last_step,
            "averagers": {
                label: {
                    "kind": self._slots[label].averager.kind,
                    "params": self._slots[label].averager.params(),
                    "eval_at": self._slots[label].spec.eval_at,
                    **self._slots[label].averager.state_dict(),
                }
                for label in chosen
            },
        }

    def load_state_dict(self, state: dict[str, Any], *, strict: bool = True) -> None:
        """Restore from :meth:`state_dict`; tensors are copied to this set's device and dtype.

        ``strict``: the state must hold exactly this set's averagers. Otherwise it may hold a
        subset and others (ignored): averagers of this set it lacks must still be empty, e.g.
        an averager added to a lineage whose window starts after the state's step.
        """
        if state.get("format") != _FORMAT:
            raise ValueError(f"unknown AveragerSet state format {state.get('format')!r}, expected {_FORMAT}")
        saved = state["averagers"]
        if strict and set(saved) != set(self._slots):
            raise ValueError(f"state has averagers {sorted(saved)}, this set has {sorted(self._slots)}")
        for label, slot in self._slots.items():
            if label not in saved:
                if slot.averager.has_data:
                    raise ValueError(f"averager {label!r} has data but the state lacks it")
                continue
            entry = saved[label]
            mine = (slot.averager.kind, slot.averager.params(), slot.spec.eval_at)
            theirs = (entry["kind"], entry["params"], entry["eval_at"])
            if mine != theirs:
                raise ValueError(f"averager {label!r}: state is {theirs}, this set has {mine}")
        for label, slot in self._slots.items():
            if label in saved:
                slot.averager.load_state_dict(saved[label], self._place)
        self._last_step = int(state["last_step"])

    def clone(self, params: Sequence[torch.Tensor] | None = None) -> AveragerSet:
        """An independent copy of the averages (e.g. for a WSD cooldown branch), tracking
        ``params`` (default: the same live parameters). ``copy.deepcopy`` also works and copies
        the parameters along with the averages."""
        other = AveragerSet(
            self._params if params is None else params,
            [slot.spec for slot in self._slots.values()],
            device=self.device,
            dtype=self.dtype,
        )
        other.load_state_dict(self.state_dict())
        return other

    def _place(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(tensors) != len(self._params):
            raise ValueError(f"state has {len(tensors)} tensors, this set averages {len(self._params)}")
        out = []
        for t, p, d in zip(tensors, self._params, self._devices, strict=True):
            if t.shape != p.shape:
                raise ValueError(f"state tensor of shape {tuple(t.shape)} for a parameter of shape {tuple(p.shape)}")
            out.append(t.detach().to(device=d, dtype=self.dtype, copy=True))
        return out
