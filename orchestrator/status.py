"""``lrsweep status``: what a store holds, per sweep."""

from __future__ import annotations

import json
from io import StringIO

__all__ = ["sweep_summaries", "sweep_status"]


def sweep_summaries(store: str, sweep_id: str | None = None) -> list[dict]:
    from orchestrator.query import load_lineages, load_sweeps

    sweeps = load_sweeps(store)
    if sweep_id is not None:
        sweeps = sweeps[sweeps["sweep_id"] == sweep_id]
        if sweeps.empty:
            from orchestrator.store import StoreError

            raise StoreError(f"sweep {sweep_id!r} is not in store {store}")
    lineages = load_lineages(store, sweep_id) if len(sweeps) else None
    out = []
    for _, sweep in sweeps.iterrows():
        sid = sweep["sweep_id"]
        plan = json.loads(sweep["plan_json"]) if sweep.get("plan_json") else {"lineages": []}
        rows = lineages[lineages["sweep_id"] == sid] if lineages is not None else None
        per_lineage = rows.groupby("lineage_id")["status"].agg(
            lambda s: "failed" if (s == "failed").any() else ("diverged" if (s == "diverged").any() else "completed")
        ) if rows is not None and len(rows) else None
        counts = per_lineage.value_counts().to_dict() if per_lineage is not None else {}
        out.append({
            "sweep_id": sid, "planned": len(plan.get("lineages", [])),
            "completed": int(counts.get("completed", 0)), "diverged": int(counts.get("diverged", 0)),
            "failed": int(counts.get("failed", 0)),
            "pending": len(plan.get("lineages", [])) - int(sum(counts.values())),
            "tokens_trained": int(rows["tokens_trained"].sum()) if rows is not None and len(rows) else 0,
            "planned_tokens": plan.get("planned_tokens"), "naive_tokens": plan.get("naive_tokens"),
            "updated_at": str(sweep.get("updated_at")),
        })
    return out


def sweep_status(store: str, sweep_id: str | None = None, *, as_json: bool = False) -> str:
    rows = sweep_summaries(store, sweep_id)
    if as_json:
        return json.dumps(rows, indent=2, default=str)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lrsweep store {store}")
    cols = ("sweep_id", "planned", "completed", "diverged", "failed", "pending", "tokens_trained", "updated_at")
    for col in cols:
        table.add_column(col)
    for r in rows:
        table.add_row(*(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols))
    buf = StringIO()
    Console(file=buf, width=160).print(table)
    return buf.getvalue()
