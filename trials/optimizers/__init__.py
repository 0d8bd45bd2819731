"""Optimizers: torch's AdamW/SGD; Schedule-Free AdamW/SGD, refined SF-AdamW and ScheduleFree+;
Muon, NorMuon and SF-NorMuon — each written from its equations, with a slow reference twin.

``build_optimizer(name, model, lr=..., **hyper)`` applies the param-group policy
(:mod:`trials.optimizers.param_groups`: weight decay only on ``ndim >= 2`` tensors; the Muon
family only on hidden matrices, decided by module role) and records each group's peak LR as
``group["base_lr"]``, so the training loop applies a schedule as
``group["lr"] = group["base_lr"] * s(t)``. ``OPTIMIZERS`` maps a name to a factory whose keyword
arguments *are* the accepted hyperparameters and their defaults (:mod:`trials.optimizers.registry`).

Loop contract: schedule-free optimizers (``is_schedule_free(name)``, ``optimizer.schedule_free``)
need ``optimizer.train()`` before stepping; their evaluation point is
``x = lerp(y, z, 1 - 1/optimizer.interpolation(group))``. An optimizer with ``needs_loss = True``
(ScheduleFree+) is stepped with ``optimizer.step_func(loss)`` (or ``step(closure)``).

Schedule-free checkpoints: lrsweep's lineage loop saves model and optimizer in **train** mode
(weights = ``y``; every group's ``train_mode`` flag is in ``state_dict()``) because an
``eval()``/``train()`` round trip is not bit-exact; :mod:`trials.eval_point` computes ``x`` into
scratch tensors for evaluation. Code that wants to ship ``x`` calls ``optimizer.eval()`` before
reading the weights and ``optimizer.train()`` before the next step.
"""

from __future__ import annotations

from trials.optimizers.muon import Muon
from trials.optimizers.newton_schulz import NS_COEFFICIENTS, newton_schulz
from trials.optimizers.normuon import LR_CONVENTIONS, NorMuon
from trials.optimizers.param_groups import (
    ROLES,
    decay_param_groups,
    is_muon_param,
    param_roles,
    split_muon_params,
)
from trials.optimizers.refined_schedule_free_adamw import RefinedScheduleFreeAdamW
from trials.optimizers.registry import (
    OPTIMIZERS,
    SCHEDULE_FREE,
    ModelParams,
    build_optimizer,
    is_schedule_free,
)
from trials.optimizers.schedule_free_adamw import ScheduleFreeAdamW
from trials.optimizers.schedule_free_normuon import ScheduleFreeNorMuon
from trials.optimizers.schedule_free_plus import ScheduleFreePlus
from trials.optimizers.schedule_free_sgd import ScheduleFreeSGD

__all__ = [
    "LR_CONVENTIONS",
    "NS_COEFFICIENTS",
    "OPTIMIZERS",
    "ROLES",
    "SCHEDULE_FREE",
    "ModelParams",
    "Muon",
    "NorMuon",
    "RefinedScheduleFreeAdamW",
    "ScheduleFreeAdamW",
    "ScheduleFreeNorMuon",
    "ScheduleFreePlus",
    "ScheduleFreeSGD",
    "build_optimizer",
    "decay_param_groups",
    "is_muon_param",
    "is_schedule_free",
    "newton_schulz",
    "param_roles",
    "split_muon_params",
]
