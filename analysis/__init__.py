"""Pure functions over a sweep's results tables: horizon robustness, anytime-optimal selection,
scaling-law and loss-curve-law fits, plotly figures and the HTML report.

Imports neither ray nor torch (guarded by ``tests/analysis_tests/test_imports.py``).
"""

from __future__ import annotations

from analysis.anytime import (
    AnytimeAnswer,
    anytime_answers,
    anytime_optimal,
    best_horizon_aware,
    best_per_family,
    robustness,
)
from analysis.compare import build_comparison_report, write_comparison_report
from analysis.curve_regularised import fit_multi_power_regularised
from analysis.curve_validation import CurveLawSelection, select_curve_law
from analysis.curves import (
    LRAnnealingFit,
    MultiPowerFit,
    annealing_areas,
    fit_lr_annealing,
    fit_multi_power,
    law_optima,
    prediction_error,
    refit,
)
from analysis.definitions import DEFINITIONS, candidate_kind
from analysis.fit_checks import FitRefused
from analysis.grid import EdgeWarning, LRSensitivity, edge_warnings, lr_sensitivity, lr_trend
from analysis.horizons import (
    envelope,
    horizon_multiples,
    loss_table,
    oracle,
    regret,
    seed_losses,
)
from analysis.noise import NOISE_RULE, Comparison, paired
from analysis.report import (
    FIGURE_IDS,
    Panel,
    SweepResults,
    build_panels,
    build_report,
    export_curve_csv,
    write_report,
)
from analysis.scaling import ChinchillaFit, DataLawFit, fit_chinchilla, fit_data_law
from analysis.summary import grid_warnings, summary_sentences
from analysis.tables import ResultsFrameError, train_curve

__all__ = [
    "DEFINITIONS",
    "FIGURE_IDS",
    "NOISE_RULE",
    "AnytimeAnswer",
    "ChinchillaFit",
    "Comparison",
    "CurveLawSelection",
    "DataLawFit",
    "EdgeWarning",
    "FitRefused",
    "LRAnnealingFit",
    "LRSensitivity",
    "MultiPowerFit",
    "Panel",
    "ResultsFrameError",
    "SweepResults",
    "annealing_areas",
    "anytime_answers",
    "anytime_optimal",
    "best_horizon_aware",
    "best_per_family",
    "build_comparison_report",
    "build_panels",
    "build_report",
    "candidate_kind",
    "edge_warnings",
    "envelope",
    "export_curve_csv",
    "fit_chinchilla",
    "fit_data_law",
    "fit_lr_annealing",
    "fit_multi_power",
    "fit_multi_power_regularised",
    "grid_warnings",
    "horizon_multiples",
    "law_optima",
    "loss_table",
    "lr_sensitivity",
    "lr_trend",
    "oracle",
    "paired",
    "prediction_error",
    "refit",
    "regret",
    "robustness",
    "seed_losses",
    "select_curve_law",
    "summary_sentences",
    "train_curve",
    "write_comparison_report",
    "write_report",
]
