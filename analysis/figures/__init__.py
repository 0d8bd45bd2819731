"""Plotly figure builders over the results frames; each returns a ``plotly.graph_objects.Figure``
or raises :class:`FigureUnavailable` with a one-line reason (the report shows it as a note).

Builders that rank candidates take the :func:`analysis.horizons.loss_table` frame; those that
draw curves also take the labelled ``final_losses`` (which curve belongs to which setting) and
the store's ``curves`` (and, for an old store's forked branches, ``lineages``). Colours: one
per family, the same everywhere (:data:`FAMILY_COLORS`); weights variants by dash and marker.
"""

from __future__ import annotations

from analysis.figures._common import (
    FAMILY_COLORS,
    MAX_CURVE_TRACES,
    MAX_HEATMAP_ROWS,
    MAX_POINTS_PER_TRACE,
    FigureUnavailable,
    family_color,
)
from analysis.figures.compute import compute_figure, compute_totals
from analysis.figures.curve_law import curve_law_figure, curve_law_selection
from analysis.figures.robustness import (
    loss_vs_horizon_figure,
    loss_vs_lr_figure,
    regret_heatmap_figure,
)
from analysis.figures.scaling_laws import MAX_LAW_FITS, chinchilla_figure, data_law_figure
from analysis.figures.schedules import eval_curves_figure, lr_schedule_figure

__all__ = [
    "FAMILY_COLORS",
    "MAX_CURVE_TRACES",
    "MAX_HEATMAP_ROWS",
    "MAX_LAW_FITS",
    "MAX_POINTS_PER_TRACE",
    "FigureUnavailable",
    "chinchilla_figure",
    "compute_figure",
    "compute_totals",
    "curve_law_figure",
    "curve_law_selection",
    "data_law_figure",
    "eval_curves_figure",
    "family_color",
    "loss_vs_horizon_figure",
    "loss_vs_lr_figure",
    "lr_schedule_figure",
    "regret_heatmap_figure",
]
