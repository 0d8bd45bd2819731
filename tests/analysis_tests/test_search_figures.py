"""Search figures from plain frames: what each trace shows, and what cannot be drawn."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.figures import FigureUnavailable
from analysis.figures.search import (
    importance_figure,
    pareto_figure,
    search_history_figure,
    search_panels,
)

ROOT = Path(__file__).resolve().parents[2]


def frames(objective: str = "mean") -> dict[str, pd.DataFrame]:
    trials = pd.DataFrame({
        "number": [0, 1, 2, 3], "state": ["complete", "pruned", "complete", "complete"],
        "objective": [0.5, 0.9, 0.3, 0.4], "rung": [2, 0, 2, 2], "tokens": [100, 10, 100, 100],
        "cum_tokens": [100, 110, 210, 310], "best_so_far": [0.5, 0.5, 0.3, 0.3],
        "on_front": [True, False, True, False], "loss@10": [0.9, 1.2, 1.0, 0.95], "loss@100": [0.5, math.nan, 0.3, 0.4],
        "param:lr": [0.1, 0.2, 0.3, 0.4],
    })
    grid = pd.DataFrame({"setting_id": ["a", "b"], "label": ["poly lr=0.1", "poly lr=0.3"], "objective": [0.35, math.inf],
                         "loss@10": [1.0, 2.0], "loss@100": [0.35, math.inf]})
    imp = pd.DataFrame({"target": ["objective", "objective"], "param": ["lr", "gamma"], "importance": [0.7, 0.3]})
    meta = pd.DataFrame([{"objective": objective, "horizons": [10, 100], "unit": "steps"}])
    return {"trials": trials, "grid": grid, "importances": imp, "meta": meta}


def test_history_shows_best_so_far_by_trial_and_by_tokens_and_the_grid_best() -> None:
    fig = search_history_figure(frames())
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["complete"].x) == [0, 2, 3]
    assert list(by_name["stopped (at its rung)"].y) == [0.9]
    best = [t for t in fig.data if t.name == "best so far"][0]
    assert list(best.y) == [0.5, 0.5, 0.3, 0.3]
    tokens = [t for t in fig.data if t.mode == "lines+markers"][0]
    assert list(tokens.x) == [100, 110, 210, 310]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert {s.y0 for s in lines} == {0.35}  # the grid's finite best, on both panels
    assert len(lines) == 2


def test_pareto_draws_the_front_beside_the_grid_and_only_for_pareto() -> None:
    with pytest.raises(FigureUnavailable, match="one objective"):
        pareto_figure(frames("mean"))
    fig = pareto_figure(frames("pareto"))
    names = [t.name for t in fig.data]
    assert names.count("grid") == 2 and [n for n in names if n != "grid"] == ["trial 0", "trial 2"]
    assert list(fig.data[-1].y) == [1.0, 0.3]
    with pytest.raises(FigureUnavailable, match="single objective"):
        search_history_figure(frames("pareto"))


def test_importances_and_panels() -> None:
    fig = importance_figure(frames())
    assert list(fig.data[0].y) == ["gamma", "lr"] and list(fig.data[0].x) == [0.3, 0.7]
    empty = dict(frames(), importances=pd.DataFrame(columns=["target", "param", "importance"]))
    panels = search_panels(empty)
    assert [p[0] for p in panels] == ["search-history", "search-importance", "search-pareto"]
    assert panels[1][3] is None and panels[1][4].startswith("Not drawn: fewer than three")
    assert search_panels(None) == []


def test_search_figures_import_neither_optuna_ray_nor_torch() -> None:
    code = ("import sys, analysis.figures.search; "
            "print(sorted(m for m in ('optuna', 'ray', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
