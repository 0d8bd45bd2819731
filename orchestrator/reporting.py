"""Glue between the store and `analysis`: reports, fit tables and curve export for the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["export_curve", "fit_table", "load_sweep_frames", "write_sweep_report"]


def load_sweep_frames(store: str, sweep_id: str) -> dict[str, Any]:
    """The frames `analysis` works on, for one sweep."""
    from orchestrator.query import final_losses, load_curves, load_lineages, load_sweeps

    sweeps = load_sweeps(store)
    sweep_rows = sweeps[sweeps["sweep_id"] == sweep_id]
    if sweep_rows.empty:
        from orchestrator.store import StoreError

        known = sorted(sweeps["sweep_id"].astype(str).unique())
        raise StoreError(f"sweep must be one of {known} in store {store}, got {sweep_id!r}")
    sweep = sweep_rows.iloc[-1].to_dict()
    plan = json.loads(sweep["plan_json"]) if sweep.get("plan_json") else None
    fl = final_losses(store, sweep_id)
    # horizons a search stopped a setting before have no loss: not an answer (the run's status says why)
    fl = fl[fl["status"] != "stopped"].reset_index(drop=True)
    from orchestrator.search.frames import search_frames

    return {
        "lineages": load_lineages(store, sweep_id),
        "curves": load_curves(store, sweep_id),
        "final_losses": fl,
        "plan": plan,
        "sweep": sweep,
        "search": search_frames(store, sweep_id),  # None without [search]; for analysis.figures.search
    }


def write_sweep_report(store: str, sweep_id: str, out: str | Path) -> Path:
    from analysis.report import write_report

    frames = load_sweep_frames(store, sweep_id)
    write_report(out, frames["lineages"], frames["curves"], frames["final_losses"], plan=frames["plan"],
                 sweep=frames["sweep"], title=f"lrsweep report: {sweep_id}")
    return Path(out)


def fit_table(store: str, sweep_id: str, *, as_json: bool = False) -> str:
    """Data-law fits L(D) = E + B/D^beta per (family, weights, model size), as text or JSON."""
    from analysis.horizons import loss_table  # noqa: F401  (validates the frame shape)
    from analysis.scaling import fit_data_law

    frames = load_sweep_frames(store, sweep_id)
    fl = frames["final_losses"]
    fl = fl[fl["status"] == "completed"].dropna(subset=["loss"])
    fl = fl.assign(tokens=fl["horizon"] * fl["tokens_per_step"])
    results = []
    for (family, weights, size), group in fl.groupby(["family", "weights", "model_size"], observed=True):
        best = group.groupby("tokens")["loss"].min()  # the best LR at each horizon
        if len(best) < 3:
            continue
        try:
            fit = fit_data_law(best.index.to_numpy(dtype=float), best.to_numpy(dtype=float))
        except ValueError as exc:
            results.append({"family": family, "weights": weights, "model_size": size, "error": str(exc)})
            continue
        results.append({"family": family, "weights": weights, "model_size": size, "points": len(best),
                        "E": fit.E, "B": fit.B, "beta": fit.beta, "objective": fit.objective})
    if as_json:
        return json.dumps(results, indent=2, default=float)
    if not results:
        return "no (family, weights, size) group has 3 or more horizons to fit"
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"data laws L(D) = E + B / D^beta  ({sweep_id})")
    for col in ("family", "weights", "model_size", "points", "E", "B", "beta", "objective"):
        table.add_column(col)
    for r in results:
        if "error" in r:
            table.add_row(r["family"], r["weights"], r["model_size"], "-", "fit failed", "", "", r["error"])
        else:
            table.add_row(r["family"], r["weights"], r["model_size"], str(r["points"]), f"{r['E']:.4f}",
                          f"{r['B']:.4g}", f"{r['beta']:.4f}", f"{r['objective']:.3g}")
    buf = StringIO()
    Console(file=buf, width=140).print(table)
    return buf.getvalue()


def export_curve(store: str, sweep_id: str, lineage: str, branch: str | None = None) -> str:
    """``step,lr,loss`` CSV of one whole train curve: a lineage's trunk, or one of its cooldown
    branches led by the trunk's rows before the fork (so the LR sequence starts at step 0)."""
    from analysis.report import export_curve_csv
    from orchestrator.query import load_curves
    from trials.errors import ConfigError

    curves = load_curves(store, sweep_id, split="train")
    ids = sorted(i for i in curves["lineage_id"].astype(str).unique() if i.startswith(lineage))
    if len(ids) != 1:
        raise ConfigError("lineage", lineage, f"the id (or a unique prefix) of one lineage ({len(ids)} match)")
    sub = curves[curves["lineage_id"].astype(str) == ids[0]]
    branches = sorted(sub["branch"].astype(str).unique())
    if branch is None:
        branch = "trunk" if "trunk" in branches else branches[0]
    elif branch not in branches:
        matches = [b for b in branches if b.startswith(branch)]
        if len(matches) != 1:
            raise ConfigError("--branch", branch, f"one of {branches} (or a unique prefix)")
        branch = matches[0]
    return export_curve_csv(sub, ids[0], branch)
