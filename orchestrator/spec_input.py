"""Reading a sweep file defensively, and the spec fields whose rules the store shares.

:func:`read_sweep_file` parses TOML or YAML into plain data and refuses, in one line, what a
careless or hostile file could do to the tools downstream:

- a repeated YAML key (YAML keeps the last silently; TOML already refuses it), named with both
  lines;
- YAML aliases that expand the document beyond :data:`MAX_YAML_VALUES` values (an alias bomb:
  nine nested aliases of nine make 387 million values out of a 1 KB file) or that refer to
  themselves; the size is computed on the composed node graph, where an alias is a shared
  node, so the check itself costs one pass over the distinct nodes;
- nesting deeper than the parsers' recursion allows (a traceback otherwise).

:data:`SweepName` and :data:`StoreRoot` are the pydantic types of ``name`` and ``store``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import tomllib
import yaml
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from orchestrator.sweep_name import SWEEP_NAME_RULE, is_sweep_name
from trials.errors import short_repr

__all__ = ["MAX_YAML_VALUES", "StoreRoot", "SweepFileError", "SweepName", "read_sweep_file"]

MAX_YAML_VALUES = 10_000  # values a YAML document may expand to through aliases
_MERGE_TAG = "tag:yaml.org,2002:merge"


class SweepFileError(Exception):
    """The file cannot be read or parsed; ``orchestrator.spec`` adds the file name."""


# ---------------------------------------------------------------------------------- YAML
class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``) and refuses a key
    repeated within one mapping."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:  # '<<' merges may be overridden, by design
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                line = key_node.start_mark.line + 1
                if seen is not None:
                    raise SweepFileError(
                        f"duplicate key {short_repr(key)} at line {line} (first at line {seen})"
                    )
                first[key] = line
        return super().construct_mapping(node, deep=deep)


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph that aliases expand past :data:`MAX_YAML_VALUES`, or a cycle.

    Sizes are memoised per node (an alias is the very node it names), so this is one pass over
    the distinct nodes, iterative so that depth cannot overflow Python's stack.
    """
    size: dict[int, int] = {}
    open_nodes: set[int] = set()  # the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if key in size:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                line = child.start_mark.line + 1
                raise SweepFileError(f"invalid YAML at line {line}: an alias refers to a value that contains it")
            if id(child) not in size:
                stack.append((child, False))
    total = size[id(root)]
    if total > MAX_YAML_VALUES and total > len(size):  # only aliases make it exceed the file
        raise SweepFileError(
            f"YAML aliases expand the file to {total:,} values, more than the {MAX_YAML_VALUES:,} "
            "allowed; write the repeated parts out"
        )


def _load_yaml(text: str) -> Any:
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------------- files
def read_sweep_file(path: Path) -> Any:
    """The parsed content of a ``.toml``, ``.yaml`` or ``.yml`` sweep file.

    Raises:
        SweepFileError: one line saying what is wrong (without the file name).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SweepFileError(f"cannot read the sweep file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SweepFileError(f"the sweep file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SweepFileError(f"the sweep file must end in .toml, .yaml or .yml, got {short_repr(path.name)}")
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        return _load_yaml(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(f"invalid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SweepFileError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise SweepFileError("the sweep file nests values deeper than can be read") from None


# ---------------------------------------------------------------------------------- fields
def _bad(value: Any, expected: str) -> PydanticCustomError:
    return PydanticCustomError("spec", "{field} must be {expected}, got {got}",
                               {"field": "", "expected": expected, "got": short_repr(value)})


def _sweep_name(value: str) -> str:
    if not is_sweep_name(value):
        raise _bad(value, SWEEP_NAME_RULE)
    return value


def _store_root(value: str) -> str:
    if not value.strip():
        raise _bad(value, "a directory path or URI (an empty one would write into the current directory)")
    return value


# The sweep name: the store's rule for a sweep_id (orchestrator.sweep_name), checked here.
SweepName = Annotated[str, AfterValidator(_sweep_name)]
# Where results go: a path or URI, never empty.
StoreRoot = Annotated[str, AfterValidator(_store_root)]
