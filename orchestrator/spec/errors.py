"""Spec errors: :class:`SpecError` and turning pydantic's errors into ONE line.

Every mistake becomes one line naming the file, the dotted field path as the user wrote it, the
bad value and what was expected, e.g. ``sweep.toml: schedules[1].cooldown_fraction must be a
number in (0, 1], got 1.5``. Validators raise :func:`bad` (``... must be <expected>, got
<value>``) or :func:`said` (``...: <explanation>``); :func:`describe_error` renders the first
error pydantic collected. Values are shown with :func:`short` so a line stays short whatever
was written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic_core import PydanticCustomError

from trials import catalog
from trials.errors import ConfigError

__all__ = ["SpecError", "add_union_tag", "bad", "describe_error", "path_of", "said", "short"]

MAX_VALUE_CHARS = 80


class SpecError(ConfigError):
    """A sweep file that cannot be read, parsed or validated; ``str()`` is one line.

    Attributes:
        source: the file, if the spec came from one.
        field: the dotted path of the offending field (``None`` for read/parse errors).
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 value: Any = None, expected: str | None = None) -> None:
        self.source, self.value = source, value
        self.field, self.expected = field, expected  # type: ignore[assignment]  # None: a read/parse error
        text = " ".join(message.split())  # never more than one line
        ValueError.__init__(self, f"{source}: {text}" if source else text)


def short(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)``, cut to about ``limit`` characters (``'aaa…' (100000 characters)``)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, str) else f" ({len(text):,} characters)"
    return text[: limit - 1] + "…" + size


def bad(field: str, value: Any, expected: str) -> PydanticCustomError:
    """A validation error at ``<loc>.<field>``: '... must be <expected>, got <value>'."""
    return PydanticCustomError("spec", "{field} must be {expected}, got {got}",
                               {"field": _cut(field), "expected": expected, "got": short(value)})


def said(field: str, message: str) -> PydanticCustomError:
    """A validation error at ``<loc>.<field>`` with a free-form explanation."""
    return PydanticCustomError("spec_msg", "{field}: {message}", {"field": _cut(field), "message": message})


def _cut(field: str) -> str:
    """A field path as written, cut like a value if a user's key is absurdly long."""
    return field if len(field) <= MAX_VALUE_CHARS else field[: MAX_VALUE_CHARS - 1] + "…"


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "list_type": "a list",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
    "none_required": "absent", "string_pattern_mismatch": "made of letters, digits, '.', '_' or '-'",
    "string_too_short": "a non-empty string",
}
_SIZE_TAGS = {"size-name", "size-table"}
_PLUGIN_TAGS: set[str] = set()  # workload plugins a sweep named (orchestrator/spec/plugin_workload.py)
_MISSING = object()


def add_union_tag(name: str) -> None:
    """Declare ``name`` a branch of a discriminated union (a workload plugin's name)."""
    _PLUGIN_TAGS.add(name)


def _union_tags() -> set[str]:
    """Branch names of the discriminated unions (read now: a card registered later counts)."""
    return (set(catalog.OPTIMIZERS) | set(catalog.SCHEDULES) | set(catalog.AVERAGERS)
            | set(catalog.WORKLOADS) | _SIZE_TAGS | _PLUGIN_TAGS)


def path_of(loc: Iterable[Any], data: Any = _MISSING) -> str:
    """``('optimizers', 0, 'lr', 2)`` -> ``"optimizers[0].lr[2]"``. Given the raw ``data``, an
    index into a scalar the user wrote (an axis of one) is dropped: ``lr = -1.0`` is ``lr``."""
    tags = _union_tags()
    out = ""
    prev: Any = None
    node = data
    for part in loc:
        is_tag = isinstance(part, str) and part in tags and (isinstance(prev, int) or prev == "workload")
        prev = part
        if is_tag:  # a discriminated union's branch name, not a key the user wrote
            continue
        if isinstance(part, int) and node is not _MISSING and not isinstance(node, list):
            node = _MISSING
            continue
        if node is not _MISSING:
            if isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                node = _MISSING
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _join(path: str, field: str) -> str:
    if not field:
        return path or "the sweep"
    if not path:
        return field
    return path + field if field.startswith("[") else f"{path}.{field}"


def describe_error(err: Mapping[str, Any], data: Any = _MISSING) -> str:
    """One pydantic error as '<path> must be <expected>, got <value>' (or a fitting variant);
    ``data`` is the raw input, used to print paths as the user wrote them."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    path = path_of(err["loc"], data)
    if kind == "spec":
        return f"{_join(path, ctx['field'])} must be {ctx['expected']}, got {ctx['got']}"
    if kind == "spec_msg":
        return f"{_join(path, ctx['field'])}: {ctx['message']}"
    if kind == "extra_forbidden":
        parent, _, key = path.rpartition(".")
        if "." not in path and not parent:
            parent, key = "", path
        return f"unknown key {short(key)} in {parent or 'the sweep file'}, got {short(value)}"
    if kind == "missing":
        return f"{path} is required"
    if kind == "union_tag_invalid":
        tags = sorted(t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(","))
        key = str(ctx.get("discriminator", "name")).strip("'")
        return f"{_join(path, key)} must be one of {tags}, got {short(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return f"{_join(path, str(ctx.get('discriminator', 'name')).strip(chr(39)))} is required"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        expected = f"{op} {_number(next(iter(ctx.values())))}"
    elif kind == "literal_error":
        expected = f"one of {ctx.get('expected')}"
    elif kind == "too_short":
        expected = "a non-empty list"
    elif kind == "string_too_long":
        expected = f"at most {ctx.get('max_length')} characters long"
    else:
        expected = _EXPECTED.get(kind, str(err.get("msg", kind)).lower())
    return f"{path or 'the sweep'} must be {expected}, got {short(value)}"
