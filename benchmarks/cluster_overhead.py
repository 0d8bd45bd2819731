"""Submit → first trial running, and per-lineage overhead: a local multi-node cluster (a head and
two worker nodes, separate ``ray start`` processes on 127.0.0.1, the sweep submitted as a Ray
Job) vs the embedded local Ray of ``lrsweep run``.

The same sweep of ``--lineages`` short linreg lineages runs both ways (1 CPU per trial, two
trials at a time either way). "First trial running" is the first curve fragment appearing in
the store (a lineage's first checkpointed segment, 20 updates in); per-lineage overhead is the
wall time beyond the trials' own training time spread over two slots, per lineage.

    python benchmarks/cluster_overhead.py [--lineages 12]      # prints JSON
    python benchmarks/cluster_overhead.py --smoke              # CI: 2 lineages, 1 worker node
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "clusters_tests"))

SPEC = """
name = "overhead"
store = "{store}"
batch_size = 4
[workload]
name = "linreg"
sizes = [{{ dim = 50 }}]
[[optimizers]]
name = "sgd"
lr = {lrs}
[[schedules]]
name = "constant"
[horizons]
steps = [{steps}]
[eval]
points_per_decade = 2
[resources]
cpu = 1
checkpoint_every = 20
checkpoint_grid = 0
"""


def _spec(folder: Path, lineages: int, steps: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lrs = [round(0.01 + 0.002 * i, 4) for i in range(lineages)]
    path = folder / "overhead.toml"
    path.write_text(SPEC.format(store=folder / "store", lrs=lrs, steps=steps))
    return path


def _first_fragment(store: Path, began: float, proc: subprocess.Popen | None, timeout: float = 600) -> float:
    curves = store / "curves"
    while time.monotonic() - began < timeout:
        if curves.exists() and any(curves.rglob("*.parquet")):
            return time.monotonic() - began
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("no curve fragment appeared")


def _train_time(store: Path) -> float:
    from orchestrator.query import load_runs

    return float(load_runs(str(store), "overhead")["wall_time_s"].sum())


def embedded(folder: Path, lineages: int, steps: int) -> dict:
    spec = _spec(folder, lineages, steps)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(spec), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = _first_fragment(folder / "store", began, proc)
    if proc.wait(timeout=900) != 0:
        raise RuntimeError("embedded run failed")
    return _figures(folder / "store", first, time.monotonic() - began, lineages)


def multinode(folder: Path, lineages: int, steps: int, workers: int = 2) -> dict:
    from ray_nodes import LocalRayCluster

    spec = _spec(folder, lineages, steps)
    base = Path(tempfile.mkdtemp(prefix="lrb-", dir="/tmp"))
    # two trial slots in all, as the embedded Ray has (one worker node: both on it)
    cluster = LocalRayCluster(base, workers=workers, cpus_per_worker=max(1, 2 // workers), dashboard=True)
    try:
        cluster.start()
        env = {**os.environ, **cluster.env, "OMP_NUM_THREADS": "1"}
        began = time.monotonic()
        submitted = subprocess.run([sys.executable, "-m", "orchestrator", "submit", str(spec), "--address",
                                    cluster.dashboard_url], env=env, capture_output=True, text=True, timeout=300)
        if submitted.returncode != 0:
            raise RuntimeError(submitted.stderr[-2000:])
        job_id = submitted.stdout.strip().splitlines()[-1]
        first = _first_fragment(folder / "store", began, None)
        while True:
            status = subprocess.run([sys.executable, "-m", "orchestrator", "status", "--store",
                                     str(folder / "store"), "--json"], env=env, capture_output=True, text=True)
            done = status.returncode == 0 and json.loads(status.stdout)[0]["pending"] == 0
            if done and any((folder / "store" / "curves" / "sweep_id=overhead" / "_compacted").glob("*.parquet")):
                break
            if time.monotonic() - began > 900:
                raise RuntimeError(f"job {job_id} did not finish")
            time.sleep(0.2)
        return _figures(folder / "store", first, time.monotonic() - began, lineages)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def _figures(store: Path, first: float, wall: float, lineages: int) -> dict:
    train = _train_time(store)
    return {"first_trial_s": round(first, 2), "wall_s": round(wall, 2), "train_s": round(train, 2),
            "overhead_per_lineage_s": round((wall - train / 2) / lineages, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lineages", type=int, default=12)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="worker nodes beside the head")
    parser.add_argument("--smoke", action="store_true", help="CI: 2 lineages of 100 steps, 1 worker node")
    args = parser.parse_args()
    if args.smoke:
        args.lineages, args.steps, args.workers = 2, 100, 1
    work = Path(tempfile.mkdtemp(prefix="lrsweep-overhead-"))
    try:
        local = embedded(work / "embedded", args.lineages, args.steps)
        cluster = multinode(work / "multinode", args.lineages, args.steps, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "lineages": args.lineages, "steps_per_lineage": args.steps, "worker_nodes": args.workers,
        "embedded_local_ray": local,
        "multinode_submitted_job": cluster,
        "first_trial_ratio": round(cluster["first_trial_s"] / local["first_trial_s"], 2),
        "overhead_per_lineage_ratio": round(cluster["overhead_per_lineage_s"] / local["overhead_per_lineage_s"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
