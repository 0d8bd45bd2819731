"""Finding a workload plugin by the name a sweep file gives it.

Two spellings (``docs/workloads.md``):

- ``name = "package.module:Object"``: imported from the Python path (``Object`` may be dotted,
  ``module:Outer.Inner``);
- ``name = "bigram"``: an entry point of that name in the group ``lrsweep.workloads`` of an
  installed distribution (``[project.entry-points."lrsweep.workloads"]`` in its
  ``pyproject.toml``).

The built-in names (``char_gpt``, ``linreg``) are never looked up here. Everything that goes
wrong becomes one :class:`~trials.workloads.plugin.PluginError` naming the plugin: an import
that fails, an attribute that is missing, two distributions claiming one name, an object
without a ``card`` or without the contract's methods (:func:`check_object`).
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
from importlib.metadata import EntryPoint, entry_points, packages_distributions, version
from pathlib import Path
from typing import Any

from trials.catalog import WorkloadCard
from trials.workloads.plugin import ENTRY_POINT_GROUP, REQUIRED_METHODS, PluginError

__all__ = ["check_object", "import_root", "installed_plugins", "is_dotted", "load_plugin", "plugin_names_text",
           "plugin_source"]

_LOADED: dict[str, Any] = {}


def is_dotted(name: str) -> bool:
    """``package.module:Object`` rather than an entry-point name."""
    return ":" in name


def _entry_points() -> list[EntryPoint]:
    return list(entry_points().select(group=ENTRY_POINT_GROUP))


def installed_plugins() -> list[str]:
    """Names registered in the entry-point group, sorted."""
    return sorted({ep.name for ep in _entry_points()})


def plugin_names_text() -> str:
    """How the "unknown workload" error describes what else a name could be."""
    names = installed_plugins()
    listed = f"installed: {names}" if names else "none installed"
    return f"an installed plugin (entry points {ENTRY_POINT_GROUP!r}: {listed}) or 'package.module:Object'"


def _import_dotted(name: str) -> Any:
    module_name, _, attr = name.partition(":")
    if not module_name or not attr or ":" in attr:
        raise PluginError(name, "must be written 'package.module:Object'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself raising while importing
        raise PluginError(name, f"cannot be imported: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(name, f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _import_entry_point(name: str) -> Any | None:
    found = [ep for ep in _entry_points() if ep.name == name]
    if not found:
        return None
    if len({ep.value for ep in found}) > 1:
        raise PluginError(name, f"is registered by several entry points in {ENTRY_POINT_GROUP!r}: "
                                f"{sorted({ep.value for ep in found})}; name one as 'package.module:Object'")
    try:
        return found[0].load()
    except Exception as exc:
        raise PluginError(name, f"entry point {found[0].value!r} cannot be loaded: {type(exc).__name__}: {exc}") from None


def check_object(name: str, obj: Any) -> None:
    """The checks that need no model: a callable with a ``WorkloadCard`` and the methods."""
    if not callable(obj):
        raise PluginError(name, f"must be a class (or factory) building the workload, got {type(obj).__name__}")
    card = getattr(obj, "card", None)
    if not isinstance(card, WorkloadCard):
        raise PluginError(name, f"has no `card` (a trials.catalog.WorkloadCard), got {type(card).__name__}")
    if isinstance(obj, type):  # a class: its methods can be checked before anything is built
        for method in REQUIRED_METHODS:
            if not callable(getattr(obj, method, None)):
                raise PluginError(name, f"lacks the method `{method}` of the workload contract")
    memory = getattr(obj, "activation_bytes", None)
    if memory is not None and not callable(memory):
        raise PluginError(name, "`activation_bytes` must be a function (params, batch_size) -> bytes")
    names = [p.name for p in (*card.params, *card.size_params)]
    if len(set(names)) != len(names):
        raise PluginError(name, f"its card names a parameter twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    size_names = {p.name for p in card.size_params}
    default = card.default_size
    if not (isinstance(default, dict) or (isinstance(default, str) and default in card.named_sizes)):
        raise PluginError(name, f"its card's default_size must be a table or one of its named sizes "
                                f"{sorted(card.named_sizes)}, got {default!r}")
    for size, values in {**card.named_sizes, "default_size": default if isinstance(default, dict) else {}}.items():
        if not isinstance(values, dict) or not set(values) <= size_names:
            raise PluginError(name, f"its card's size {size!r} must set only size parameters {sorted(size_names)}, "
                                    f"got {values!r}")


def load_plugin(name: str) -> Any:
    """The plugin object ``name`` denotes, checked (:func:`check_object`) and cached.

    Raises:
        PluginError: it cannot be found or imported, or it is not a workload plugin.
    """
    if name in _LOADED:
        return _LOADED[name]
    if is_dotted(name):
        obj = _import_dotted(name)
    else:
        obj = _import_entry_point(name)
        if obj is None:
            from trials.errors import ConfigError
            from trials.workloads import WORKLOADS

            raise ConfigError("workload.name", name, f"one of {sorted(WORKLOADS)}, {plugin_names_text()}")
    check_object(name, obj)
    _LOADED[name] = obj
    return obj


def import_root(name: str) -> str | None:
    """For a dotted plugin imported from a folder of the user's (not the standard library, not
    an installed distribution), that folder: Ray workers need it on their path too. ``None``
    otherwise."""
    if not is_dotted(name):
        return None
    top = name.partition(":")[0].split(".")[0]
    module = sys.modules.get(top)
    origin = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", []) or []), None)
    if origin is None:
        return None
    path = Path(origin).resolve()
    root = path.parent.parent if path.name == "__init__.py" else path.parent
    if any(part in ("site-packages", "dist-packages") for part in root.parts):
        return None
    installed = {Path(p).resolve() for key, p in sysconfig.get_paths().items()
                 if key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return None if root in installed else str(root)


def plugin_source(name: str) -> dict[str, str | None]:
    """Where plugin ``name`` came from, for the sweep's provenance: the installed distribution
    that provides it and its version (an entry point's distribution; for a dotted name, the
    distribution owning its top-level package), or ``None`` for both when it is imported from a
    folder of the user's (``import_root``, then given as ``path``).
    """
    dist: str | None = None
    if is_dotted(name):
        top = name.partition(":")[0].split(".")[0]
        owners = packages_distributions().get(top) or []
        dist = owners[0] if len(owners) == 1 else None
    else:
        found = [ep for ep in _entry_points() if ep.name == name]
        dist = found[0].dist.name if found and found[0].dist is not None else None
    out: dict[str, str | None] = {"distribution": dist, "version": version(dist) if dist else None}
    if dist is None:
        out["path"] = import_root(name)
    return out
