"""Everything a workload plugin imports from lrsweep, in one place (``docs/workloads.md``).

>>> from trials.plugin import Bounds, Param, WorkloadCard, step_rng
>>> card = WorkloadCard(name="toy", summary="a toy", params=(Param(name="width", kind="int", default=8,
...                     bounds=Bounds(1)),), size_params=(), default_size={})
>>> card.param("width").problem(0)
'an integer >= 1'

``WorkloadCard`` and ``Param`` describe the plugin's parameters (``trials/catalog/``);
``step_rng(seed, step)`` is a NumPy generator determined by ``(seed, step)`` alone, the easy way
to make ``batch(step)`` depend on nothing else (``EVAL_STREAM`` gives the held-out set its own
stream); ``WorkloadPlugin`` is the protocol an instance meets; ``check_plugin`` runs the checks
``lrsweep plan`` runs, for a plugin's own tests.
"""

from __future__ import annotations

from typing import Any

from trials.catalog import REQUIRED, Bounds, Param, WorkloadCard
from trials.workloads._base import EVAL_STREAM, TRAIN_STREAM, step_rng
from trials.workloads.plugin import ENTRY_POINT_GROUP, PluginError, WorkloadPlugin

__all__ = [
    "ENTRY_POINT_GROUP",
    "EVAL_STREAM",
    "REQUIRED",
    "TRAIN_STREAM",
    "Bounds",
    "Param",
    "PluginError",
    "WorkloadCard",
    "WorkloadPlugin",
    "check_plugin",
    "step_rng",
]


def check_plugin(name: str, **params: Any) -> dict[str, Any]:
    """Load plugin ``name`` (an entry-point name or ``package.module:Object``) and dry-run it
    with ``params`` (the card's defaults for the rest), as ``lrsweep plan`` does.

    Returns:
        ``n_params``, ``total_params``, ``tokens_per_sample``, ``flops_per_sample`` and the
        measured ``activation_bytes_per_sample`` (``None`` when the plugin estimates its own).

    Raises:
        PluginError: what is wrong, naming the plugin.
    """
    from dataclasses import asdict

    from trials.workloads import plugin_params
    from trials.workloads.plugin_loader import load_plugin
    from trials.workloads.plugin_probe import probe_plugin

    factory = load_plugin(name)
    return asdict(probe_plugin(name, factory, plugin_params(name, factory.card, params)))
