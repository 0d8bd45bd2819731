"""Optimizers: torch's AdamW/SGD, Schedule-Free AdamW/SGD written from the paper, Muon.

``build_optimizer(name, named_parameters, lr=..., **hyper)`` applies the param-group policy
(:mod:`trials.optimizers.param_groups`: weight decay only on ``ndim >= 2`` tensors; Muon only
on hidden matrices) and records each group's peak LR as ``group["base_lr"]``, so the training
loop applies a schedule as ``group["lr"] = group["base_lr"] * s(t)``.

``OPTIMIZERS`` maps a name to a factory ``(named_parameters, lr, *, <hyperparameters>)``; its
keyword arguments *are* the accepted hyperparameters and their defaults (the sweep-spec
validator in ``orchestrator.spec`` reads the signatures). A new optimizer (NorMuon, SF-NorMuon,
:class:`RefinedScheduleFreeAdamW` as ``"sf_adamw_refined"``) is one factory and one entry here,
plus the name in ``SCHEDULE_FREE`` if it is schedule-free and in ``orchestrator.spec``'s mirror.

Defaults that differ between optimizers are the upstream ones: AdamW ``weight_decay=0.01``
(torch), SGD ``momentum=0`` (torch), the schedule-free classes' own defaults
(``schedulefree`` 1.4.1), and Keller Jordan's for Muon (``adamw_lr=3e-4`` for the AdamW groups:
the Muon and AdamW learning rates are separate knobs, and a schedule scales both).

Schedule-free checkpoints: lrsweep's lineage loop saves model and optimizer in **train** mode
(weights = ``y``; every group's ``train_mode`` flag is in ``state_dict()``) because an
``eval()``/``train()`` round trip is not bit-exact; :mod:`trials.eval_point` computes ``x`` into
scratch tensors for evaluation. Code that wants to ship ``x`` calls ``optimizer.eval()`` before
reading the weights and ``optimizer.train()`` before the next step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from trials.errors import ConfigError
from trials.optimizers.muon import NS_COEFFICIENTS, Muon, newton_schulz
from trials.optimizers.param_groups import decay_param_groups, is_muon_param, split_muon_params
from trials.optimizers.refined_schedule_free_adamw import RefinedScheduleFreeAdamW
from trials.optimizers.schedule_free_adamw import ScheduleFreeAdamW
from trials.optimizers.schedule_free_sgd import ScheduleFreeSGD

__all__ = [
    "NS_COEFFICIENTS",
    "OPTIMIZERS",
    "SCHEDULE_FREE",
    "Muon",
    "RefinedScheduleFreeAdamW",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "build_optimizer",
    "decay_param_groups",
    "is_muon_param",
    "is_schedule_free",
    "newton_schulz",
    "split_muon_params",
]

NamedParams = Iterable[tuple[str, torch.nn.Parameter]]

_FUSED_ADAMW_DEVICES = ("cpu", "cuda")
_NS_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _adamw(
    named_parameters: NamedParams,
    lr: float,
    *,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """``torch.optim.AdamW``, fused where torch has the kernel (CPU: 0.7 ms vs foreach 4.1 ms)."""
    groups = decay_param_groups(named_parameters, weight_decay)
    fusable = all(
        p.device.type in _FUSED_ADAMW_DEVICES and p.dtype.is_floating_point
        for g in groups
        for p in g["params"]
    )
    impl = {"fused": True} if fusable else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, **impl)


def _sgd(
    named_parameters: NamedParams,
    lr: float,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (its weight decay is an L2 term in the gradient)."""
    groups = decay_param_groups(named_parameters, weight_decay)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)


def _sf_adamw(
    named_parameters: NamedParams,
    lr: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
) -> torch.optim.Optimizer:
    groups = decay_param_groups(named_parameters, weight_decay)
    return ScheduleFreeAdamW(
        groups,
        lr=lr,
        betas=tuple(betas),
        eps=eps,
        warmup_steps=warmup_steps,
        r=r,
        weight_lr_power=weight_lr_power,
    )


