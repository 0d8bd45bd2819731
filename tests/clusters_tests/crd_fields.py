"""Check Kubernetes manifests against the field list of KubeRay's published CRDs.

The list (``data/kuberay-<tag>-fields.txt``, made by ``data/extract_crd_fields.py``) has one
line per field: ``OWNER PATH TYPE [ENUM]`` where OWNER is a kind (``RayCluster``) or a shared
subtree (``@PodTemplateSpec``, whose own paths start at ``.``), ``[]`` marks list items, ``*``
any map key, and a TYPE of ``@Name`` refers to a shared subtree. An unknown field is what the
API server would silently prune (a typo in ``authOptions`` means a cluster without a token).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CrdFields"]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "int-or-string": (int, str),
}


@dataclass(frozen=True)
class _Field:
    type: str
    enum: tuple[str, ...] = ()


class CrdFields:
    """The allowed fields of each kind, from a field list file."""

    def __init__(self, path: Path) -> None:
        self.header = ""
        self.fields: dict[str, dict[str, _Field]] = {}
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                self.header += line + "\n"
                continue
            owner, field_path, type_, *enum = line.split(" ")
            values = tuple(enum[0].split("|")) if enum else ()
            self.fields.setdefault(owner, {})[field_path] = _Field(type_, values)

    @property
    def kinds(self) -> set[str]:
        return {owner for owner in self.fields if not owner.startswith("@")}

    def violations(self, kind: str, spec: Any) -> list[str]:
        """Every field of ``spec`` (the manifest's ``spec``) that the CRD doesn't have or type."""
        if kind not in self.kinds:
            return [f"kind {kind!r} is not one of {sorted(self.kinds)}"]
        found: list[str] = []
        self._check(kind, "spec", spec, "spec", found)
        return found

    def _check(self, owner: str, path: str, value: Any, where: str, found: list[str]) -> None:
        field = self.fields[owner][path]
        if field.type.startswith("@"):
            self._check(field.type, ".", value, where, found)
            return
        if field.type == "any":
            return
        expected = _TYPES[field.type]
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            found.append(f"{where}: expected {field.type}, got {type(value).__name__} {value!r}")
            return
        if field.enum and str(value) not in field.enum:
            found.append(f"{where}: {value!r} is not one of {list(field.enum)}")
        if isinstance(value, dict):
            for key, sub in value.items():
                child = key if path == "." else f"{path}.{key}"
                if child not in self.fields[owner]:
                    child = "*" if path == "." else f"{path}.*"
                if child not in self.fields[owner]:
                    found.append(f"{where}.{key}: unknown field")
                    continue
                self._check(owner, child, sub, f"{where}.{key}", found)
        elif isinstance(value, list):
            child = "[]" if path == "." else f"{path}[]"
            for i, sub in enumerate(value):
                self._check(owner, child, sub, f"{where}[{i}]", found)
