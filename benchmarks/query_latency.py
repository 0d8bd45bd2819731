"""Latency of the final-loss query over a 1M-row results store, fragmented vs compacted.

Builds a synthetic store (1,000 lineages x 1,000 curve rows: 800 train rows and 50 eval points
x 4 weights variants each) through ``ResultsStore`` itself, once as one fragment per lineage
and once compacted, then times:

- ``cli_*``: the ``lrsweep query`` path *including process start*: a fresh
  ``python -c "from orchestrator.query import run_query; ..."`` per query;
- ``inproc_*``: ``run_query`` in this process (connect + query + CSV rendering);
- ``pandas_final_losses``: ``orchestrator.query.final_losses`` (the pandas loader).

Usage: ``python benchmarks/query_latency.py [--lineages 1000] [--repeats 3] [--smoke]``; prints
JSON (``--smoke``: 20 lineages, one repeat, the same keys).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.query import final_losses, run_query  # noqa: E402
from orchestrator.store import ResultsStore  # noqa: E402

SWEEP = "bench"
TRAIN_ROWS = 800
EVAL_STEPS = np.arange(20, 1001, 20)  # 50 eval points
WEIGHTS = ["raw", "ema@0.05", "ema@0.1", "swa@0.2"]
HORIZONS = [200, 500, 1000]

QUERIES = {
    # final loss per lineage, per weights variant, at the longest horizon (the view's logic).
    "final_losses": (
        "SELECT lineage_id, weights, loss FROM final_losses WHERE horizon = 1000 "
        "ORDER BY lineage_id, weights"
    ),
    # docs/platform.md §4's figure: last eval loss per lineage with arg_max over the raw curves.
    "arg_max": (
        "SELECT lineage_id, arg_max(loss, step) AS final_loss FROM curves "
        "WHERE split = 'eval' AND weights = 'raw' GROUP BY lineage_id ORDER BY lineage_id"
    ),
}


def curve_table(lineage_id: str, rng: np.random.Generator) -> pa.Table:
    steps = np.concatenate([np.arange(TRAIN_ROWS), np.repeat(EVAL_STEPS, len(WEIGHTS))])
    n_eval = len(EVAL_STEPS) * len(WEIGHTS)
    split = ["train"] * TRAIN_ROWS + ["eval"] * n_eval
    weights = ["raw"] * TRAIN_ROWS + WEIGHTS * len(EVAL_STEPS)
    loss = 2.0 + 3.0 / np.sqrt(1.0 + steps) + rng.normal(0.0, 0.01, len(steps))
    return pa.table(
        {
            "lineage_id": [lineage_id] * len(steps),
            "branch": ["trunk"] * len(steps),
            "step": steps.astype(np.int64),
            "tokens": (steps * 4096).astype(np.int64),
            "flops": steps * 6.0 * 8.5e5 * 4096,
            "lr": np.full(len(steps), 3e-3),
            "split": split,
            "weights": weights,
            "loss": loss,
        }
    )


def run_rows(n: int) -> list[dict]:
    """One ``runs`` row per lineage: its trunk, completed at step 1,000."""
    finished = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    return [
        dict(
            lineage_id=f"lin{i:05d}", branch="trunk", parent=None, fork_step=None, rule="constant",
            rule_params="{}", cooldown_shape=None, final_fraction=None, workload="synthetic",
            model_size="tiny", n_params=850_000, optimizer="adamw", optimizer_params="{}",
            peak_lr=1e-3 * (1 + i % 7), warmup=10, batch_size=32, seed=i % 3, tokens_per_step=4096,
            max_step=1000, status="completed", error=None, wall_time_s=60.0, steps_trained=1000,
            tokens_trained=4_096_000, flops_trained=2e13, replayed_steps=0, finished_at=finished,
        )  # fmt: skip
        for i in range(n)
    ]


def setting_rows(n: int) -> list[dict]:
    """One setting per lineage, answered by its trunk at every horizon."""
    return [
        dict(
            setting_id=f"set{i:05d}", lineage_id=f"lin{i:05d}", branch="trunk", fork_step=None,
            horizons=HORIZONS, family="constant", workload="synthetic", model_size="tiny",
            n_params=850_000, optimizer="adamw", optimizer_params="{}", schedule="constant",
            schedule_params="{}", peak_lr=1e-3 * (1 + i % 7), warmup=10, batch_size=32, seed=i % 3,
            tokens_per_step=4096,
        )  # fmt: skip
        for i in range(n)
    ]


def build(root: Path, n_lineages: int) -> dict[str, float]:
    """The store a finished sweep of ``n_lineages`` writes: a curve fragment and a runs row per
    lineage (one fragment each), the settings and the sweep's row, not yet compacted."""
    store = ResultsStore(str(root))
    rng = np.random.default_rng(0)
    tables = [curve_table(f"lin{i:05d}", rng) for i in range(n_lineages)]
    t0 = time.perf_counter()
    for i, table in enumerate(tables):
        store.write_curves(SWEEP, f"lin{i:05d}", "trunk", "0000000000-0000001000", table)
    t1 = time.perf_counter()
    store.write_runs(SWEEP, run_rows(n_lineages))
    store.write_settings(SWEEP, setting_rows(n_lineages))
    store.write_sweep(SWEEP, name=SWEEP, spec_text="# synthetic\n", plan_json="{}", code_version="bench")
    return {
        "write_curve_fragment_ms": (t1 - t0) / n_lineages * 1e3,
        "rows": sum(t.num_rows for t in tables),
    }


