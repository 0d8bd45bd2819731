"""What every workload is: a model plus a deterministic stream of minibatches and a fixed eval.

The contract the training loop relies on (``trials/lineage.py``):

- ``train_loss(step)`` draws the minibatch of update ``step`` from ``(seed, step)`` alone
  (:func:`step_rng`), so the data position *is* the step number: a resumed run and a WSD
  cooldown forked at step ``S`` see exactly the batches an uninterrupted run would. It returns
  the scalar loss with its graph (model in train mode); the caller does ``backward``.
- ``eval_loss()`` is the mean loss on a fixed held-out set (the same batches every call), under
  ``no_grad`` with the model in eval mode, the previous mode restored afterwards.
- The model's initialisation is a function of ``seed`` alone and leaves the global RNG untouched.
- A workload holds no state beyond its model, so the model's ``state_dict`` is a full checkpoint.

Compute accounting (``n_params``, ``tokens_per_step``, ``flops_per_step``) is what scaling-law
fits use; each workload documents its convention.

Data-parallel workers (``resources.workers``, ``trials/data_parallel.py``): a workload that sets
``data_parallel = True`` promises that after :meth:`Workload.shard` its ``train_loss(step)`` is
the mean loss over rows :meth:`Workload.shard_rows` of the *global* batch of ``(seed, step)``
(all ``batch_size`` rows drawn, then sliced), so N workers together see the one-worker batch.
Batches reach an accelerator through :meth:`Workload.to_device` (pinned host memory,
asynchronous copy).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from trials.errors import ConfigError

__all__ = ["Workload", "step_rng", "TRAIN_STREAM", "EVAL_STREAM"]

TRAIN_STREAM = 0  # minibatches of updates: step_rng(seed, step, TRAIN_STREAM)
EVAL_STREAM = 1  # the held-out set: step_rng(0, 0, EVAL_STREAM), the same for every seed


def step_rng(seed: int, step: int, stream: int = TRAIN_STREAM) -> np.random.Generator:
    """A fresh generator determined by ``(stream, seed, step)`` alone.

    ``SeedSequence`` hashes the triple, so neighbouring steps and seeds give independent streams
    (no overlap as with ``seed + step``), and nothing depends on what was drawn before.
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([stream, seed, step])))


class Workload:
    """Base class. Subclasses set ``name`` and ``config_class`` and fill in the attributes below.

    Attributes:
        name: registry name.
        config: the workload's frozen parameter dataclass.
        seed: trial seed (model init and minibatch order).
        batch_size: sequences (GPT) or samples (linreg) per update.
        device: torch device the model and batches live on.
        model: the trained module, on ``device``.
        n_params: parameter count for scaling laws (each workload documents which).
        tokens_per_step: tokens (GPT) or samples (linreg) consumed by one update.
        flops_per_step: training FLOPs of one update (forward + backward), by a stated formula.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    data_parallel: ClassVar[bool] = False  # train_loss honours shard() (module docstring)

    config: Any
    seed: int
    batch_size: int
    device: torch.device
    model: torch.nn.Module
    n_params: int
    tokens_per_step: int
    flops_per_step: float

    def __init__(self, config: Any, *, seed: int, batch_size: int, device: str = "cpu") -> None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError("seed", seed, "an integer >= 0")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError("batch_size", batch_size, "an integer >= 1")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError("device", device, "a torch device string such as 'cpu' or 'cuda:0'") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device", device, "'cpu' here: CUDA is not available")
        self.config = config
        self.seed = seed
        self.batch_size = batch_size
        self.device = dev
        self.rank, self.world = 0, 1

    def shard(self, rank: int, world: int) -> None:
        """Train on the ``rank``-th of ``world`` equal, contiguous row blocks of each global batch."""
        if world > 1 and not self.data_parallel:
            raise ConfigError("resources.workers", world, f"1: workload {self.name!r} does not split its batches across workers")
        if self.batch_size % world:
            raise ConfigError("batch_size", self.batch_size, f"a multiple of resources.workers ({world})")
        if not 0 <= rank < world:
            raise ConfigError("rank", rank, f"in [0, {world})")
        self.rank, self.world = rank, world

    def shard_rows(self) -> slice:
        """This worker's rows of a global batch of ``batch_size`` (all of them for one worker)."""
        per = self.batch_size // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on the workload's device: through pinned host memory and a non-blocking
        copy on CUDA (the copy overlaps the previous step's kernels), as it is on CPU."""
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def train_loss(self, step: int) -> torch.Tensor:
        """Loss on the minibatch of update ``step`` (a function of ``(seed, step)``), with grad."""
        raise NotImplementedError

    def eval_loss(self) -> float:
        """Mean loss on the fixed held-out set, without grad; the model's mode is restored."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(seed={self.seed}, batch_size={self.batch_size}, "
                f"device={str(self.device)!r}, n_params={self.n_params}, config={self.config!r})")
