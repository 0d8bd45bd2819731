"""The results table of the report: every (candidate, horizon), sortable and filterable.

One row per (sweep, scope, candidate, horizon) with the mean loss, its standard error (or
"1 seed"), the regret against the envelope and the paired comparison with the envelope's
candidate at that horizon (:mod:`analysis.noise`). Numbers carry their exact value in
``data-v`` so the page's script sorts them numerically (``inf`` for a divergence, empty for
missing: sorted last); every header has a ``data-key`` the page address can name
(``#sort=regret``).
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from analysis.figures._common import horizon_text, si
from analysis.horizons import SCOPE, envelope, horizon_multiples, regret
from analysis.noise import paired_frame
from analysis.units import pct3, short_numbers

__all__ = ["COLUMNS", "results_rows", "results_table_html"]

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("sweep", "sweep", "text"),
    ("scope", "workload · size", "text"),
    ("candidate", "candidate", "text"),
    ("kind", "kind", "text"),
    ("family", "family", "text"),
    ("weights", "weights", "text"),
    ("peak_lr", "peak LR", "num"),
    ("horizon", "steps", "num"),
    ("tokens", "tokens", "num"),
    ("multiple", "horizon", "num"),
    ("loss", "loss (mean)", "num"),
    ("stderr", "± s.e.", "num"),
    ("n_seeds", "seeds", "num"),
    ("regret", "regret vs envelope", "num"),
    ("verdict", "vs envelope (paired)", "text"),
)
"""(data-key, header, type) of every column, in order."""


def results_rows(table: pd.DataFrame, seeds: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of the table as a frame (also what the comparison report stacks)."""
    out = regret(table)
    env = envelope(table)[[*SCOPE, "horizon", "candidate"]].rename(
        columns={"candidate": "env_candidate"}
    )
    out = out.merge(env, on=[*SCOPE, "horizon"], how="left")
    mults, _unit = horizon_multiples(table)
    out = out.merge(mults, on=[*SCOPE, "horizon"], how="left")
    out["horizon_text"] = horizon_text(out)
    out["verdict"] = "n/a (no paired seeds)"
    if seeds is not None and len(seeds):
        keys = [*SCOPE, "candidate", "horizon"]
        env_seeds = seeds.rename(columns={"candidate": "env_candidate"})
        right = out[[*keys, "env_candidate"]].merge(
            env_seeds[[*SCOPE, "env_candidate", "horizon", "seed", "loss"]],
            on=[*SCOPE, "env_candidate", "horizon"],
        )
        cmp = paired_frame(seeds, right, keys).set_index(keys)
        idx = pd.MultiIndex.from_frame(out[keys])
        verdict = cmp["verdict"].reindex(idx).to_numpy(object)
        diff = cmp["diff"].reindex(idx).to_numpy(float)
        se = cmp["stderr"].reindex(idx).to_numpy(float)
        out["verdict"] = [
            "n/a (no paired seeds)" if not isinstance(v, str)
            else v if v.startswith("n/a") or v == "diverged"
            else f"{d:+.4f} ± {e:.2g} ({v})"
            for v, d, e in zip(verdict, diff, se, strict=True)
        ]  # fmt: skip
    out.loc[out["candidate"] == out["env_candidate"], "verdict"] = "is the envelope"
    out["scope"] = out[SCOPE].astype(str).agg(" · ".join, axis=1)
    return out


def _cell(value: object, kind: str, text: str | None = None) -> str:
    if kind == "num":
        v = float(value) if value is not None else math.nan
        data = (
            ""
            if math.isnan(v)
            else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
        )
        shown = text if text is not None else ("" if math.isnan(v) else f"{v:g}")
        return f'<td class="num" data-v="{data}">{html.escape(shown)}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def results_table_html(
    rows: pd.DataFrame, table_id: str = "results-table", *, with_sweep: bool = False
) -> str:
    """The table (with its filter box and row count) for :func:`results_rows` frames."""
    cols = [c for c in COLUMNS if with_sweep or c[0] != "sweep"]
    head = "".join(
        f'<th data-key="{k}" data-type="{t}" title="click to sort">{html.escape(h)}</th>'
        for k, h, t in cols
    )
    body = []
    for r in rows.to_dict("records"):
        cells = []
        for key, _h, kind in cols:
            v = r.get(key)
            if key == "loss":
                text = (
                    "diverged"
                    if v == math.inf
                    else (
                        ("stopped" if (r.get("n_stopped") or 0) > 0 else "missing")
                        if v is None or math.isnan(v)
                        else f"{v:.4f}"
                    )
                )
                cells.append(_cell(v, kind, text))
            elif key == "stderr":
                text = (
                    "n/a (1 seed)" if r["n_seeds"] <= 1 else ("" if math.isnan(v) else f"{v:.2g}")
                )
                cells.append(_cell(v, kind, text))
            elif key == "regret":
                text = (
                    "diverged"
                    if v == math.inf
                    else ("n/a" if v is None or math.isnan(v) else pct3(v, sign=True))
                )
                cells.append(_cell(v, kind, text))
            elif key == "tokens":
                cells.append(_cell(v, kind, si(v) if v is not None and np.isfinite(v) else ""))
            elif key == "multiple":
                cells.append(
                    _cell(v, kind, r["horizon_text"].split(" · ")[-1])
                )  # "0.4× Chinchilla"
            elif key in ("horizon", "n_seeds"):
                cells.append(_cell(v, kind, f"{int(v):,}"))
            elif key == "peak_lr":
                cells.append(_cell(v, kind, f"{v:.3g}"))
            elif key == "weights":  # a searched ema@0.033867… reads ema@0.0339; data-v keeps it whole
                cells.append(_cell(v, kind, short_numbers(str(v))))
            else:
                cells.append(_cell(v, kind))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table-tools"><input type="search" data-table="{table_id}" '
        f'placeholder="filter rows: words that must all appear (e.g. cosine raw)"> '
        f'<span data-count="{table_id}"></span></div>'
        f'<div class="scroll"><table class="lrsweep-table" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