def time_cli(root: Path, sql: str, repeats: int) -> tuple[float, str]:
    code = (
        "import sys; from orchestrator.query import run_query; "
        f"sys.stdout.write(run_query({str(root)!r}, {sql!r}, 'csv'))"
    )
    times, out = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
        )
        times.append(time.perf_counter() - t0)
        out = proc.stdout
    return statistics.median(times), out


def time_inproc(fn, repeats: int) -> float:
    fn()  # warm caches (OS page cache, imports)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(root: Path, repeats: int) -> dict[str, float]:
    out: dict[str, float] = {}
    answers = {}
    for name, sql in QUERIES.items():
        out[f"cli_{name}_s"], answers[name] = time_cli(root, sql, repeats)
        out[f"inproc_{name}_s"] = time_inproc(
            lambda sql=sql: run_query(str(root), sql, "csv"), repeats + 2
        )
    out["pandas_final_losses_s"] = time_inproc(lambda: final_losses(str(root)), repeats)
    out["files"] = sum(1 for p in root.rglob("*.parquet"))
    return out, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lineages", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="CI: 20 lineages, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        args.lineages, args.repeats = 20, 1
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lrsweep-bench-") as tmp:
        fragmented, compacted = Path(tmp, "fragmented"), Path(tmp, "compacted")
        built = build(fragmented, args.lineages)
        shutil.copytree(fragmented, compacted)
        t0 = time.perf_counter()
        ResultsStore(str(compacted)).compact(SWEEP)
        compact_s = time.perf_counter() - t0
        python_start = statistics.median(
            _timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
            for _ in range(3)
        )
        frag, frag_answers = measure(fragmented, args.repeats)
        comp, comp_answers = measure(compacted, args.repeats)
    if frag_answers != comp_answers:
        raise SystemExit("fragmented and compacted stores gave different answers")
    report = {
        "curve_rows": built["rows"],
        "lineages": args.lineages,
        "write_curve_fragment_ms": round(built["write_curve_fragment_ms"], 2),
        "compact_s": round(compact_s, 3),
        "python_bare_start_s": round(python_start, 3),
        "fragmented": {k: round(v, 3) for k, v in frag.items()},
        "compacted": {k: round(v, 3) for k, v in comp.items()},
        "fragmented_over_compacted": {
            k: round(frag[k] / comp[k], 2) for k in frag if k.endswith("_s") and comp[k] > 0
        },
        "answers_identical": True,
        "total_wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(report, indent=2))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
