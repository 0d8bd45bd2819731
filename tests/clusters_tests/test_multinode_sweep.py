"""A sweep on a three-node Ray cluster on 127.0.0.1 (head + two workers, separate ``ray start``
processes) over a store on a local S3 server: one worker node's raylet is killed mid-lineage,
the sweep completes, the lost lineage resumes on the other node from its checkpoint in the
store, and every row equals an uninterrupted run's — none lost, none twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ray_nodes import LocalRayCluster
from s3_server import S3Server, objects

from orchestrator.planner import plan
from orchestrator.query import load_curve_rows, load_runs
from orchestrator.spec import load_spec
from orchestrator.store import ResultsStore
from orchestrator.trainable import read_events
from trials.lineage import run_lineage
from trials.sinks import MemorySink

pytestmark = pytest.mark.cluster

SPEC = """
name = "mn"
store = "{store}"
warmup = 5
batch_size = 4
[workload]
name = "linreg"
sizes = [{{ dim = 40 }}]
[[optimizers]]
name = "sgd"
lr = [0.02, 0.05]
[[schedules]]
name = "constant"
[[schedules]]
name = "wsd"
cooldown_fraction = 0.2
[horizons]
steps = [2000, 6000]
[[averagers]]
kind = "swa"
start_fraction = 0.5
[resources]
cpu = 1
retries = 2
checkpoint_every = 250
"""


def test_a_lost_node_does_not_lose_or_duplicate_a_row(tmp_path: Path, s3_server: S3Server) -> None:
    base = Path(tempfile.mkdtemp(prefix="lrm-", dir="/tmp"))  # short: AF_UNIX path limit
    s3 = s3_server
    cluster = LocalRayCluster(base, workers=2, cpus_per_worker=1, node_env=s3.env)
    try:
        cluster.start()
        spec_path = tmp_path / "mn.toml"
        spec_path.write_text(SPEC.format(store=s3.uri("mn")))
        env = {**os.environ, **cluster.env, **s3.env}
        driver = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", str(spec_path), "--quiet", "--address", cluster.address],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # both lineages running (one per worker node), each past a kept checkpoint: lose a node
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            keys = objects(s3, "mn/_checkpoints/mn/")
            lineages = {k.split("/")[3] for k in keys if "/trunk/" in k and k.endswith(".json")}
            if len(lineages) == 2:
                break
            assert driver.poll() is None, driver.communicate()[1][-3000:]
            time.sleep(0.3)
        victim = cluster.worker_nodes[0]
        cluster.kill_raylet(victim)
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err[-4000:]
        uri = s3.uri("mn")
        runs = load_runs(uri, "mn")
        assert set(runs["status"]) == {"completed"}
        events = [e for e in read_events(ResultsStore(uri), "mn") if e["event"] == "resumed"]
        assert events and all(e["node_id"] != victim.node_id for e in events), events
        # every row equals the same lineages run straight through with no Ray at all
        rows = load_curve_rows(uri, "mn")
        key = ["lineage_id", "branch", "step", "split", "weights"]
        assert not rows.duplicated(key).any()
        expected = {}
        for lineage in plan(load_spec(spec_path)).lineages:
            sink = MemorySink()
            run_lineage(lineage, sink=sink)
            expected.update({(r["lineage_id"], r["branch"], r["step"], r["split"], r["weights"]): r["loss"]
                             for r in sink.rows()})
        got = {tuple(k): loss for *k, loss in rows[[*key, "loss"]].itertuples(index=False, name=None)}
        assert got == expected
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
