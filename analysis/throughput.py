"""A sweep's training throughput in one sentence, for the report's compute section.

Reads the ``lineages`` frame's throughput columns (``orchestrator/store/schema.py``, measured as
``trials/throughput.py`` defines them): tokens/s and step time over the timed updates of each
physical run (a trunk shared by several settings counts once), MFU where the device has a
known peak — "n/a" on CPU. Stores written before these columns existed give no sentence.
"""

from __future__ import annotations

import pandas as pd

from analysis.units import si

__all__ = ["throughput_summary", "throughput_sentence"]

_COLUMNS = ("lineage_id", "branch", "tokens_per_s", "step_time_s", "train_time_s", "mfu")


def throughput_summary(lineages: pd.DataFrame | None) -> dict[str, object] | None:
    """``tokens_per_s`` (Σ tokens of timed updates / Σ their time, per lineage), median
    ``step_time_s``, median ``mfu`` (None: n/a), ``runs`` counted and the ``devices``; None when
    no run has throughput."""
    if lineages is None or not set(_COLUMNS) <= set(lineages.columns):
        return None
    runs = lineages.drop_duplicates(["lineage_id", "branch"])
    runs = runs[runs["tokens_per_s"].notna() & runs["train_time_s"].notna()]
    runs = runs[runs["train_time_s"] > 0]
    if runs.empty:
        return None
    seconds = float(runs["train_time_s"].sum())
    tokens = float((runs["tokens_per_s"] * runs["train_time_s"]).sum())
    mfu = pd.to_numeric(runs["mfu"], errors="coerce").dropna()
    devices = sorted({str(d) for d in runs["device"].dropna()}) if "device" in runs else []
    return {"tokens_per_s": tokens / seconds, "step_time_s": float(runs["step_time_s"].median()),
            "mfu": float(mfu.median()) if len(mfu) else None, "runs": int(len(runs)), "devices": devices}


def throughput_sentence(lineages: pd.DataFrame | None) -> str | None:
    """E.g. ``throughput per lineage: 15.2K tokens/s, step time 212 ms (median), MFU n/a on cpu
    (12 runs)``."""
    s = throughput_summary(lineages)
    if s is None:
        return None
    devices = ", ".join(s["devices"]) or "an unrecorded device"  # type: ignore[arg-type]
    mfu = "n/a" if s["mfu"] is None else f"{100 * float(s['mfu']):.1f}% (median)"  # type: ignore[arg-type]
    return (f"throughput per lineage: {si(float(s['tokens_per_s']))} tokens/s, step time "  # type: ignore[arg-type]
            f"{1000 * float(s['step_time_s']):.3g} ms (median), MFU {mfu} on {devices} ({s['runs']} runs)")  # type: ignore[arg-type]
