"""Derive the compact field list of KubeRay CRDs that test_recipes.py checks manifests against.

    python tests/clusters_tests/data/extract_crd_fields.py TAG COMMIT ray.io_rayclusters.yaml \
        ray.io_rayjobs.yaml > tests/clusters_tests/data/kuberay-TAG-fields.txt

One line per field of ``spec`` in each CRD's served ``v1`` schema: ``KIND PATH TYPE [ENUM]``.
In a path, ``[]`` is a list item and ``*`` any key of a map; ``any`` is a subtree that accepts
unknown fields. A subtree that occurs more than once with the same schema (the pod template,
the RayCluster spec inside a RayJob) is written once as ``@Name PATH TYPE`` and referenced as
``KIND PATH @Name``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter

import yaml

SHARE_MIN_FIELDS = 100  # only subtrees this large are worth factoring out
RENAME = {"template": "PodTemplateSpec"}


def _type(schema: dict) -> str:
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return "any"
    if schema.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    return str(schema.get("type", "any"))


def _children(schema: dict) -> list[tuple[str, dict]]:
    kids = [(f".{name}", sub) for name, sub in sorted(schema.get("properties", {}).items())]
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        kids.append(("[]", schema["items"]))
    if isinstance(schema.get("additionalProperties"), dict):
        kids.append((".*", schema["additionalProperties"]))
    return kids


def _digest(schema: dict) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def _size(schema: dict) -> int:
    return 1 + sum(_size(sub) for _, sub in _children(schema))


def _count(schema: dict, counts: Counter, names: dict[str, set[str]], name: str) -> None:
    digest = _digest(schema)
    counts[digest] += 1
    names.setdefault(digest, set()).add(name)
    for suffix, sub in _children(schema):
        _count(sub, counts, names, suffix.strip(".[]*") or name)


def _lines(owner: str, path: str, schema: dict, shared: dict[str, str], out: list[str],
           top: bool = False) -> None:
    digest = _digest(schema)
    if not top and digest in shared:
        out.append(f"{owner} {path} @{shared[digest]}")
        return
    enum = "|".join(str(v) for v in schema.get("enum", []))
    out.append(f"{owner} {path} {_type(schema)}" + (f" {enum}" if enum else ""))
    for suffix, sub in _children(schema):
        _lines(owner, suffix.lstrip(".") if path == "." else path + suffix, sub, shared, out)


def main(tag: str, commit: str, *crd_paths: str) -> None:
    specs = {}
    for crd_path in crd_paths:
        with open(crd_path) as f:
            crd = yaml.safe_load(f)
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1" and v["served"]]
        specs[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    counts: Counter = Counter()
    names: dict[str, set[str]] = {}
    for kind, spec in specs.items():
        _count(spec, counts, names, f"{kind}Spec")
    # Greedy, largest first: a subtree is shared when it still occurs more than once once the
    # larger shared subtrees are written only once each.
    shared: dict[str, str] = {}
    candidates = [d for d, n in counts.items() if n > 1 and _size(_find(specs, d)) >= SHARE_MIN_FIELDS]
    for digest in sorted(candidates, key=lambda d: -_size(_find(specs, d))):
        roots = [*specs.values(), *(_find(specs, d) for d in shared)]
        if sum(_occurrences(root, digest, shared) for root in roots) > 1:
            label = sorted(names[digest], key=len)[0]  # e.g. "template", "rayClusterSpec"
            label = RENAME.get(label, label[0].upper() + label[1:])
            shared[digest] = label if label not in shared.values() else f"{label}{len(shared)}"
    print(f"# KubeRay {tag} CRD fields (ray.io/v1), derived by extract_crd_fields.py from "
          f"ray-project/kuberay@{commit}: {', '.join(p.rsplit('/', 1)[-1] for p in crd_paths)}")
    print("# KIND PATH TYPE [ENUM]; [] = list item, * = any map key, @Name = shared subtree")
    out: list[str] = []
    for digest, label in sorted(shared.items(), key=lambda item: item[1]):
        _lines(f"@{label}", ".", _find(specs, digest), shared, out, top=True)
    for kind, spec in specs.items():
        _lines(kind, "spec", spec, shared, out)
    print("\n".join(out))


def _occurrences(schema: dict, digest: str, shared: dict[str, str], top: bool = True) -> int:
    """How often ``digest`` occurs under ``schema``, not looking inside shared subtrees."""
    here = _digest(schema)
    if here == digest and not top:
        return 1
    if here in shared and not top:
        return 0
    return sum(_occurrences(sub, digest, shared, top=False) for _, sub in _children(schema))


def _find(specs: dict[str, dict], digest: str) -> dict:
    stack = list(specs.values())
    while stack:
        schema = stack.pop()
        if _digest(schema) == digest:
            return schema
        stack.extend(sub for _, sub in _children(schema))
    raise KeyError(digest)


if __name__ == "__main__":
    main(*sys.argv[1:])
