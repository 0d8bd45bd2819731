"""Loading a sweep file: TOML or YAML text -> data -> a validated :class:`SweepSpec`.

:func:`load_spec` reads and validates a file; :func:`parse_spec` validates already-parsed data
(relative paths resolve against ``base_dir``); :func:`spec_hash` is the identity of what a sweep
asks: the canonical dump minus ``store`` and ``resources`` (where a sweep runs, and the bounds it
must stay within, are not what it asks). Every failure is ONE :class:`SpecError` line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import tomllib
import yaml
from pydantic import ValidationError

from orchestrator.spec.errors import SpecError, describe_error, path_of
from orchestrator.spec.sweep import SweepSpec, sweep_model
from trials.identity import canonical_hash

__all__ = ["load_spec", "parse_spec", "spec_hash"]


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _read(path: Path) -> Any:
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read the sweep file: {exc.strerror or exc}", source=src) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"the sweep file is not UTF-8 text ({exc.reason} at byte {exc.start})", source=src) from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"invalid TOML: {exc}", source=src) from None
    if suffix in (".yaml", ".yml"):
        try:
            return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise SpecError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}", source=src) from None
    raise SpecError(f"the sweep file must end in .toml, .yaml or .yml, got {path.name!r}", source=src)


def parse_spec(data: Any, *, base_dir: str | os.PathLike[str] | None = None, source: str | None = None) -> SweepSpec:
    """Validate already-parsed sweep data; relative paths (corpus) resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise SpecError(f"the sweep file must be a table of keys, got {type(data).__name__}", source=source)
    try:
        return sweep_model().model_validate(data, context={"base_dir": str(base_dir) if base_dir else None})
    except ValidationError as exc:
        # an unknown key explains the rest (a misspelt required key is also "missing"): report it first
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        message = describe_error(first, data)
        more = len({path_of(e["loc"]) for e in errors[1:]} - {path_of(first["loc"])})
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        raise SpecError(message, source=source, field=path_of(first["loc"], data) or None, value=first.get("input")) from None


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read, parse and validate a sweep file (``.toml``, ``.yaml`` or ``.yml``).

    Raises:
        SpecError: one line naming the file, the field, the value and what was expected.
    """
    p = Path(path)
    return parse_spec(_read(p), base_dir=p.parent, source=str(p))


def spec_hash(spec: SweepSpec) -> str:
    """Identity of what a sweep asks: the canonical dump minus ``store`` and ``resources``."""
    return canonical_hash(spec.model_dump(mode="json", exclude={"store", "resources"}))
