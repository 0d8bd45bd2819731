"""The optimizer registry: ``OPTIMIZERS`` (name → factory), ``is_schedule_free``, ``build_optimizer``.

A factory is ``(params: ModelParams, lr, *, <hyperparameters>)``; its keyword-only arguments
*are* the accepted hyperparameters and their defaults (``build_optimizer`` reads the
signatures). Adding an optimizer = its module + one factory and one entry here + its card in
:mod:`trials.catalog.optimizers` (ranges, schedule-free, state), which the sweep spec is
generated from; ``tests/trials_tests/test_catalog.py`` checks card and factory agree.

Param-group policy (:mod:`trials.optimizers.param_groups`): weight decay only on ``ndim >= 2``
tensors; the Muon family (``muon``, ``normuon``, ``sf_normuon``) only on hidden matrices, decided
by module role — so those need the model itself, not just its named parameters.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trials import catalog
from trials.errors import ConfigError
from trials.optimizers import _factories as f
from trials.optimizers.param_groups import Role, param_roles

__all__ = ["OPTIMIZERS", "SCHEDULE_FREE", "ModelParams", "build_optimizer", "is_schedule_free"]


@dataclass(frozen=True)
class ModelParams:
    """What a factory gets: the trainable named parameters and, from a model, their roles."""

    named: list[tuple[str, nn.Parameter]]
    roles: dict[str, Role] | None

    @classmethod
    def of(cls, source: nn.Module | Iterable[tuple[str, nn.Parameter]]) -> ModelParams:
        if isinstance(source, nn.Module):
            roles = param_roles(source)
            named = list(source.named_parameters())
        else:
            named, roles = list(source), None
        return cls([(n, p) for n, p in named if p.requires_grad], roles)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": f.adamw,
    "sgd": f.sgd,
    "sf_adamw": f.sf_adamw,
    "sf_adamw_refined": f.sf_adamw_refined,
    "sf_sgd": f.sf_sgd,
    "sf_plus": f.sf_plus,
    "muon": f.muon,
    "normuon": f.normuon,
    "sf_normuon": f.sf_normuon,
}
SCHEDULE_FREE: frozenset[str] = catalog.schedule_free_names()  # as the catalog says
NEEDS_MODEL: frozenset[str] = frozenset(n for n, card in catalog.OPTIMIZERS.items() if card.needs_model)


def is_schedule_free(name: str) -> bool:
    """Whether the optimizer ``name`` is schedule-free (warmup inside, no schedule): its card says."""
    card = catalog.OPTIMIZERS.get(name)
    return card is not None and card.schedule_free


def hyperparameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword-only arguments of ``name``'s factory (its hyperparameters)."""
    signature = inspect.signature(OPTIMIZERS[name])
    return {
        key: p
        for key, p in signature.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def build_optimizer(
    name: str,
    named_parameters: nn.Module | Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    **hyper: Any,
) -> torch.optim.Optimizer:
    """Build a registered optimizer (frozen parameters are left out).

    Args:
        name: a key of ``OPTIMIZERS``.
        named_parameters: the model (``nn.Module``, needed by the Muon family, which routes
            tensors by module role) or its ``named_parameters()``.
        lr: the peak learning rate; recorded as every group's ``base_lr`` so the training loop
            applies a schedule as ``group["lr"] = group["base_lr"] * s(t)``.
        **hyper: the factory's keyword arguments.

    Raises:
        ConfigError: unknown ``name`` (``optimizer.name``), a non-positive ``lr``
            (``optimizer.lr``), an unknown or missing hyperparameter (``optimizer.<key>``), or
            a value the optimizer's own validation rejects (``optimizer``, with its message).
        TypeError: a Muon-family optimizer given named parameters instead of the model.
    """
    if name not in OPTIMIZERS:
        raise ConfigError("optimizer.name", name, f"one of {sorted(OPTIMIZERS)}")
    if not (
        isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0
    ):
        raise ConfigError("optimizer.lr", lr, "a number > 0")
    accepted = hyperparameters(name)
    for key, value in hyper.items():
        if key not in accepted:
            raise ConfigError(
                f"optimizer.{key}",
                value,
                f"a hyperparameter of {name!r}: one of {sorted(accepted)}",
            )
    for key, p in accepted.items():
        if p.default is inspect.Parameter.empty and key not in hyper:
            raise ConfigError(f"optimizer.{key}", None, f"set: {name!r} has no default for it")
    params = ModelParams.of(named_parameters)
    if name in NEEDS_MODEL and params.roles is None:
        raise TypeError(
            f"build_optimizer({name!r}, ...) routes tensors to the Muon family by module role: "
            "pass the model (an nn.Module), not its named parameters"
        )
    try:
        optimizer = OPTIMIZERS[name](params, lr, **hyper)
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
