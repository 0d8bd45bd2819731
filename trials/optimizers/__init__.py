"""Optimizers: torch's AdamW/SGD, Schedule-Free AdamW/SGD written from the paper, Muon.

``build_optimizer(name, named_parameters, lr=..., **hyper)`` applies the param-group policy
(:mod:`trials.optimizers.param_groups`) and records each group's peak LR as
``group["base_lr"]`` so the training loop applies a schedule as ``lr = base_lr * s(t)``.
New optimizers (NorMuon, SF-NorMuon, refined schedule-free) are one entry in ``OPTIMIZERS``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch

from trials.errors import ConfigError
from trials.optimizers.muon import Muon, newton_schulz
from trials.optimizers.param_groups import decay_param_groups, split_muon_params
from trials.optimizers.schedule_free_adamw import ScheduleFreeAdamW
from trials.optimizers.schedule_free_sgd import ScheduleFreeSGD

__all__ = [
    "OPTIMIZERS", "Muon", "ScheduleFreeAdamW", "ScheduleFreeSGD", "build_optimizer", "decay_param_groups",
    "is_schedule_free", "newton_schulz", "split_muon_params",
]

NamedParams = Iterable[tuple[str, torch.nn.Parameter]]


def _adamw(named: NamedParams, lr: float, weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
           eps: float = 1e-8) -> torch.optim.Optimizer:
    groups = decay_param_groups(named, weight_decay)
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=fused)


def _sgd(named: NamedParams, lr: float, momentum: float = 0.0, nesterov: bool = False,
         weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return torch.optim.SGD(decay_param_groups(named, weight_decay), lr=lr, momentum=momentum, nesterov=nesterov)


def _sf_adamw(named: NamedParams, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
              weight_lr_power: float = 2.0) -> torch.optim.Optimizer:
    return ScheduleFreeAdamW(decay_param_groups(named, weight_decay), lr=lr, betas=tuple(betas), eps=eps,
                             warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power)


def _sf_sgd(named: NamedParams, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
            warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0) -> torch.optim.Optimizer:
    return ScheduleFreeSGD(decay_param_groups(named, weight_decay), lr=lr, momentum=momentum,
                           warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power)


def _muon(named: NamedParams, lr: float, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
          weight_decay: float = 0.0, adamw_lr: float = 3e-4, adamw_betas: tuple[float, float] = (0.9, 0.95),
          adamw_eps: float = 1e-10, adamw_weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Keller Jordan's defaults: Muon lr 0.02 on hidden matrices, Adam 3e-4 elsewhere."""
    muon, adamw = split_muon_params(named)
    groups = [g for g in (
        {"params": muon, "use_muon": True, "lr": lr, "weight_decay": weight_decay},
        {"params": adamw, "use_muon": False, "lr": adamw_lr, "weight_decay": adamw_weight_decay},
    ) if g["params"]]
    return Muon(groups, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "sgd": _sgd,
    "sf_adamw": _sf_adamw,
    "sf_sgd": _sf_sgd,
    "muon": _muon,
}
SCHEDULE_FREE = frozenset({"sf_adamw", "sf_sgd"})


def is_schedule_free(name: str) -> bool:
    return name in SCHEDULE_FREE


def build_optimizer(name: str, named_parameters: NamedParams, *, lr: float, **hyper: Any) -> torch.optim.Optimizer:
    """Build a registered optimizer; bad names, keys and values raise :class:`ConfigError`."""
    if name not in OPTIMIZERS:
        raise ConfigError("optimizer.name", name, f"one of {sorted(OPTIMIZERS)}")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
        raise ConfigError("optimizer.lr", lr, "a number > 0")
    factory = OPTIMIZERS[name]
    allowed = [p for p in inspect.signature(factory).parameters if p not in ("named", "lr")]
    for key, value in hyper.items():
        if key not in allowed:
            raise ConfigError(f"optimizer.{key}", value, f"a hyperparameter of {name!r}: one of {sorted(allowed)}")
    try:
        optimizer = factory(list(named_parameters), lr, **hyper)
    except ValueError as exc:  # torch-style argument validation
        raise ConfigError(f"optimizer ({name})", hyper, f"valid hyperparameters ({exc})") from None
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    return optimizer
