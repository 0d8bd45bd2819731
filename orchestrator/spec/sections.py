"""The sweep's smaller tables: ``[horizons]``, ``[eval]``, ``[resources]`` and ``[runtime]``."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from orchestrator.spec.axes import Axis, Model, NonNegInt, PosFloat, PosInt
from orchestrator.spec.errors import bad, said
from trials.catalog import CHINCHILLA_TOKENS_PER_PARAM

__all__ = ["DEFAULT_MAX_EPOCHS", "DEFAULT_MAX_FLOPS", "EvalSpec", "Horizons", "Resources", "Runtime"]

# A sweep above this is refused unless `resources.max_flops` is raised: ~1,000 GPU-hours at
# 3e14 FLOP/s. The bound is a typo guard (1e30 x Chinchilla), not a budget.
DEFAULT_MAX_FLOPS = 1e21
DEFAULT_MAX_EPOCHS = 1000.0  # passes over a corpus's training split, per lineage


class Horizons(Model):
    """Exactly one of: steps, tokens, or multiples of Chinchilla's 20 tokens per parameter."""

    steps: Axis[PosInt] | None = None
    tokens: Axis[PosInt] | None = None
    chinchilla: Axis[PosFloat] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Horizons:
        given = [k for k in ("steps", "tokens", "chinchilla") if getattr(self, k) is not None]
        if len(given) != 1:
            raise said("", f"give exactly one of steps, tokens or chinchilla, got {given or 'none'}")
        return self

    @property
    def unit(self) -> str:
        return next(k for k in ("steps", "tokens", "chinchilla") if getattr(self, k) is not None)

    @property
    def values(self) -> list[float]:
        return list(getattr(self, self.unit))

    def to_steps(self, n_params: int, tokens_per_step: int) -> list[int]:
        """Horizons in optimizer steps (Python's round, half to even, for tokens and multiples)."""
        if self.steps is not None:
            return list(self.steps)
        if self.tokens is not None:
            return [round(t / tokens_per_step) for t in self.tokens]
        return [round(m * CHINCHILLA_TOKENS_PER_PARAM * n_params / tokens_per_step) for m in self.values]


def _no_log_points(value: Any) -> Any:
    raise said("", "log_points was replaced by points_per_decade (eval points at round(10^(k/n)) for every "
                   "k, so adding a horizon never moves them); e.g. points_per_decade = 4")


class EvalSpec(Model):
    every: NonNegInt = 0  # also evaluate every N steps (0: off)
    points_per_decade: NonNegInt = 4  # eval at round(10^(k/n)), k = 0, 1, ... (plus every horizon)
    batches: PosInt | None = None  # eval batches per evaluation (char_gpt); None: the workload's default
    log_every: PosInt = 1  # a train-loss row every N updates
    log_points: Annotated[Any, AfterValidator(_no_log_points)] = Field(default=None, exclude=True)


def _grid_ratio(value: float) -> float:
    if 0 < value <= 1:
        raise bad("", value, "0 (off) or a ratio > 1")
    return value


def _cpu_share(value: float) -> float:
    """Ray counts resources in steps of 0.0001: a smaller or finer share cannot be scheduled."""
    if value >= 1e-4 and math.isclose(value * 1e4, round(value * 1e4), rel_tol=0, abs_tol=1e-6):
        return value
    raise bad("", value, "a number of CPUs of at least 0.0001, in steps of 0.0001 (Ray's resource unit)")


def _gpu_share(value: float) -> float:
    """0, a whole number of GPUs, or a fraction 1/k that packs k trials on one GPU."""
    if value == 0 or (value >= 1 and float(value).is_integer()):
        return value
    if 0 < value < 1 and math.isclose(1 / value, round(1 / value), rel_tol=1e-6):
        return value
    raise bad("", value, "0, a whole number of GPUs or 1/k of one (0.5, 0.25, 0.2, ...: k trials per GPU)")


class Resources(Model):
    """Where and how trials run, and the bounds a sweep must stay within (see
    :mod:`orchestrator.spec.budget`); not part of the sweep's identity, except ``workers``
    (``trials/identity.py``: N workers round differently from one)."""

    cpu: Annotated[float, Field(gt=0, allow_inf_nan=False), AfterValidator(_cpu_share)] = 1.0  # per worker of a trial
    # per worker of a trial; 1/k packs k trials on one GPU (docs/gpus.md)
    gpu: Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_gpu_share)] = 0.0
    workers: PosInt = 1  # data-parallel workers per lineage, each with `cpu` and `gpu` (trials/data_parallel.py)
    concurrency: PosInt | None = None  # at most this many trials at once (None: as resources allow)
    retries: NonNegInt = 2  # a failed trial is retried this many times, from its last checkpoint
    checkpoint_every: NonNegInt = 0  # also checkpoint every N steps (crash resume); 0: off
    # keep trunk checkpoints at round(r^k) steps (plus every fork and the end) so extending the
    # sweep later replays at most a fraction 1 - 1/r of a fork step; 0: forks and the end only
    checkpoint_grid: Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_grid_ratio)] = 2.0
    memory_gb: PosFloat | None = None  # per trial, 10^9 bytes; None: this machine's physical memory
    max_flops: PosFloat = DEFAULT_MAX_FLOPS  # refuse a sweep needing more (6 N D, a lower bound)
    max_epochs: PosFloat = DEFAULT_MAX_EPOCHS  # refuse a lineage passing more often over its corpus


class Runtime(Model):
    """How each lineage's arithmetic runs (``trials/runtime.py``, ``docs/gpus.md``); both
    enter every trunk's id when they differ from the default."""

    precision: Literal["fp32", "tf32", "bf16"] = "fp32"  # tf32 and bf16 need resources.gpu > 0
    compile: bool = False  # torch.compile the model (first steps pay the compilation)
