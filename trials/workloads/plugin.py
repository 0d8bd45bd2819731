"""The public workload contract, and the adapter that runs a plugin in the lineage loop.

A third-party package plugs its model and data into lrsweep with one object — usually a
class — that ``docs/workloads.md`` documents in full. In short, ``Object`` has:

- ``card``: a :class:`trials.catalog.WorkloadCard` naming its parameters (type, range,
  default), its size parameters and named sizes: ``lrsweep plan`` validates ``[workload]``
  against it exactly as it validates a built-in workload;
- ``Object(params, *, seed, batch_size, device)``: builds the workload. ``params`` holds every
  card parameter (defaults filled in). The instance has ``model`` (a ``torch.nn.Module`` whose
  initialisation depends on ``seed`` alone), ``n_params``, ``tokens_per_step`` (``batch_size``
  times the tokens of one sample) and ``flops_per_step``;
- ``batch(step)``: the minibatch of update ``step``, a function of ``(seed, step)`` alone, so a
  resumed run and a cooldown forked at step ``S`` draw the batches an uninterrupted run draws;
- ``loss(batch)``: the scalar training loss with its graph;
- ``eval_loss()``: the mean loss on a fixed held-out set;
- optionally ``activation_bytes(params, batch_size)`` (static or class method): the bytes one
  training step keeps for backward, for refusing a sweep that cannot fit before it runs. Without
  it lrsweep measures them on one sample when the sweep is validated.

:class:`PluginWorkload` wraps an instance in the loop's internal :class:`Workload` interface:
it sets train mode before ``loss``, and ``no_grad`` plus eval mode (restored afterwards) around
``eval_loss``, so the plugin does not have to.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from trials.errors import ConfigError
from trials.workloads._base import Workload

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "PluginWorkload", "WorkloadPlugin", "accounting_problem"]

ENTRY_POINT_GROUP = "lrsweep.workloads"
REQUIRED_METHODS = ("batch", "loss", "eval_loss")


class PluginError(ConfigError):
    """A workload plugin that cannot be used; ``str()`` names the plugin and what is wrong."""

    def __init__(self, name: str, problem: str) -> None:
        self.plugin, self.problem = name, problem
        self.field, self.value, self.expected = "workload.name", name, problem
        Exception.__init__(self, f"plugin {name!r}: {problem}")


@runtime_checkable
class WorkloadPlugin(Protocol):
    """What a workload instance built by a plugin provides (``docs/workloads.md``)."""

    model: torch.nn.Module
    n_params: int
    tokens_per_step: int
    flops_per_step: float

    def batch(self, step: int) -> Any: ...

    def loss(self, batch: Any) -> torch.Tensor: ...

    def eval_loss(self) -> float: ...


def accounting_problem(inner: Any) -> str | None:
    """What is wrong with an instance's model and compute numbers, or ``None``."""
    if not isinstance(getattr(inner, "model", None), torch.nn.Module):
        return f"the workload's `model` must be a torch.nn.Module, got {type(getattr(inner, 'model', None)).__name__}"
    for attr in ("n_params", "tokens_per_step"):
        value = getattr(inner, attr, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"the workload's `{attr}` must be an integer >= 1, got {value!r}"
    flops = getattr(inner, "flops_per_step", None)
    if not isinstance(flops, (int, float)) or isinstance(flops, bool) or not math.isfinite(flops) or flops <= 0:
        return f"the workload's `flops_per_step` must be a finite number > 0, got {flops!r}"
    return None


class PluginWorkload(Workload):
    """A plugin's workload instance behind the loop's :class:`Workload` interface.

    Attributes:
        inner: the plugin's own instance.
        plugin: the name it was built under (what the sweep file wrote).
    """

    name: ClassVar[str] = "plugin"

    def __init__(self, plugin: str, factory: Any, params: dict[str, Any], *, seed: int, batch_size: int,
                 device: str = "cpu") -> None:
        super().__init__(params, seed=seed, batch_size=batch_size, device=device)
        self.plugin = plugin
        try:
            inner = factory(dict(params), seed=seed, batch_size=batch_size, device=str(self.device))
        except ConfigError:
            raise
        except Exception as exc:  # the plugin refused: one line naming it and why
            raise PluginError(plugin, f"refuses {params}, which its card accepts: {type(exc).__name__}: {exc}") from exc
        if (problem := accounting_problem(inner)) is not None:
            raise PluginError(plugin, problem)
        self.inner = inner
        self.model = inner.model
        self.n_params = int(inner.n_params)
        self.tokens_per_step = int(inner.tokens_per_step)
        self.flops_per_step = float(inner.flops_per_step)
        self._batch, self._loss, self._eval = inner.batch, inner.loss, inner.eval_loss

    def train_loss(self, step: int) -> torch.Tensor:
        self.model.train()
        return self._loss(self._batch(step))

    def eval_loss(self) -> float:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                value = self._eval()
        finally:
            self.model.train(was_training)
        return float(value)

    def __repr__(self) -> str:
        return f"PluginWorkload({self.plugin!r}, seed={self.seed}, batch_size={self.batch_size}, n_params={self.n_params})"
