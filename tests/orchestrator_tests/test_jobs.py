"""Submission to a real Ray head (``ray start --head`` on 127.0.0.1) through Ray Jobs, and the
one-line errors when no cluster answers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.query import load_lineages
from orchestrator.ray_local import LOOPBACK_ENV

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


@pytest.mark.cluster
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
    unknown = subprocess.run([*lrsweep, "logs", "raysubmit_nosuch", "--address", address],
                             capture_output=True, text=True, env=env, timeout=120)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr[-2000:]
    assert unknown.stderr.startswith(f"lrsweep: error: Ray cluster at {address}: ")
    assert "raysubmit_nosuch" in unknown.stderr and len(unknown.stderr) < 300


# ---------------------------------------------------------------------------------- no cluster
def dead_address() -> str:
    """A loopback port where nothing listens."""
    return f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize("command", ["submit", "logs", "stop"])
@pytest.mark.parametrize("scheme", ["http://", ""])
def test_an_address_where_nothing_listens_fails_in_seconds_with_one_line(tmp_path, capsys, command, scheme):
    from orchestrator import cli

    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(store=tmp_path / "store"))
    address = scheme + dead_address()
    target = str(spec) if command == "submit" else "raysubmit_x"
    began = time.monotonic()
    code = cli.main([command, target, "--address", address])
    took = time.monotonic() - began
    err = capsys.readouterr().err
    assert code == 2 and took < 10  # Ray's client took ~40 s on a bare host:port
    assert err.count("\n") == 1 and len(err) < 300 and "Traceback" not in err
    assert err == (f"lrsweep: error: --address must be a Ray dashboard that answers "
                   f"({address.removeprefix('http://')}: Connection refused), got {address!r}\n")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("address", ["http://", "ftp://127.0.0.1:1", "http://127.0.0.1:99999"])
def test_a_malformed_address_is_one_line(capsys, address):
    from orchestrator import cli

    assert cli.main(["logs", "raysubmit_x", "--address", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrsweep: error: --address must be a Ray dashboard address such as "
                          "http://127.0.0.1:8265, got ") and err.count("\n") == 1
