"""Pure functions over a sweep's results tables: horizon robustness, anytime-optimal selection,
scaling-law and loss-curve-law fits, plotly figures and the HTML report.

Imports neither ray nor torch (guarded by ``tests/analysis_tests/test_imports.py``).
"""

from __future__ import annotations

from analysis.curves import (
    LRAnnealingFit,
    MultiPowerFit,
    annealing_areas,
    fit_lr_annealing,
    fit_multi_power,
    prediction_error,
)
from analysis.horizons import (
    NOISE_RULE,
    LRSensitivity,
    anytime_optimal,
    horizon_multiples,
    loss_table,
    lr_sensitivity,
    oracle,
    regret,
    robustness,
    summary_sentences,
    within_noise,
)
from analysis.report import (
    FIGURE_IDS,
    Panel,
    build_panels,
    build_report,
    export_curve_csv,
    write_report,
)
from analysis.scaling import ChinchillaFit, DataLawFit, fit_chinchilla, fit_data_law
from analysis.tables import ResultsFrameError, train_curve

__all__ = [
    "FIGURE_IDS",
    "NOISE_RULE",
    "ChinchillaFit",
    "DataLawFit",
    "LRAnnealingFit",
    "LRSensitivity",
    "MultiPowerFit",
    "Panel",
    "ResultsFrameError",
    "annealing_areas",
    "anytime_optimal",
    "build_panels",
    "build_report",
    "export_curve_csv",
    "fit_chinchilla",
    "fit_data_law",
    "fit_lr_annealing",
    "fit_multi_power",
    "horizon_multiples",
    "loss_table",
    "lr_sensitivity",
    "oracle",
    "prediction_error",
    "regret",
    "robustness",
    "summary_sentences",
    "train_curve",
    "within_noise",
    "write_report",
]
