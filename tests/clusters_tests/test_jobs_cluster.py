"""Ray Jobs against a real token-protected head on 127.0.0.1 (``ray_nodes.LocalRayCluster``, which
stops only what it started): submit, ``jobs``, ``logs --follow``, ``stop``; the client uses the
cluster's token (``RAY_AUTH_TOKEN`` or ``--token-file``), never this machine's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ray_nodes import LocalRayCluster

from orchestrator.query import load_lineages
from tests.orchestrator_tests.test_jobs import SPEC  # the same small sweep, on a real cluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def head() -> LocalRayCluster:
    base = Path(tempfile.mkdtemp(prefix="lrj-", dir="/tmp"))  # short: AF_UNIX path limit
    cluster = LocalRayCluster(base, workers=1, cpus_per_worker=2, dashboard=True)
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def lrsweep(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_submit_jobs_logs_and_stop_with_the_clusters_token(tmp_path: Path, head: LocalRayCluster) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.format(store=tmp_path / "store"))
    address = head.dashboard_url
    # this machine's own local-Ray token lies in ~/.ray: it must never be sent
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("this-laptops-own-token")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    refused = lrsweep("submit", str(spec), "--address", address, env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr[-2000:]
    line = refused.stderr.strip().splitlines()
    assert len(line) == 1 and "wants its token: set RAY_AUTH_TOKEN or pass --token-file" in line[0]
    assert not (tmp_path / "store").exists()

    token_file = tmp_path / "cluster-token"
    token_file.write_text(head.token + "\n")
    out = lrsweep("submit", str(spec), "--address", address, "--wait", "--token-file", str(token_file), env=env)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    job_id, status = out.stdout.split()[-2:]
    assert status == "SUCCEEDED" and job_id.startswith("raysubmit_")
    lineages = load_lineages(str(tmp_path / "store"), "submitted")
    assert sorted(lineages["peak_lr"]) == [0.05, 0.1] and set(lineages["status"]) == {"completed"}

    with_env = {**env, "RAY_AUTH_TOKEN": head.token}  # the variable works as well as the file
    listed = lrsweep("jobs", "--address", address, env=with_env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [r[:3] for r in rows] == [[job_id, "SUCCEEDED", "s.toml"]]
    followed = lrsweep("logs", job_id, "--follow", "--address", address, env=with_env)
    assert followed.returncode == 0 and "sweep submitted: 2 lineages planned" in followed.stdout
    stop = lrsweep("stop", job_id, "--address", address, env=with_env)
    assert stop.returncode == 0 and "not running" in stop.stdout
    unknown = lrsweep("logs", "raysubmit_nosuch", "--address", address, env=with_env)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr[-2000:]
    assert unknown.stderr.startswith(f"lrsweep: error: Ray cluster at {address}: ") and len(unknown.stderr) < 300
