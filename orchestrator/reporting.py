"""Glue between the store and `analysis`: reports (one sweep or several side by side), the fit
table of ``lrsweep fit``, curve export — and the exact per-step LR of every curve, rebuilt from
its schedule, which `analysis` (no torch, no trials) cannot do itself."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LRSequences",
    "export_curve",
    "fit_table",
    "load_sweep_frames",
    "load_sweep_results",
    "report_sweep",
    "answer_and_warnings",
    "report_answer",
    "report_warnings",
    "write_comparison",
    "write_sweep_report",
]


class LRSequences(Mapping):
    """``{curve key: LR of every update from step 0}``, rebuilt lazily from each curve's schedule:
    ``build_schedule(name, warmup=W, **params).multiplier(step, horizon) · peak_lr`` (trials,
    pure Python), over the curve's horizon. Keys are ``(setting_id, lineage_id, branch)`` and
    ``(lineage_id, branch)`` (what an older store's curves can be matched by). A curve whose
    schedule cannot be rebuilt is absent."""

    def __init__(self, final_losses: Any) -> None:
        fl = final_losses.loc[
            final_losses["schedule"].notna() & (final_losses["schedule"].astype(str) != "")
        ]
        self._spec: dict[tuple, tuple] = {}
        self._alias: dict[tuple, tuple] = {}  # (lineage_id, branch) → the full key
        cols = ["schedule", "schedule_params", "warmup", "peak_lr"]
        for key, rows in fl.groupby(
            ["setting_id", "lineage_id", "branch"], sort=False, dropna=False
        ):
            r = rows.iloc[0]
            key = tuple(str(k) for k in key)
            self._spec[key] = (*(r[c] for c in cols), int(rows["horizon"].max()))
            self._alias.setdefault(key[1:], key)
        self._cache: dict[tuple, np.ndarray | None] = {}

    def _build(self, key: tuple) -> np.ndarray | None:
        from trials.errors import ConfigError
        from trials.schedules import build_schedule

        name, params, warmup, peak, horizon = self._spec[key]
        try:
            p = json.loads(params) if isinstance(params, str) and params else dict(params or {})
            sched = build_schedule(str(name), warmup=int(warmup), **p)
            return np.array([sched.multiplier(t, horizon) for t in range(horizon)]) * float(peak)
        except (ConfigError, TypeError, ValueError):
            return None

    def __getitem__(self, key: tuple) -> np.ndarray:
        key = tuple(str(k) for k in key)
        key = self._alias.get(key, key)
        if key not in self._spec:
            raise KeyError(key)
        if key not in self._cache:
            self._cache[key] = self._build(key)
        if self._cache[key] is None:
            raise KeyError(key)
        return self._cache[key]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._spec)

    def __len__(self) -> int:
        return len(self._spec)


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
    # horizons a search stopped a setting before keep their row (status "stopped", no loss): the
    # analysis compares that setting only at the horizons it reached and says it was stopped
    fl = final_losses(store, sweep_id)
    from orchestrator.search.frames import search_frames

    search = search_frames(store, sweep_id)
    if search is not None:
        fl = _mark_origin(fl, sweep)
    return {
        "lineages": load_lineages(store, sweep_id),
        "curves": load_curves(store, sweep_id),
        "final_losses": fl,
        "plan": plan,
        "sweep": sweep,
        "search": search,  # None without [search]; for analysis.figures.search
    }


def _mark_origin(fl: pd.DataFrame, sweep: Mapping[str, Any]) -> pd.DataFrame:
    """``fl`` with ``origin``: ``"grid"`` for a setting of the sweep file's grid, ``"search"``
    for one a search trial asked (analysis.budget counts each family's tuning budget from it)."""
    import tomllib
    import yaml

    from orchestrator.planner import expand_settings
    from orchestrator.spec import SpecError, parse_spec

    text = str(sweep.get("spec_text") or "")
    try:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = yaml.safe_load(text)
        grid = {s.trial.setting_id for s in expand_settings(parse_spec(data))}
    except (SpecError, yaml.YAMLError, TypeError, ValueError):  # another version's spec: no budgets
        return fl
    return fl.assign(origin=fl["setting_id"].astype(str).isin(grid).map({True: "grid", False: "search"}))


def load_sweep_results(store: str, sweep_id: str) -> Any:
    """One sweep as :class:`analysis.report.SweepResults`, with its rebuilt LR sequences."""
    from analysis.report import SweepResults

    f = load_sweep_frames(store, sweep_id)
    return SweepResults(
        f["lineages"],
        f["curves"],
        f["final_losses"],
        f["plan"],
        f["sweep"],
        LRSequences(f["final_losses"]),
        f["search"],
    )


def write_sweep_report(store: str, sweep_id: str, out: str | Path) -> Path:
    """Write one sweep's HTML report."""
    _write_sweep_report(store, sweep_id, out)
    return Path(out)


def report_sweep(store: str, sweep_id: str, out: str | Path) -> tuple[Path, list[str], list[str]]:
    """Write one sweep's HTML report; also return its answer and its warnings
    (:func:`answer_and_warnings`), from the frames the report was drawn from (the store is read
    once)."""
    r = _write_sweep_report(store, sweep_id, out)
    return (Path(out), *answer_and_warnings(r.final_losses))


def _write_sweep_report(store: str, sweep_id: str, out: str | Path) -> Any:  # analysis.report.SweepResults (imported lazily)
    from analysis.report import write_report

    r = load_sweep_results(store, sweep_id)
    write_report(out, r.lineages, r.curves, r.final_losses, plan=r.plan, sweep=r.sweep,
                 title=f"lrsweep report: {sweep_id}", lr_sequences=r.lr_sequences, search=r.search)  # fmt: skip
    return r


def write_comparison(store: str, sweep_ids: Sequence[str], out: str | Path) -> Path:
    """Write the side-by-side report of several sweeps of one store."""
    from analysis.compare import write_comparison_report

    results = [load_sweep_results(store, s) for s in sweep_ids]
    return write_comparison_report(
        out, results, title=f"lrsweep comparison: {' vs '.join(sweep_ids)}"
    )


def report_warnings(store: str, sweep_id: str) -> list[str]:
    """The sentences the CLI prints as warnings after a report or a fit: grid edges, one seed,
    unequal tuning budgets."""
    return answer_and_warnings(load_sweep_frames(store, sweep_id)["final_losses"])[1]


def report_answer(store: str, sweep_id: str) -> tuple[list[str], list[str]]:
    """:func:`answer_and_warnings` of one stored sweep."""
    return answer_and_warnings(load_sweep_frames(store, sweep_id)["final_losses"])


_ANSWER = ("anytime-optimal", "best anytime candidate", "best horizon-aware", "tuning budget",
           "optimal peak LR", "stopped early by the search")
_WARN = ("grid edge", "noise: one seed", "unequal tuning")


def answer_and_warnings(fl: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The report's answer in a few sentences (the headline, the best horizon-aware setting,
    tuning budgets, the LR trend) and the warnings a reader must not miss (grid edges, one seed,
    unequal tuning budgets); both from :func:`analysis.summary.summary_sentences`."""
    from analysis.horizons import loss_table, seed_losses
    from analysis.summary import summary_sentences

    if fl.empty:
        return [], []
    sentences = summary_sentences(loss_table(fl), seed_losses(fl))
    warn = [s for s in sentences if any(k in s for k in _WARN)]
    answer = [s for s in sentences if s not in warn and any(k in s for k in _ANSWER)]
    return answer, warn


def fit_table(store: str, sweep_id: str, *, as_json: bool = False, wide: bool = False) -> str:
    """Data-law fits L(D) = E + B/D^beta per (family, weights, model size), as text or JSON.

    Each group is fitted on its best loss at each horizon (the envelope over its other
    settings); a group with fewer than 4 horizons is refused with the reason, a fit with a
    parameter on a bound carries its flags, and the grid-edge warnings follow the table.
    """
    from analysis.fit_checks import FitRefused
    from analysis.horizons import loss_table
    from analysis.scaling import fit_data_law

    fl = load_sweep_frames(store, sweep_id)["final_losses"]
    table = loss_table(fl) if len(fl) else None
    results = []
    if table is not None:
        ok = table.loc[np.isfinite(table["loss"])]
        ok = ok.assign(x=ok["tokens"].where(ok["tokens"].notna(), ok["horizon"]))
        for (family, weights, size), group in ok.groupby(
            ["family", "weights", "model_size"], sort=True
        ):
            best = group.groupby("x")["loss"].min()  # the best setting at each horizon
            row = {"family": family, "weights": weights, "model_size": size, "points": len(best)}
            try:
                fit = fit_data_law(best.index.to_numpy(dtype=float), best.to_numpy(dtype=float))
            except FitRefused as exc:
                results.append({**row, "refused": str(exc)})
                continue
            except ValueError as exc:
                results.append({**row, "error": str(exc)})
                continue
            results.append({**row, "E": fit.E, "B": fit.B, "beta": fit.beta,
                            "objective": fit.objective, "flags": list(fit.flags)})  # fmt: skip
    warnings = report_warnings(store, sweep_id) if table is not None else []
    if as_json:
        return json.dumps({"fits": results, "warnings": warnings}, indent=2, default=float)
    if not results:
        return "no finite losses to fit yet"
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    from analysis.units import short_numbers

    out = Table(title=f"data laws L(D) = E + B / D^beta  ({sweep_id})", title_justify="left")
    for col in ("family", "weights", "model_size", "points", "E", "B", "beta", "objective", "notes"):
        out.add_column(
            "size" if col == "model_size" and not wide else "n" if col == "points" and not wide else col,
            overflow="fold", no_wrap=col != "notes",
        )
    for r in results:
        head = (str(r["family"]), short_numbers(str(r["weights"])), str(r["model_size"]), str(r["points"]))
        if "refused" in r:
            out.add_row(*head, "refused", "", "", "", r["refused"].split(": ", 1)[-1])
        elif "error" in r:
            out.add_row(*head, "fit failed", "", "", "", r["error"])
        else:
            out.add_row(*head, f"{r['E']:.4f}", f"{r['B']:.4g}", f"{r['beta']:.4f}",
                        f"{r['objective']:.3g}", "; ".join(r["flags"]) or "ok")  # fmt: skip
    buf = StringIO()
    console = Console(file=buf, width=240 if wide else 100)  # the notes column wraps to fit
    console.print(out)
    for w in warnings:
        console.print(f"warning: {w}", markup=False, highlight=False)
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
        raise ConfigError(
            "lineage", lineage, f"the id (or a unique prefix) of one lineage ({len(ids)} match)"
        )
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
