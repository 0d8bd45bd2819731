"""Catalogs: the single description of every component a sweep file can name.

One catalog per component kind — :data:`OPTIMIZERS`, :data:`SCHEDULES`, :data:`AVERAGERS`,
:data:`WORKLOADS` (with :data:`GPT_SIZES`) — giving per entry its name, its hyperparameters
with type, range and default (:class:`Param`), and what the sweep spec needs: whether an
optimizer is schedule-free and how much state it keeps, an averager's label rule, a size's
parameter count. Pure Python: importing it loads neither torch nor ray, so the orchestrator
validates a whole sweep file before anything runs (``orchestrator.spec`` generates its models
from these cards), while the trial-side registries (``trials.optimizers.OPTIMIZERS``,
``trials.schedules.SCHEDULES``, ``trials.averaging.AVERAGERS``, ``trials.workloads.WORKLOADS``)
stay the implementations. ``tests/trials_tests/test_catalog.py`` asserts each catalog matches
its registry exactly.

``python -m trials.catalog`` prints the documentation tables of ``examples/README.md``.
"""

from __future__ import annotations

from trials.catalog._params import REQUIRED, Bounds, Param, Problem, Rule, format_number
from trials.catalog.averagers import AVERAGERS, AveragerCard
from trials.catalog.optimizers import COMMON_PARAMS, OPTIMIZERS, OptimizerCard, schedule_free_names
from trials.catalog.schedules import SCHEDULES, ScheduleCard
from trials.catalog.workloads import (
    CHAR_VOCAB,
    CHINCHILLA_TOKENS_PER_PARAM,
    DEFAULT_SHARD_VOCAB,
    GPT_SIZES,
    LLAMA_SIZES,
    SHIPPED_CORPUS_TOKENS,
    WORKLOADS,
    WorkloadCard,
    gpt_activation_bytes,
    gpt_param_count,
    linreg_activation_bytes,
    llama_activation_bytes,
    llama_flops_per_token,
    llama_param_count,
    llama_shape,
    llama_shape_problem,
)

__all__ = [
    "AVERAGERS",
    "CHAR_VOCAB",
    "CHINCHILLA_TOKENS_PER_PARAM",
    "COMMON_PARAMS",
    "DEFAULT_SHARD_VOCAB",
    "GPT_SIZES",
    "LLAMA_SIZES",
    "OPTIMIZERS",
    "REQUIRED",
    "SCHEDULES",
    "SHIPPED_CORPUS_TOKENS",
    "WORKLOADS",
    "AveragerCard",
    "Bounds",
    "OptimizerCard",
    "Param",
    "Problem",
    "Rule",
    "ScheduleCard",
    "WorkloadCard",
    "fingerprint",
    "format_number",
    "gpt_activation_bytes",
    "gpt_param_count",
    "linreg_activation_bytes",
    "llama_activation_bytes",
    "llama_flops_per_token",
    "llama_param_count",
    "llama_shape",
    "llama_shape_problem",
    "schedule_free_names",
]


def fingerprint() -> tuple[tuple[tuple[str, int], ...], ...]:
    """What the catalogs hold right now (names and card identities): models generated from
    them are rebuilt when it changes, e.g. after a card is registered."""
    return tuple(tuple(sorted((name, id(card)) for name, card in catalog.items()))
                 for catalog in (OPTIMIZERS, SCHEDULES, AVERAGERS, WORKLOADS))
