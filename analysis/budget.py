"""Tuning budgets: how many settings each family was given to find its best (grid points plus
searched trials), so an answer that compares families can say whether they were tuned alike.

A sweep with a search marks each ``final_losses`` row with ``origin`` (``"grid"`` or
``"search"``; :mod:`orchestrator.reporting`); a *setting* here is one row of the setting columns
without seed, horizon and weights. Marin's optimizer study found claimed speed-ups shrink once
baselines get the same tuning budget: the answer states each family's budget and warns when the
families it compares differ by more than :data:`BUDGET_RATIO` (docs/report.md).
"""

from __future__ import annotations

import pandas as pd

from analysis.horizons import SCOPE
from analysis.tables import SETTING_COLUMNS

__all__ = ["BUDGET_RATIO", "budget_sentences", "tuning_budgets"]

BUDGET_RATIO = 2.0
"""Budgets further apart than this factor between compared families earn a warning."""


def tuning_budgets(table: pd.DataFrame) -> pd.DataFrame:
    """Per (scope, family): ``grid`` points, ``searched`` trials and their ``total``; empty when
    ``table`` (a loss table) has no ``origin`` column or no searched setting."""
    cols = [*SCOPE, "family", "grid", "searched", "total"]
    if "origin" not in table.columns or not table["origin"].eq("search").any():
        return pd.DataFrame(columns=cols)
    settings = table[[*SCOPE, *SETTING_COLUMNS, "origin"]].astype(str).drop_duplicates()
    counts = (
        settings.groupby([*SCOPE, "family", "origin"], sort=True).size().unstack("origin", fill_value=0)
    )
    out = pd.DataFrame(
        {
            "grid": counts.get("grid", 0),
            "searched": counts.get("search", 0),
        },
        index=counts.index,
    ).reset_index()
    out["grid"] = out["grid"].astype("int64")
    out["searched"] = out["searched"].astype("int64")
    out["total"] = out["grid"] + out["searched"]
    return out[cols]


def budget_sentences(table: pd.DataFrame, scope: tuple[str, ...], prefix: str = "") -> list[str]:
    """The budget sentence of one scope, and the warning when budgets differ by more than
    :data:`BUDGET_RATIO`; empty without a search."""
    b = tuning_budgets(table)
    b = b.loc[(b[SCOPE].astype(str) == list(scope)).all(axis=1)]
    if b.empty:
        return []
    parts = [
        f"{r.family} {r.total} ({r.grid} grid + {r.searched} searched)" for r in b.itertuples()
    ]
    out = [
        f"{prefix}tuning budget per family (settings tried: grid points + searched trials): "
        + "; ".join(parts)
        + "."
    ]
    lo, hi = b.loc[b["total"].idxmin()], b.loc[b["total"].idxmax()]
    if len(b) > 1 and hi["total"] > BUDGET_RATIO * lo["total"]:
        out.append(
            f"{prefix}unequal tuning: {hi['family']} was given {hi['total']} settings, "
            f"{lo['family']} {lo['total']} (more than {BUDGET_RATIO:g}× apart) — a family tuned "
            "with fewer settings may look worse only for that; compare with equal budgets "
            "(e.g. one search per family) before concluding."
        )
    return out
