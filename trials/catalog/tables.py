"""The key tables of the sweep-file documentation (:data:`DOCUMENTS`), written from the catalogs.

``python -m trials.catalog`` prints them and ``python -m trials.catalog --update`` rewrites
them in place in every document of :data:`DOCUMENTS` (each table is found by its header row); a
test asserts each document holds each one verbatim, so the documentation cannot drift from what
the spec accepts.
"""

from __future__ import annotations

from trials.catalog._params import Param
from trials.catalog.averagers import AVERAGERS
from trials.catalog.optimizers import COMMON_PARAMS, OPTIMIZERS
from trials.catalog.schedules import SCHEDULES
from trials.catalog.workloads import GPT_SIZES, WORKLOADS, gpt_param_count

__all__ = [
    "DOCUMENTS",
    "TABLES",
    "averager_table",
    "optimizer_table",
    "schedule_table",
    "size_table",
    "update_tables",
    "workload_table",
]

# Documents holding every table, relative to the repository root.
DOCUMENTS = ("examples/README.md", "docs/sweep-file.md")

_LINEAGES = {
    "horizon-free": "1, to the longest horizon",
    "per-horizon": "one per horizon",
    "wsd": "1: a trunk + a cooldown branch per horizon",
}


def _params(params: tuple[Param, ...], one_of: tuple[tuple[str, ...], ...] = ()) -> str:
    def default(p: Param) -> str | None:
        group = next((g for g in one_of if p.name in g), None)
        return None if group is None else "exactly one of " + " or ".join(f"`{k}`" for k in group)

    shown = [p.describe(default(p)) for p in params if p.set_by is None]
    return "; ".join(shown) if shown else "—"


def _rows(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def optimizer_table() -> str:
    rows = [[f"`{c.name}`", c.summary, "yes" if c.schedule_free else "no", _params(c.params)]
            for c in OPTIMIZERS.values()]
    rows.append(["every optimizer", "handled by the training loop", "", _params(COMMON_PARAMS)])
    return _rows(["name", "what", "schedule-free", "`params`: name (default): range"], rows)


def schedule_table() -> str:
    rows = [[f"`{c.name}`", c.summary, _params(c.params), c.family, _LINEAGES[c.family]]
            for c in SCHEDULES.values()]
    return _rows(["name", "what", "parameters (default): range", "family", "lineages per setting"], rows)


def averager_table() -> str:
    rows = [[f"`{c.kind}`", c.summary, _params(c.spec_params, c.one_of), c.label_rule] for c in AVERAGERS.values()]
    return _rows(["kind", "what", "parameters (default): range", "label"], rows)


def workload_table() -> str:
    rows = [[f"`{c.name}`", c.summary, _params(c.params), _params(c.size_params)] for c in WORKLOADS.values()]
    return _rows(["name", "what", "`params` (default): range", "a size (default): range"], rows)


def size_table() -> str:
    rows = [[f"`{name}`", *(str(s[k]) for k in ("n_layer", "n_head", "n_embd", "block_size")),
             f"{gpt_param_count(s['n_layer'], s['n_embd'], s['block_size']):,}"] for name, s in GPT_SIZES.items()]
    return _rows(["name", "n_layer", "n_head", "n_embd", "block_size", "N (non-embedding)"], rows)


TABLES = {
    "optimizers": optimizer_table, "schedules": schedule_table, "averagers": averager_table,
    "workloads": workload_table, "sizes": size_table,
}


def update_tables(text: str) -> str:
    """``text`` with every table whose header row is one of :data:`TABLES`' replaced by the
    table as the catalogs write it now."""
    lines = text.split("\n")
    for make in TABLES.values():
        table = make().split("\n")
        starts = [i for i, line in enumerate(lines) if line == table[0]]
        for i in reversed(starts):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            lines[i:end] = table
    return "\n".join(lines)
