"""Dry-building a plugin before anything runs: its compute numbers, and the contract checked.

``lrsweep plan`` and ``lrsweep run`` call :func:`probe_plugin` once per model size of the sweep,
on the CPU with batch size 1, so a broken plugin is refused in one line before Ray starts:

- the workload must build with the sweep's parameters (a card that accepts a value the model
  refuses is caught here, naming the value), and expose ``model``, ``n_params``,
  ``tokens_per_step`` and ``flops_per_step`` (:func:`trials.workloads.plugin.accounting_problem`);
- two fresh builds with the same seed must have identical weights (initialisation from the seed
  alone);
- the batch stream must not depend on history: a fresh instance that draws batches ``0 .. k+2``
  in order and another that starts at ``k`` (as a resumed run or a fork does) must get identical
  batches ``k .. k+2`` (:data:`RESUME_STEP` is ``k``);
- ``loss(batch)`` must return a scalar floating-point tensor that carries a graph, and
  ``eval_loss()`` a finite number (checked on the first size only: evaluating is the costly part);
- ``activation_bytes(params, batch_size)``, if the plugin has it, must return an integer >= 0;
  otherwise the bytes autograd saves for one sample's loss are measured
  (``torch.autograd.graph.saved_tensors_hooks``) and scale with the batch.

The global torch RNG is restored afterwards; the probe seeds it before each build exactly as the
lineage loop does (``trials/_lineage_steps.py``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from trials.workloads.plugin import PluginError, PluginWorkload

__all__ = ["RESUME_STEP", "PluginFacts", "batches_equal", "probe_plugin"]

RESUME_STEP = 5  # the probe's "resume" starts here; batches RESUME_STEP .. RESUME_STEP + 2 compared
PROBE_SEED = 0


@dataclass(frozen=True, kw_only=True)
class PluginFacts:
    """What the sweep's accounting needs of one size, per sample (batch size 1).

    Attributes:
        n_params: the plugin's ``n_params`` (its ``N`` for Chinchilla horizons and ``6 N D``).
        total_params: every parameter of the model (weights, gradients and optimizer state).
        tokens_per_sample: ``tokens_per_step`` at batch size 1.
        flops_per_sample: ``flops_per_step`` at batch size 1.
        activation_bytes_per_sample: measured, when the plugin gives no ``activation_bytes``.
    """

    n_params: int
    total_params: int
    tokens_per_sample: int
    flops_per_sample: float
    activation_bytes_per_sample: int | None


def batches_equal(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two batches: tensors (same dtype, shape and values), arrays,
    and lists, tuples or dicts of them; anything else by ``==``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and bool(torch.equal(a.cpu(), b.cpu())))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(batches_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(batches_equal(a[k], b[k]) for k in a)
    if hasattr(a, "__array__") and hasattr(b, "__array__"):
        import numpy as np

        x, y = np.asarray(a), np.asarray(b)
        return x.dtype == y.dtype and x.shape == y.shape and bool(np.array_equal(x, y))
    return bool(a == b)


def _build(name: str, factory: Any, params: dict[str, Any]) -> PluginWorkload:
    torch.manual_seed(PROBE_SEED)  # as trials/_lineage_steps.py does before building
    return PluginWorkload(name, factory, params, seed=PROBE_SEED, batch_size=1, device="cpu")


def _saved_bytes(w: PluginWorkload, batch: Any) -> tuple[torch.Tensor, int]:
    """The loss of ``batch`` and the bytes of the tensors autograd saved computing it."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor without storage (e.g. a view of a sparse one)
            seen[id(t)] = t.numel() * t.element_size()
        return t

    w.model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = w._loss(batch)
    weights = {p.untyped_storage().data_ptr() for p in w.model.parameters()}
    return loss, sum(n for ptr, n in seen.items() if ptr not in weights)


def _check_loss(name: str, loss: Any) -> None:
    if not isinstance(loss, torch.Tensor):
        raise PluginError(name, f"`loss(batch)` must return a torch.Tensor, got {type(loss).__name__}")
    if loss.ndim != 0 or not loss.dtype.is_floating_point:
        raise PluginError(name, f"`loss(batch)` must return a scalar floating-point tensor, got shape "
                                f"{tuple(loss.shape)} dtype {loss.dtype}")
    if not loss.requires_grad:
        raise PluginError(name, "`loss(batch)` returned a tensor without a graph (requires_grad is False): "
                                "it must depend on the model's parameters")


def _check_eval(name: str, w: PluginWorkload) -> None:
    with torch.no_grad():
        raw = w._eval()
    number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    if not number and not (isinstance(raw, torch.Tensor) and raw.numel() == 1 and raw.dtype.is_floating_point):
        raise PluginError(name, f"`eval_loss()` must return a number, got {type(raw).__name__}")
    if not math.isfinite(float(raw)):
        raise PluginError(name, f"`eval_loss()` must return a finite number, got {float(raw)!r}")


def _dry_run(name: str, factory: Any, params: dict[str, Any], evaluate: bool) -> tuple[PluginWorkload, int]:
    first = _build(name, factory, params)
    in_order = [first._batch(t) for t in range(RESUME_STEP + 3)][RESUME_STEP:]
    second = _build(name, factory, params)
    for (ka, va), (kb, vb) in zip(first.model.state_dict().items(), second.model.state_dict().items(), strict=False):
        if ka != kb or not batches_equal(va, vb):
            raise PluginError(name, f"two builds with the same seed differ in {ka!r}: the initialisation "
                                    "must depend on the seed alone")
    resumed = [second._batch(t) for t in range(RESUME_STEP, RESUME_STEP + 3)]
    for k, (a, b) in enumerate(zip(in_order, resumed, strict=True)):
        if not batches_equal(a, b):
            raise PluginError(name, f"`batch({RESUME_STEP + k})` differs between a fresh run and a resume "
                                    f"at step {RESUME_STEP}: a batch must be a function of (seed, step) alone")
    loss, saved = _saved_bytes(first, in_order[0])
    _check_loss(name, loss)
    if evaluate:
        _check_eval(name, first)
    return first, saved


def probe_plugin(name: str, factory: Any, params: dict[str, Any], *, evaluate: bool = True) -> PluginFacts:
    """Build the plugin twice with ``params`` (every card parameter) and check the contract
    (module docstring); returns the size's :class:`PluginFacts`.

    Raises:
        PluginError: one line naming the plugin and the broken part of the contract.
    """
    rng = torch.get_rng_state()
    try:
        with warnings.catch_warnings(record=True):  # the dry run's warnings would break one-line errors
            first, saved = _dry_run(name, factory, params, evaluate)
    except PluginError:
        raise
    except Exception as exc:  # a plugin method raising: name the plugin and what it said
        raise PluginError(name, f"fails its dry run: {type(exc).__name__}: {exc}") from exc
    finally:
        torch.set_rng_state(rng)
    measured = None if getattr(factory, "activation_bytes", None) is not None else saved
    return PluginFacts(n_params=first.n_params, total_params=sum(p.numel() for p in first.model.parameters()),
                       tokens_per_sample=first.tokens_per_step, flops_per_sample=first.flops_per_step,
                       activation_bytes_per_sample=measured)
