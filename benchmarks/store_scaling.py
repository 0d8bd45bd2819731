"""Store scaling (issue 24): trial start-up vs the sweep's size, and incremental compaction.

1. **Trial start-up**: the store reads a trial does before its first update — reachability
   check, its lineage's stored state (``stored_lineages`` for one lineage), its checkpoints,
   ``plan_work`` and the truncation of its branches — in a sweep holding 10, 1k, 10k other
   fragments (one curve fragment and one runs fragment per other lineage; half of the other
   lineages merged into a part, half still fragments). Beside it, the same state read by a
   scan of the whole sweep filtered to the lineage (what a trial did before lineage folders).
   Ratios are against the 10-fragment case.
2. **Incremental compaction**: a sweep of 100k / 1M rows, compacted; one lineage (1,000 rows)
   is added and compacted. Its cost is compared with compacting that lineage alone in an empty
   sweep (ratio; near 1 means incremental) and with a full rewrite of the sweep (what every
   compaction did before merged parts). Each compaction runs in a fresh process whose peak
   RSS is reported.

    python benchmarks/store_scaling.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

SPEC = """
name = "scale"
warmup = 0
batch_size = 4
seeds = [0]
[workload]
name = "linreg"
sizes = [{ dim = 20 }]
[[optimizers]]
name = "sgd"
lr = [0.1]
[[schedules]]
name = "cosine"
[horizons]
steps = [30]
[eval]
points_per_decade = 2
"""


def _rows(lineage: str, n: int, start: int = 0) -> dict:
    steps = list(range(start, start + n))
    return {"lineage_id": [lineage] * n, "branch": ["trunk"] * n, "step": steps, "tokens": [4 * s for s in steps],
            "flops": [None] * n, "lr": [0.1] * n, "split": ["train"] * n, "weights": ["raw"] * n,
            "loss": [1.0 / (1 + s) for s in steps]}


def _write_fast(store, table: str, lineage: str, rows: dict, name_rest: str) -> None:  # noqa: ANN001
    """One fragment written as ``write_curves``/``write_runs`` would (same file, same place),
    without their per-row validation: building 10k fragments stays quick."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from orchestrator.store import _layout
    from orchestrator.store.schema import TABLES

    spec = TABLES[table]
    name = _layout.key_token(lineage, "lineage_id") + "__" + name_rest
    path = f"{store.partition_dir(table, 'scale')}/{_layout.fragment_relpath(name)}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.table(rows, schema=spec.file_schema).replace_schema_metadata(spec.metadata()), path)


def _run_row(lineage: str) -> dict:
    import datetime as dt

    row = dict(lineage_id=lineage, branch="trunk", parent=None, fork_step=None, rule="cosine", rule_params="{}",
               cooldown_shape=None, final_fraction=None, workload="linreg", model_size="d20", n_params=20,
               optimizer="sgd", optimizer_params="{}", peak_lr=0.1, warmup=0, batch_size=4, seed=0,
               tokens_per_step=4, max_step=30, status="completed", error=None, wall_time_s=0.1,
               steps_trained=30, tokens_trained=120, flops_trained=1.0, replayed_steps=0,
               finished_at=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc), train_time_s=None,
               step_time_s=None, tokens_per_s=None, mfu=None, device=None, workers=None, precision=None)
    return {k: [v] for k, v in row.items()}


def _startup(store, lineage, scan: bool) -> float:  # noqa: ANN001
    """The store reads of a trial's start-up (orchestrator/trainable.py), timed."""
    import pyarrow.dataset as ds

    from orchestrator.stored import checkpoints_of, stored_lineages
    from orchestrator.trainable import _check_reachable
    from trials.work import plan_work

    began = time.perf_counter()
    _check_reachable(store, "scale")
    lid = lineage.lineage_id
    if scan:  # the whole sweep listed and filtered, as before lineage folders
        store.read_table("runs", "scale", filter=ds.field("lineage_id") == lid)
        store.read_table("curves", "scale", filter=(ds.field("lineage_id") == lid) & (ds.field("split") == "eval"))
        store.snapshot("curves", "scale")
    else:
        stored = stored_lineages(store, "scale", [lid])[lid]
        checkpoints_of(store, "scale", lid).trunk_checkpoints()
        for branch, step in plan_work(lineage, stored).truncate.items():
            store.truncate_curve("scale", lid, branch, step)
    return time.perf_counter() - began


def startup_case(root: Path, n_other: int, lineage, repeats: int) -> dict:  # noqa: ANN001
    from orchestrator.store import ResultsStore

    store = ResultsStore(str(root))
    store.write_sweep("scale", name="scale", spec_text=SPEC, plan_json={}, code_version="bench")
    half = n_other // 2
    for i in range(n_other):
        lid = f"other{i:06d}"
        _write_fast(store, "curves", lid, _rows(lid, 20), "trunk__0000000000-0000000020.parquet")
        _write_fast(store, "runs", lid, _run_row(lid), "trunk.parquet")
        if i + 1 == half:
            store.compact("scale")
    fresh = ResultsStore(str(root))
    times = {mode: min(_startup(fresh, lineage, mode == "scan") for _ in range(repeats)) for mode in ("own", "scan")}
    return {"other_fragments": n_other, "startup_s": times["own"], "scan_startup_s": times["scan"]}


