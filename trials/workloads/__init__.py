"""Workloads: a model, a deterministic minibatch stream indexed by step, and a fixed eval.

>>> w = build_workload("linreg", seed=0, batch_size=8, dim=100)
>>> round(w.eval_loss(), 4)  # excess risk at w = 0: 1/2 sum_i i^-4 over i <= 100
0.5412

Registry names: ``linreg`` (:class:`LinReg`, power-law linear regression), ``char_gpt``
(:class:`CharGPT`, a small GPT on characters or token shards) and ``llama``
(:class:`LlamaWorkload`, a Llama-style decoder on token shards, ``docs/llama.md``). Any other
name is a plugin (:mod:`trials.workloads.plugin_loader`; the contract:
:mod:`trials.workloads.plugin` and ``docs/workloads.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trials.errors import ConfigError
from trials.workloads._base import Workload, step_rng
from trials.workloads.char_gpt import CharGPT, CharGPTConfig
from trials.workloads.corpus import Corpus, TokenStream, load_corpus
from trials.workloads.gpt import GPT, GPT_SIZES, GPTConfig
from trials.workloads.linreg import LinearPredictor, LinReg, LinRegConfig
from trials.workloads.linreg_recursion import expected_risk_recursion, power_law_problem
from trials.workloads.llama import LlamaConfig, LlamaWorkload
from trials.workloads.llama_model import Llama, LlamaShape
from trials.workloads.plugin import ENTRY_POINT_GROUP, PluginError, PluginWorkload, WorkloadPlugin
from trials.workloads.shards import read_shard, write_shard

__all__ = [
    "GPT",
    "GPT_SIZES",
    "WORKLOADS",
    "CharGPT",
    "CharGPTConfig",
    "ENTRY_POINT_GROUP",
    "Corpus",
    "GPTConfig",
    "LinReg",
    "LinRegConfig",
    "LinearPredictor",
    "Llama",
    "LlamaConfig",
    "LlamaShape",
    "LlamaWorkload",
    "PluginError",
    "PluginWorkload",
    "TokenStream",
    "Workload",
    "WorkloadPlugin",
    "build_workload",
    "plugin_params",
    "expected_risk_recursion",
    "load_corpus",
    "power_law_problem",
    "read_shard",
    "step_rng",
    "write_shard",
]

WORKLOADS: dict[str, type[Workload]] = {cls.name: cls for cls in (LinReg, CharGPT, LlamaWorkload)}


def build_workload(name: str, *, seed: int, batch_size: int, device: str = "cpu", **params: Any) -> Workload:
    """Build a workload by registry name; unknown names and bad parameters raise :class:`ConfigError`.

    Args:
        name: a key of :data:`WORKLOADS`, or a plugin (an entry-point name or
            ``package.module:Object``, :func:`plugin_params` checks its parameters).
        seed: model init and data order (the held-out set does not depend on it).
        batch_size: samples (linreg) or sequences (GPT) per update.
        device: torch device for the model and batches.
        **params: fields of the workload's config dataclass (:class:`LinRegConfig`,
            :class:`CharGPTConfig`, :class:`LlamaConfig`).
    """
    if name not in WORKLOADS:
        from trials.workloads.plugin_loader import load_plugin

        factory = load_plugin(name)
        return PluginWorkload(name, factory, plugin_params(name, factory.card, params), seed=seed,
                              batch_size=batch_size, device=device)
    cls = WORKLOADS[name]
    allowed = {f.name for f in dataclasses.fields(cls.config_class)}
    for key, value in params.items():
        if key not in allowed:
            raise ConfigError(f"workload.{key}", value, f"a parameter of {name!r}: one of {sorted(allowed)}")
    return cls(cls.config_class(**params), seed=seed, batch_size=batch_size, device=device)


def plugin_params(name: str, card: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of a plugin's card: ``given`` checked against it (unknown names, types,
    ranges, required ones), the card's defaults for the rest.

    Raises:
        ConfigError: at ``workload.<param>``, as for a built-in workload.
    """
    from trials.catalog._params import check_all

    params = tuple(dataclasses.replace(p, set_by=None) for p in (*card.params, *card.size_params))
    if (problem := check_all(params, (), given, name)) is not None:
        if problem.field not in {p.name for p in params}:
            raise ConfigError(f"workload.{problem.field}", problem.value, f"a parameter of {name!r}: one of "
                                                                         f"{sorted(p.name for p in params)}")
        raise ConfigError(f"workload.{problem.field}", problem.value, problem.expected)
    return {p.name: p.default for p in params} | dict(given)
