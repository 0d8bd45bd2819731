"""``[workload]`` for a plugin: its models generated from the plugin's card, its sizes probed.

A plugin (``docs/workloads.md``) brings a :class:`trials.catalog.WorkloadCard`; from it
:func:`plugin_workload_model` generates the same kind of pydantic models the built-in workloads
get (``orchestrator/spec/workload.py``): ``params`` with one checked field per card parameter,
``sizes`` an axis of named sizes or tables of the card's size parameters. So a plugin's
``[workload]`` is refused with the very messages a built-in's is (``workload.params.width must
be an integer >= 1, got 0``), and unknown keys are errors.

After the fields, every size is dry-built on the CPU (:func:`trials.workloads.plugin_probe.probe_plugin`):
its parameter count and tokens per sample give the horizons in tokens and Chinchilla multiples,
its parameters and activation bytes give the memory check of ``orchestrator/spec/budget.py``,
and a plugin that breaks the contract is refused naming the plugin.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    PrivateAttr,
    Tag,
    ValidationInfo,
    create_model,
    model_validator,
)

from orchestrator.spec.axes import Axis, Model
from orchestrator.spec.errors import add_union_tag, bad, said
from orchestrator.spec.params import scalar_field
from trials.catalog import WorkloadCard
from trials.catalog._params import check_all
from trials.errors import ConfigError

if TYPE_CHECKING:  # torch is imported only once a plugin is named
    from trials.workloads.plugin_probe import PluginFacts

__all__ = ["PluginWorkloadBase", "plugin_workload_model"]


def _label(values: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in sorted(values.items())) or "default"


@functools.lru_cache(maxsize=64)
def _probe(name: str, params_key: tuple[tuple[str, Any], ...], evaluate: bool) -> PluginFacts:
    from trials.workloads.plugin_loader import load_plugin
    from trials.workloads.plugin_probe import probe_plugin

    return probe_plugin(name, load_plugin(name), dict(params_key), evaluate=evaluate)


def _frozen(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))


class PluginWorkloadBase(Model):
    """The fields every plugin's ``[workload]`` model has; subclasses add the card's."""

    plugin_name: ClassVar[str] = ""
    card: ClassVar[WorkloadCard]
    factory: ClassVar[Any] = None

    name: str
    _sizes: list[Any] = PrivateAttr(default_factory=list)
    _facts: dict[str, PluginFacts] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _probe_sizes(self, info: ValidationInfo) -> PluginWorkloadBase:
        from orchestrator.spec.workload import ModelSize
        from trials.workloads import PluginError, plugin_params

        base = Path((info.context or {}).get("base_dir") or ".")
        shared = {k: v for k, v in self.params if v is not None}  # type: ignore[attr-defined]
        for p in self.card.params:
            if p.kind == "path" and isinstance(shared.get(p.name), str):  # relative to the sweep file
                path = Path(shared[p.name]).expanduser()
                shared[p.name] = str((path if path.is_absolute() else base / path).resolve())
        sizes = self.sizes if self.sizes is not None else [self.card.default_size]  # type: ignore[attr-defined]
        out = []
        for i, size in enumerate(sizes):
            where = f"sizes[{i}]" if len(sizes) > 1 else "sizes"
            if isinstance(size, str):
                given, label = dict(self.card.named_sizes[size]), size
            else:
                given = size if isinstance(size, dict) else {k: v for k, v in size if v is not None}
                label = _label(given)
            params = {**given, **shared}
            problem = check_all(self.card.size_params + tuple(p for p in self.card.params if p.set_by is None),
                                (), params, self.plugin_name)
            if problem is not None:
                raise said(where, f"plugin {self.plugin_name!r}: {problem}")
            try:
                full = plugin_params(self.plugin_name, self.card, params)
                facts = _probe(self.plugin_name, _frozen(full), i == 0)
            except PluginError as exc:
                raise said(where if exc.problem.startswith("refuses") else "name", str(exc)) from None
            except ConfigError as exc:
                raise said(where, f"plugin {self.plugin_name!r}: {exc}") from None
            self._facts[label] = facts
            out.append(ModelSize(label=label, params=params, n_params=facts.n_params,
                                 block_size=facts.tokens_per_sample))
        self._sizes = out
        return self

    def model_sizes(self) -> list[Any]:
        return list(self._sizes)

    def total_params(self, size: Any) -> int:
        return self._facts[size.label].total_params

    def activation_bytes(self, size: Any, batch_size: int) -> int:
        measured = self._facts[size.label].activation_bytes_per_sample
        if measured is not None:
            return measured * batch_size
        from trials.workloads import plugin_params

        value = self.factory.activation_bytes(plugin_params(self.plugin_name, self.card, size.params), batch_size)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise said("name", f"plugin {self.plugin_name!r}: `activation_bytes` must return an integer >= 0, "
                               f"got {value!r}")
        return value


def _sizes_type(card: WorkloadCard) -> Any:
    table = create_model("PluginSize", __base__=Model,
                         **{p.name: scalar_field(p) for p in card.size_params})  # type: ignore[call-overload]
    if not card.named_sizes:
        return table

    def known(name: Any) -> str:
        if not isinstance(name, str) or name not in card.named_sizes:
            raise bad("", name, f"one of {sorted(card.named_sizes)} or a table of {[p.name for p in card.size_params]}")
        return name

    def tag(value: Any) -> str:
        return "size-table" if isinstance(value, (dict, BaseModel)) else "size-name"

    return Annotated[Annotated[Annotated[Any, AfterValidator(known)], Tag("size-name")]
                     | Annotated[table, Tag("size-table")], Discriminator(tag)]


@functools.lru_cache(maxsize=16)
def plugin_workload_model(name: str) -> type[PluginWorkloadBase]:
    """The ``[workload]`` model of plugin ``name`` (loaded and checked once per process).

    Raises:
        PluginError: the plugin cannot be loaded or is not a workload plugin.
    """
    from trials.workloads.plugin_loader import load_plugin

    factory = load_plugin(name)
    card: WorkloadCard = factory.card
    params = create_model("PluginParams", __base__=Model,
                          **{p.name: scalar_field(p) for p in card.params if p.set_by is None})  # type: ignore[call-overload]
    model = create_model(
        "PluginWorkload", __base__=PluginWorkloadBase,
        name=(Literal[name], ...), params=(params, params()), sizes=(Axis[_sizes_type(card)] | None, None),  # type: ignore[valid-type]
    )
    model.plugin_name, model.card, model.factory = name, card, factory
    add_union_tag(name)  # error paths say `workload.params.x`, not the union branch's name
    return model
