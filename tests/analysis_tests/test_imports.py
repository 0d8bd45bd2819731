"""The analysis package imports neither ray nor torch (docs/design.md §2: dependency direction)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after(imports: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` are in ``sys.modules`` after ``imports`` in a fresh interpreter."""
    code = f"import sys, json\n{imports}\nprint(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_analysis_imports_without_ray_torch_or_trials():
    # analysis gets the exact per-step LR from its caller (orchestrator.reporting rebuilds it
    # with trials.schedules): it imports neither ray, nor torch, nor trials.
    imports = (
        "import analysis, analysis.horizons, analysis.report, analysis.figures, analysis.tables, "
        "analysis.scaling, analysis.curves, analysis.curve_validation, analysis.curve_regularised, "
        "analysis.compare, "
        "analysis.law_curves, analysis.summary, analysis.grid, analysis.noise"
    )
    assert _loaded_after(imports, ("torch", "ray", "trials", "orchestrator")) == []


def test_the_check_sees_an_imported_module():
    # The same check reports a module that *is* imported, so an empty answer above means something.
    assert _loaded_after("import csv", ("csv", "torch")) == ["csv"]
