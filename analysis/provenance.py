"""What produced a report: the sweep's spec, code version and dates, and the hyperparameters it
held fixed or swept — so a figure can be traced to the run that made it.

:func:`grid_description` reads the (labelled) ``final_losses``: a column with one value over
the sweep is *fixed*, one with several is *swept*; the JSON parameters are split per optimizer
(``adamw.weight_decay``) and per schedule (``wsd.cooldown_fraction``).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["grid_description", "provenance", "provenance_html"]

_PLAIN = (
    "workload", "model_size", "n_params", "family", "optimizer", "schedule", "peak_lr", "warmup",
    "batch_size", "tokens_per_step", "seed", "weights", "horizon",
)  # fmt: skip


def _text(v: object) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def grid_description(final_losses: pd.DataFrame) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(fixed ``{name: value}``, swept ``{name: [values]}``) over the sweep's settings."""
    fixed: dict[str, str] = {}
    swept: dict[str, list[str]] = {}

    def put(name: str, values: list[object]) -> None:
        uniq = sorted({_text(v) for v in values if v is not None and str(v) not in ("", "nan")},
                      key=lambda x: (len(x), x) if not _is_number(x) else (0, float(x)))  # fmt: skip
        if len(uniq) == 1:
            fixed[name] = uniq[0]
        elif len(uniq) > 1:
            swept[name] = uniq

    for col in _PLAIN:
        if col in final_losses.columns:
            put(col, final_losses[col].tolist())
    for col, owner in (("optimizer_params", "optimizer"), ("schedule_params", "schedule")):
        if col not in final_losses.columns:
            continue
        for name, rows in final_losses.groupby(owner, sort=True, dropna=False):
            if not str(name):
                continue
            parsed = [json.loads(s) if s else {} for s in rows[col].drop_duplicates()]
            for key in sorted({k for d in parsed for k in d}):
                put(f"{name}.{key}", [d.get(key) for d in parsed])
    return fixed, swept


def _is_number(x: str) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return True


def provenance(sweep: Any, final_losses: pd.DataFrame) -> dict[str, Any]:
    """The facts a report states about where it came from.

    Args:
        sweep: the store's sweep row (a mapping with ``sweep_id``, ``spec_text``,
            ``spec_hash``, ``code_version``, ``created_at``, ``updated_at``), an id, or None.
        final_losses: the labelled ``final_losses`` (for the fixed and swept hyperparameters).
    """
    row: Mapping[str, Any] = sweep if isinstance(sweep, Mapping) else {}
    sweep_id = row.get("sweep_id") or row.get("name") or (sweep if isinstance(sweep, str) else None)
    try:
        from importlib.metadata import version

        analysis_version = version("lrsweep")
    except Exception:  # not installed (a source checkout on sys.path)
        analysis_version = "unknown"
    fixed, swept = grid_description(final_losses)
    return {
        "sweep_id": sweep_id,
        "spec_text": row.get("spec_text"),
        "spec_hash": row.get("spec_hash"),
        "code_version": row.get("code_version"),
        "created_at": str(row["created_at"]) if row.get("created_at") is not None else None,
        "updated_at": str(row["updated_at"]) if row.get("updated_at") is not None else None,
        "report_date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "report_version": f"lrsweep {analysis_version}",
        "fixed": fixed,
        "swept": swept,
    }


def provenance_html(p: Mapping[str, Any], heading: str = "Provenance") -> str:
    """The provenance as a section: facts, fixed and swept hyperparameters, the spec."""
    facts = [
        ("sweep", p.get("sweep_id")),
        ("code version (of the sweep's runs)", p.get("code_version")),
        ("spec hash", p.get("spec_hash")),
        ("sweep created", p.get("created_at")),
        ("sweep last written", p.get("updated_at")),
        ("report written", p.get("report_date")),
        ("report written by", p.get("report_version")),
    ]
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v) if v is not None else 'not recorded')}</td></tr>"
        for k, v in facts
    )
    fixed = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in p["fixed"].items()
    )
    swept = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(', '.join(v))}</td></tr>"
        for k, v in p["swept"].items()
    )
    spec = p.get("spec_text")
    spec_html = (
        f'<details><summary>the sweep file as submitted</summary><pre class="spec">{html.escape(spec)}</pre></details>'
        if spec
        else "<p>The sweep file is not recorded in the store.</p>"
    )
    return (
        f'<section id="provenance"><h2>{html.escape(heading)}</h2><table class="provenance">{rows}</table>'
        f'<h3>Fixed hyperparameters</h3><table class="fixed-hparams"><thead><tr><th>name</th><th>value</th>'
        f"</tr></thead><tbody>{fixed}</tbody></table>"
        f'<h3>Swept</h3><table class="swept-hparams"><thead><tr><th>name</th><th>values</th></tr></thead>'
        f"<tbody>{swept}</tbody></table>{spec_html}</section>"
    )