_COMPACT_CHILD = """
import json, sys, tempfile, time
sys.path.insert(0, {repo!r})
from orchestrator.store import ResultsStore, compaction
warm = ResultsStore(tempfile.mkdtemp())  # imports and first-use costs, outside the timing
warm.write_curves("w", "a", "trunk", "0", [dict(lineage_id="a", branch="trunk", step=0, tokens=0,
                  split="train", weights="raw", loss=1.0)])
warm.compact("w", ("curves",))
if {full!r}:
    compaction.GROWTH = float("inf")  # fold every part: a full rewrite of the sweep
store = ResultsStore({root!r})
began = time.perf_counter()
merged = store.compact("scale", ("curves",))
took = time.perf_counter() - began
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({{"s": took, "rss_mb": int(hwm.split()[1]) / 1024, "merged": merged}}))
"""


def _compact_in_child(root: Path, full: bool = False) -> dict:
    code = _COMPACT_CHILD.format(repo=str(Path(__file__).resolve().parents[1]), root=str(root), full=full)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fill(root: Path, rows: int, per_lineage: int) -> None:
    from orchestrator.store import ResultsStore

    store = ResultsStore(str(root))
    for i in range(rows // per_lineage):
        lid = f"old{i:06d}"
        _write_fast(store, "curves", lid, _rows(lid, per_lineage), "trunk__0000000000-0000000001.parquet")


def compaction_case(tmp: Path, rows: int, added: int, per_lineage: int) -> dict:
    import shutil

    base = tmp / f"sweep{rows}"
    _fill(base, rows, per_lineage)
    initial = _compact_in_child(base)
    out = {"rows": rows, "added_rows": added, "initial_compaction_s": initial["s"]}
    full = tmp / f"full{rows}"
    shutil.copytree(base, full)
    for root in (base, full):
        from orchestrator.store import ResultsStore

        _write_fast(ResultsStore(str(root)), "curves", "added", _rows("added", added),
                    "trunk__0000000000-0000000001.parquet")
    inc = _compact_in_child(base)
    rewrite = _compact_in_child(full, full=True)
    alone = tmp / f"alone{rows}"
    from orchestrator.store import ResultsStore

    _write_fast(ResultsStore(str(alone)), "curves", "added", _rows("added", added), "trunk__0000000000-0000000001.parquet")
    own = _compact_in_child(alone)
    shutil.rmtree(full)
    out.update({"incremental_s": inc["s"], "incremental_peak_rss_mb": inc["rss_mb"],
                "lineage_alone_s": own["s"], "lineage_alone_peak_rss_mb": own["rss_mb"],
                "full_rewrite_s": rewrite["s"], "full_rewrite_peak_rss_mb": rewrite["rss_mb"],
                "incremental_vs_lineage_alone": inc["s"] / own["s"],
                "full_rewrite_vs_lineage_alone": rewrite["s"] / own["s"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from orchestrator.planner import plan
    from orchestrator.spec import load_spec

    sizes = [10, 50, 150] if args.smoke else [10, 1_000, 10_000]
    sweeps = [5_000] if args.smoke else [100_000, 1_000_000]
    added = 200 if args.smoke else 1_000
    with tempfile.TemporaryDirectory(prefix="store-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        spec_path = tmp / "scale.toml"
        spec_path.write_text(SPEC)
        lineage = plan(load_spec(spec_path)).lineages[0]
        startup = [startup_case(tmp / f"startup{n}", n, lineage, repeats=3 if args.smoke else 9) for n in sizes]
        base = startup[0]
        for case in startup:
            case["startup_vs_10"] = case["startup_s"] / base["startup_s"]
            case["scan_startup_vs_10"] = case["scan_startup_s"] / base["scan_startup_s"]
        compaction = [compaction_case(tmp, rows, added, per_lineage=1_000 if not args.smoke else 100)
                      for rows in sweeps]
    print(json.dumps({
        "benchmark": "store_scaling", "smoke": args.smoke,
        "method": ("startup_s: min of 9 timings (3 with --smoke) of a trial's pre-training store reads (reachability, its "
                   "lineage's stored state, checkpoints, plan_work, branch truncation); scan_startup_s: the "
                   "same state read by scanning the whole sweep filtered to the lineage (the layout before "
                   "lineage folders). Compactions run in fresh processes (peak RSS = VmHWM of that "
                   "process, interpreter and pyarrow included; imports warmed up first); incremental_vs_lineage_alone = compacting "
                   "one added lineage into the compacted sweep / compacting it alone in an empty sweep."),
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "startup": startup, "compaction": compaction,
    }, indent=2))


if __name__ == "__main__":
    main()
