"""Every script in ``benchmarks/`` runs against the current API: each is run as its own process
with ``--smoke`` (tiny sizes, seconds), must exit 0 and end its stdout with one JSON object, and
that object must hold the figures the script exists for, as finite numbers where they are ratios
(a benchmark broken by an API change used to print ``0.0``; here it fails).

Scripts are found by glob, so one added later is run too (with the generic check: a non-empty
JSON object) until it gets its own check in ``CHECKS``. ``SKIPPED`` is the one list of scripts
that cannot run here, each with its reason; it is empty. ``benchmarks/README.md`` lists what
each script measures and its smoke mode.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))
SMOKE_TIMEOUT_S = 600  # per script: each takes < 20 s on an idle 2-core machine, 10x that when loaded

# script name -> why it cannot run in CI (pytest reports the reason). Keep empty.
SKIPPED: dict[str, str] = {}


def last_json(stdout: str) -> Any:
    """The JSON value that ``stdout`` ends with (Ray or a library may print lines before it)."""
    decoder = json.JSONDecoder()
    starts = [0] + [i + 1 for i, c in enumerate(stdout) if c == "\n"]
    for start in starts:
        if stdout[start : start + 1] not in ("{", "["):
            continue
        try:
            value, end = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            continue
        if not stdout[end:].strip():
            return value
    raise AssertionError(f"stdout does not end with JSON; its tail:\n{stdout[-2000:]}")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def positive(x: Any) -> float:
    """``x`` as a float, asserting it is a finite number above zero."""
    assert isinstance(x, int | float) and not isinstance(x, bool), f"not a number: {x!r}"
    assert math.isfinite(x) and x > 0, f"not a finite positive number: {x!r}"
    return float(x)


def _chinchilla_fit(r: dict) -> None:
    positive(r["ours"]["objective"])
    positive(r["plain_reference"]["objective"])
    positive(r["speedup_full_grid"])
    # our fit reaches the plain method's optimum or a lower one (rel. diff = (plain - ours) / ours)
    assert r["objective_rel_diff_plain_minus_ours"] >= -1e-6
    # the smoke run leaves out the busy-machine comparison (it spins both cores by design)


def _cluster_overhead(r: dict) -> None:
    positive(r["first_trial_ratio"])
    positive(r["overhead_per_lineage_ratio"])
    for way in ("embedded_local_ray", "multinode_submitted_job"):
        positive(r[way]["train_s"])
        assert r[way]["first_trial_s"] < r[way]["wall_s"]


def _curve_law(r: dict) -> None:
    public = r["public_400M"]  # --smoke: the public path on curves drawn from the published law
    # the published parameters predict curves drawn from them to the noise (0.1%)
    assert public["published_params"]["mean_PredE"] < 0.003
    assert positive(public["ours_loso"]["mean_PredE"]) < 0.01
    positive(public["ratio_ours_loso_over_reference_PredE"])


def _divergence_rule(r: dict) -> None:
    # the rule in use marks no healthy run diverged; the first-loss rule it replaced did
    assert r["linreg_current"]["marked"] == "0/4", r["linreg_current"]
    assert r["chi2_marked_fraction"]["current"] == 0.0
    assert r["chi2_marked_fraction"]["first_loss"] > 0.0
    for first, last in r["linreg_risk_first_last"].values():
        assert 0 < last < first  # healthy: the excess risk falls


def _object_store_writes(r: dict) -> None:
    assert r["rows"] == 5_000
    for ratio in r["time_ratio_vs_local"].values():
        positive(ratio)
    positive(r["local"]["MB_per_s"])


def _optimizers(r: dict) -> None:
    rows = r["optimizers"]
    assert rows[r["baseline"]]["step_ratio"] == 1.0
    assert len(rows) >= 9, sorted(rows)
    for row in rows.values():
        positive(row["step_ratio"])
        positive(row["train_step_ratio"])


def _orchestration(r: dict) -> None:
    assert "isolated" in r["method"]
    assert r["lineages"] == 6
    positive(r["isolated_compute"]["total_s"])
    for way in ("lrsweep", "plain_tune_reuse", "plain_tune_no_reuse"):
        # against isolated compute, a way cannot beat the cores it has by much (noise aside)
        assert positive(r[way]["efficiency"]) < 1.5, r[way]
        positive(r[way]["in_trial_over_isolated"])
    positive(r["lrsweep_over_plain_tune_reuse"])


def _planning(r: dict) -> None:
    for name, row in r["planning"].items():
        assert row["planned_steps"] == row["minimum_steps"], name  # the planner reaches the minimum
        assert row["planned_steps"] < row["naive_steps"], name
    for label, row in r["extension"].items():
        assert 0 < row["steps_ratio"] < 1, label  # extending costs less than retraining
        positive(row["wall_ratio"])


def _query_latency(r: dict) -> None:
    assert r["answers_identical"] is True
    assert r["compacted"]["files"] < r["fragmented"]["files"]
    assert r["fragmented_over_compacted"], r
    for ratio in r["fragmented_over_compacted"].values():
        positive(ratio)


def _query_sandbox(r: dict) -> None:
    for label in ("fragmented", "compacted"):
        positive(r[label]["confined_over_unconfined"])


def _report_generation(r: dict) -> None:
    quick = r["quickstart_synthetic"]  # --smoke: the quickstart-sized sweep only
    assert quick["n_lineages"] == 12 and quick["figures_drawn"] > 0, quick
    positive(quick["report_s_median"])
    positive(quick["ratio_to_5s_budget"])


def _reproductions(r: dict) -> None:
    linreg = r["reproductions"]["linreg"]
    assert linreg["not_completed"] == []
    for cells in linreg["averaged_risk"].values():
        for cell in cells.values():
            positive(cell["measured"])
            positive(cell["exact"])


def _search(r: dict) -> None:
    row = r["workloads"]["linreg"]
    assert row["grid"]["lineages"] == 4
    for stopping in ("search_halving", "search_none"):
        positive(row[stopping]["tokens_vs_grid"])
        positive(row[stopping]["best_vs_grid"])
    equal = row["equal_budget"]
    assert equal["shared"]["n_trials"] == equal["per_family"]["n_trials"]  # the same total budget
    assert set(equal["per_family"]["families"]) == set(equal["grid_best"]) == {"polynomial", "wsd"}
    # per family, its own study of n trials; both ways are judged against each family's grid
    assert {row["trials"] for row in equal["per_family"]["families"].values()} == {equal["per_family"]["n_trials"] // 2}
    assert set(r["sampler_overhead_ms_per_trial"]) == {"tpe", "random", "cmaes", "gp", "nsga2"}
    for ms in r["sampler_overhead_ms_per_trial"].values():
        positive(ms)


def _trial_throughput(r: dict) -> None:
    assert r["ratio_vs_bare"]["bare"] == 1.0
    for ratio in r["ratio_vs_bare"].values():
        positive(ratio)
    positive(r["tokens_per_s"]["lineage_4_averagers"])


CHECKS: dict[str, Callable[[dict], None]] = {
    "chinchilla_fit": _chinchilla_fit,
    "cluster_overhead": _cluster_overhead,
    "curve_law": _curve_law,
    "divergence_rule": _divergence_rule,
    "object_store_writes": _object_store_writes,
    "optimizers": _optimizers,
    "orchestration": _orchestration,
    "planning": _planning,
    "query_latency": _query_latency,
    "query_sandbox": _query_sandbox,
    "report_generation": _report_generation,
    "reproductions": _reproductions,
    "search": _search,
    "trial_throughput": _trial_throughput,
}


def test_every_check_names_a_script() -> None:
    assert set(CHECKS) | set(SKIPPED) <= {p.stem for p in SCRIPTS}
    assert len(SCRIPTS) >= len(CHECKS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_smoke(script: Path) -> None:
    if script.stem in SKIPPED:
        pytest.skip(SKIPPED[script.stem])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    began, cpu = time.monotonic(), _children_cpu_s()
    proc = subprocess.run([sys.executable, str(script), "--smoke"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    seconds, cpu = time.monotonic() - began, _children_cpu_s() - cpu
    assert proc.returncode == 0, f"{script.name} --smoke exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    result = last_json(proc.stdout)
    assert isinstance(result, dict) and result, f"{script.name}: not a non-empty JSON object"
    CHECKS.get(script.stem, lambda r: None)(result)
    print(f"{script.name} --smoke: {seconds:.1f} s wall, {cpu:.1f} s CPU (waited-for processes)")
