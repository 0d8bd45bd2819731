"""``lrsweep status``: what a store holds, per sweep."""

from __future__ import annotations

import json
from io import StringIO

__all__ = ["sweep_summaries", "sweep_status"]


def sweep_summaries(store: str, sweep_id: str | None = None) -> list[dict]:
    """Per sweep: lineages planned and how many are completed/diverged/stopped/failed/pending
    (a lineage counts as its worst run: failed > pending > stopped > diverged > completed;
    ``stopped``: by a search, at a horizon rung), the steps the plan needs vs what is stored,
    the tokens trained and the throughput per lineage (tokens/s, step time, MFU)."""
    from orchestrator.query import load_lineages, load_runs, load_sweeps

    sweeps = load_sweeps(store)
    if sweep_id is not None:
        sweeps = sweeps[sweeps["sweep_id"] == sweep_id]
        if sweeps.empty:
            from orchestrator.store import StoreError

            raise StoreError(f"sweep {sweep_id!r} is not in store {store}")
    lineages = load_lineages(store, sweep_id) if len(sweeps) else None
    runs = load_runs(store, sweep_id) if len(sweeps) else None
    rank = {"failed": 4, "pending": 3, "stopped": 2, "diverged": 1, "completed": 0}
    out = []
    for _, sweep in sweeps.iterrows():
        sid = sweep["sweep_id"]
        plan = json.loads(sweep["plan_json"]) if sweep.get("plan_json") else {"lineages": []}
        mine = lineages[lineages["sweep_id"] == sid] if lineages is not None else None
        planned = set(mine["lineage_id"].astype(str)) if mine is not None else set()
        worst: dict[str, str] = {lid: "pending" for lid in planned}
        if mine is not None and len(mine):
            for lid, statuses in mine.groupby("lineage_id")["status"]:
                worst[str(lid)] = max((str(s) for s in statuses), key=lambda s: rank.get(s, 3))
        counts = {k: sum(1 for v in worst.values() if v == k) for k in rank}
        my_runs = runs[runs["sweep_id"] == sid] if runs is not None else None
        out.append({
            "sweep_id": sid, "planned": len(planned),
            "completed": counts["completed"], "diverged": counts["diverged"], "stopped": counts["stopped"],
            "failed": counts["failed"],
            "pending": counts["pending"],
            "tokens_trained": int(my_runs["tokens_trained"].sum()) if my_runs is not None and len(my_runs) else 0,
            "planned_tokens": plan.get("planned_tokens"), "naive_tokens": plan.get("naive_tokens"),
            **_throughput(my_runs),
            "updated_at": str(sweep.get("updated_at")),
        })
    return out


def _throughput(runs: object) -> dict[str, float | None]:
    """A sweep's throughput per lineage from its ``runs`` rows (``trials/throughput.py``):
    tokens/s = tokens of every timed update / their train time; the median step time; the
    median MFU (None — "n/a" — where no run has one: CPU, an unknown GPU, or an older store)."""
    import pandas as pd

    empty = {"tokens_per_s": None, "step_time_s": None, "mfu": None}
    if runs is None or not len(runs) or "tokens_per_s" not in runs:  # type: ignore[arg-type]
        return empty
    timed = runs[runs["tokens_per_s"].notna() & runs["train_time_s"].notna()]  # type: ignore[index]
    if timed.empty:
        return empty
    seconds = float(timed["train_time_s"].sum())
    tokens = float((timed["tokens_per_s"] * timed["train_time_s"]).sum())
    mfu = pd.to_numeric(timed["mfu"], errors="coerce").dropna()
    return {"tokens_per_s": tokens / seconds if seconds > 0 else None,
            "step_time_s": float(timed["step_time_s"].median()),
            "mfu": float(mfu.median()) if len(mfu) else None}


def _cell(col: str, value: object) -> str:
    if col == "mfu":
        return "n/a" if value is None else f"{100 * float(value):.1f}%"  # type: ignore[arg-type]
    if col == "tokens_per_s":
        return "-" if value is None else f"{float(value):,.0f}"  # type: ignore[arg-type]
    if col == "step_time_s":
        return "-" if value is None else f"{1000 * float(value):.1f} ms"  # type: ignore[arg-type]
    return f"{value:,}" if isinstance(value, int) else str(value)


def sweep_status(store: str, sweep_id: str | None = None, *, as_json: bool = False, wide: bool = False) -> str:
    """The summaries as a table that fits 100 columns (``wide``: every column at full length, no
    width limit), or as JSON."""
    rows = sweep_summaries(store, sweep_id)
    if as_json:
        return json.dumps(rows, indent=2, default=str)
    from rich.console import Console
    from rich.table import Table

    from analysis.units import si

    table = Table(title=f"lrsweep store {store}", title_justify="left")
    if wide:
        cols = ("sweep_id", "planned", "completed", "diverged", "stopped", "failed", "pending", "tokens_trained",
                "tokens_per_s", "step_time_s", "mfu", "updated_at")
        heads = {"tokens_per_s": "tokens/s per lineage", "step_time_s": "step time", "mfu": "MFU"}
        for col in cols:
            table.add_column(heads.get(col, col))
        for r in rows:
            table.add_row(*(_cell(c, r[c]) for c in cols))
    else:
        heads = ("sweep", "planned", "done", "div.", "stopped", "failed", "pending", "tokens", "tok/s", "MFU",
                 "updated (UTC)")
        for h in heads:
            table.add_column(h, justify="left" if h in ("sweep", "updated (UTC)") else "right")
        for r in rows:
            rate = r.get("tokens_per_s")
            table.add_row(str(r["sweep_id"]), *(str(r[c]) for c in ("planned", "completed", "diverged", "stopped",
                                                                    "failed", "pending")),
                          si(r["tokens_trained"]), "-" if rate is None else si(rate), _cell("mfu", r.get("mfu")),
                          str(r["updated_at"])[:16])
    buf = StringIO()
    Console(file=buf, width=240 if wide else 100).print(table)
    return buf.getvalue()