def _sf_sgd(
    named_parameters: NamedParams,
    lr: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
) -> torch.optim.Optimizer:
    groups = decay_param_groups(named_parameters, weight_decay)
    return ScheduleFreeSGD(
        groups,
        lr=lr,
        momentum=momentum,
        warmup_steps=warmup_steps,
        r=r,
        weight_lr_power=weight_lr_power,
    )


def _muon(
    named_parameters: NamedParams,
    lr: float,
    *,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_steps: int = 5,
    weight_decay: float = 0.0,
    ns_dtype: str | None = None,
    adamw_lr: float = 3e-4,
    adamw_betas: tuple[float, float] = (0.9, 0.95),
    adamw_eps: float = 1e-10,
    adamw_weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Muon (lr 0.02 in Keller's convention) on hidden matrices, AdamW (``adamw_*``) elsewhere.

    ``ns_dtype``: ``None`` (bfloat16 on CUDA, float32 on CPU) or one of ``_NS_DTYPES``. The AdamW
    side decays only its matrices (embeddings, LM head), never biases and gains.
    """
    if ns_dtype is not None and ns_dtype not in _NS_DTYPES:
        raise ConfigError("optimizer.ns_dtype", ns_dtype, f"None or one of {sorted(_NS_DTYPES)}")
    named = list(named_parameters)
    muon_params, adamw_params = split_muon_params(named)
    adamw_ids = {id(p) for p in adamw_params}
    groups: list[dict[str, Any]] = []
    if muon_params:
        groups.append({"params": muon_params, "use_muon": True})
    for group in decay_param_groups(
        [(n, p) for n, p in named if id(p) in adamw_ids], adamw_weight_decay
    ):
        groups.append({**group, "use_muon": False})
    return Muon(
        groups,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        ns_steps=ns_steps,
        weight_decay=weight_decay,
        ns_dtype=_NS_DTYPES[ns_dtype] if ns_dtype else None,
        adamw_lr=adamw_lr,
        adamw_betas=tuple(adamw_betas),
        adamw_eps=adamw_eps,
    )


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "sgd": _sgd,
    "sf_adamw": _sf_adamw,
    "sf_sgd": _sf_sgd,
    "muon": _muon,
}
SCHEDULE_FREE: frozenset[str] = frozenset({"sf_adamw", "sf_sgd"})


def is_schedule_free(name: str) -> bool:
    """Whether the registered optimizer ``name`` is schedule-free (warmup inside, no schedule)."""
    return name in SCHEDULE_FREE


def build_optimizer(
    name: str, named_parameters: NamedParams, *, lr: float, **hyper: Any
) -> torch.optim.Optimizer:
    """Build a registered optimizer over ``named_parameters`` (frozen parameters are left out).

    Raises:
        ConfigError: unknown ``name`` (``optimizer.name``), a non-positive ``lr``
            (``optimizer.lr``), an unknown hyperparameter (``optimizer.<key>``), or a value the
            optimizer's own validation rejects (``optimizer``, with the torch-style message).
    """
    if name not in OPTIMIZERS:
        raise ConfigError("optimizer.name", name, f"one of {sorted(OPTIMIZERS)}")
    if not (
        isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0
    ):
        raise ConfigError("optimizer.lr", lr, "a number > 0")
    factory = OPTIMIZERS[name]
    allowed = sorted(factory.__kwdefaults__ or {})
    for key, value in hyper.items():
        if key not in allowed:
            raise ConfigError(
                f"optimizer.{key}", value, f"a hyperparameter of {name!r}: one of {allowed}"
            )
    try:
        optimizer = factory(list(named_parameters), lr, **hyper)
    except (ValueError, TypeError) as exc:  # the optimizer's torch-style argument validation
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(
            "optimizer",
            {"name": name, "lr": lr, **hyper},
            f"a valid {name!r} configuration ({exc})",
        ) from None
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    return optimizer
