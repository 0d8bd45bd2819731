"""Submission to a real Ray head (``ray start --head`` on 127.0.0.1) through Ray Jobs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.query import load_lineages
from orchestrator.ray_local import LOOPBACK_ENV

pytestmark = pytest.mark.cluster

SPEC = """
name = "submitted"
store = "{store}"
batch_size = 4
[workload]
name = "linreg"
sizes = [{{ dim = 50 }}]
[[optimizers]]
name = "sgd"
lr = [0.05, 0.1]
[[schedules]]
name = "constant"
[horizons]
steps = [40, 80]
[resources]
cpu = 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    env = {**os.environ, **LOOPBACK_ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    dash = free_port()
    temp = Path("/tmp") / f"lrsweep-head-{os.getpid()}"
    cmd = [ray, "start", "--head", f"--port={free_port()}", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dash}", "--num-cpus=2", f"--temp-dir={temp}", "--disable-usage-stats",
           "--include-dashboard=true"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=120)
    try:
        yield f"http://127.0.0.1:{dash}", env
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_submit_runs_the_sweep_on_the_cluster(tmp_path, ray_head):
    address, env = ray_head
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(store=tmp_path / "store"))
    lrsweep = [sys.executable, "-m", "orchestrator"]
    out = subprocess.run([*lrsweep, "submit", str(spec), "--address", address, "--wait"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    job_id, status = out.stdout.split()[-2:]
    assert status == "SUCCEEDED" and job_id.startswith("raysubmit_")
    lineages = load_lineages(str(tmp_path / "store"), "submitted")
    assert sorted(lineages["peak_lr"]) == [0.05, 0.1] and set(lineages["status"]) == {"completed"}
    logs = subprocess.run([*lrsweep, "logs", job_id, "--address", address], capture_output=True, text=True,
                          env=env, timeout=120)
    assert "sweep submitted: 2 lineages planned" in logs.stdout
    stop = subprocess.run([*lrsweep, "stop", job_id, "--address", address], capture_output=True, text=True,
                          env=env, timeout=120)
    assert stop.returncode == 0 and "not running" in stop.stdout
