"""How a lineage's arithmetic runs on its device: precision, ``torch.compile``, matmul backends.

Generic over workloads: the lineage loop (``trials/_lineage_steps.py``) wraps every call to
``workload.train_loss`` and ``workload.eval_loss`` in :func:`autocast` and compiles
``workload.model`` in place (:func:`compile_model`), so any workload that computes its loss by
calling its own ``model`` gets the GPU path without code of its own (``docs/gpus.md``).

Precisions (``runtime.precision`` in a sweep file):

- ``fp32``: IEEE float32 everywhere (torch's default ``"highest"`` matmul precision).
- ``tf32``: float32 weights and activations, matmuls and convolutions on TF32 tensor cores
  (10-bit mantissa inputs, float32 accumulation); CUDA only.
- ``bf16``: ``torch.autocast(dtype=bfloat16)`` around forward and loss (weights, gradients and
  optimizer state stay float32), plus TF32 for the matmuls autocast leaves in float32; CUDA only.
  This CPU has no native bfloat16 (it is emulated, ~70x slower than float32), so the spec
  refuses it without a GPU.

Each choice changes the bits of the trajectory, so precision and compile are part of a trunk's
identity (:func:`trials.identity.trunk_id`, ``runtime``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from trials.errors import ConfigError

__all__ = ["PRECISIONS", "autocast", "check_runtime", "compile_model", "configure_backends"]

log = logging.getLogger(__name__)

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")
_CUDA_ONLY = ("tf32", "bf16")


def check_runtime(precision: str, compile: bool, device: str | torch.device) -> None:
    """Raise :class:`ConfigError` for a precision this device cannot run (or an unknown one)."""
    if precision not in PRECISIONS:
        raise ConfigError("runtime.precision", precision, f"one of {sorted(PRECISIONS)}")
    if not isinstance(compile, bool):
        raise ConfigError("runtime.compile", compile, "true or false")
    kind = torch.device(device).type
    if precision in _CUDA_ONLY and kind != "cuda":
        raise ConfigError("runtime.precision", precision,
                          f"'fp32' on device {kind!r} ({precision} needs CUDA tensor cores; bfloat16 is emulated on CPU)")


def configure_backends(precision: str, device: str | torch.device) -> None:
    """Set the process-wide matmul precision the lineage's ``precision`` asks for.

    A Tune worker process runs lineages one after another (actor reuse), so this is set for
    every lineage, to fp32's ``"highest"`` as well: no lineage inherits its predecessor's TF32.
    """
    if torch.device(device).type != "cuda":
        return
    tf32 = precision in ("tf32", "bf16")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bfloat16 autocast on CUDA for ``bf16``; nothing otherwise."""
    if precision == "bf16" and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """Compile ``model``'s forward in place (``nn.Module.compile``): the module object, its
    parameters and its ``state_dict`` keys stay the same, so checkpoints, averagers and the
    optimizer see no difference; the workload's own ``self.model(...)`` calls run compiled."""
    model.compile()
    return model

