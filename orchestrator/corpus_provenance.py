"""Which corpus a sweep trained on: the manifest's content hash in its stored plan.

A prepared corpus (``lrsweep data prepare``, ``docs/data.md``) carries a ``content_hash`` over
its shards. :func:`corpus_hash` puts it in the plan (``Plan.to_dict()["corpus_hash"]``), which
the store keeps as the sweep's ``plan_json`` — the sweep's provenance. Before a stored sweep is
planned again, :func:`check_corpus_unchanged` compares the two: curves trained on one corpus
must not be continued on another under the same sweep name, so a changed corpus is refused in
one line (exit code 2) before anything is written or Ray starts. A corpus without a manifest has
no hash and is not compared.

:func:`workload_source` adds, for a plugin workload, the distribution and version that provided
it (``Plan.to_dict()["workload_source"]``), so a stored sweep says which plugin code drew its
curves.
"""

from __future__ import annotations

import json
from typing import Any

from trials.errors import ConfigError

__all__ = ["check_corpus_unchanged", "corpus_hash", "workload_source"]


def corpus_hash(spec: Any) -> str | None:
    """The content hash of the sweep's corpus, if it has a manifest."""
    facts = getattr(spec.workload, "corpus", None)
    return facts().content_hash if callable(facts) else None


def workload_source(spec: Any) -> dict[str, str | None] | None:
    """For a plugin workload, where it came from (``trials.workloads.plugin_loader.plugin_source``);
    ``None`` for a built-in."""
    from trials.workloads import WORKLOADS
    from trials.workloads.plugin_loader import plugin_source

    name = spec.workload.name
    return None if name in WORKLOADS else {"name": name, **plugin_source(name)}


def check_corpus_unchanged(spec: Any, store: Any) -> None:
    """Refuse ``spec`` when the store's sweep of that name recorded another corpus hash."""
    table = store.read_table("sweeps", spec.name, columns=["plan_json"])
    if table.num_rows == 0:
        return
    text = table.column("plan_json")[0].as_py()
    stored = json.loads(text).get("corpus_hash") if text else None
    now = corpus_hash(spec)
    if stored is not None and stored != now:
        raise ConfigError(
            "workload.params.corpus", spec.workload.params.corpus,
            f"the corpus stored sweep {spec.name!r} trained on (content hash {stored[:16]}…, this one "
            f"{(now or 'none')[:16]}…): restore that corpus, or give the sweep a new name")
