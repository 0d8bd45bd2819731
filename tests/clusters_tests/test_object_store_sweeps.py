"""Sweeps whose store is an object store (a real S3 server on 127.0.0.1, moto's server mode):
curves, runs and checkpoints all land there, a killed driver resumes from there, and no
credential is written anywhere; one meaning of a relative ``store`` for ``plan``, ``run`` and
``submit``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from s3_server import S3Server, objects

from orchestrator.query import load_curve_rows, load_runs

SPEC = """
name = "{name}"
store = "{store}"
warmup = 5
batch_size = 4
[workload]
name = "linreg"
sizes = [{{ dim = 30 }}]
[[optimizers]]
name = "sgd"
lr = [0.02, 0.05]
[[schedules]]
name = "constant"
[[schedules]]
name = "wsd"
cooldown_fraction = 0.2
[horizons]
steps = {horizons}
[[averagers]]
kind = "ema"
half_life = 0.1
[resources]
cpu = 1
checkpoint_every = {every}
"""


def write(folder: Path, store: str, *, name: str = "s3sweep", horizons: str = "[400, 1600]", every: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(SPEC.format(name=name, store=store, horizons=horizons, every=every))
    return path


def lrsweep(*args: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env}, **kw)


def test_a_sweep_on_s3_keeps_everything_there_resumes_after_a_driver_kill_and_leaks_no_key(
        s3_server: S3Server, tmp_path: Path) -> None:
    env = s3_server.env
    uri = s3_server.uri("killed")
    spec = write(tmp_path / "a", uri)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(spec), "--quiet"], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for a kept trunk checkpoint in the bucket
        if any("/trunk/" in key and key.endswith(".json") for key in objects(s3_server, "killed/_checkpoints/")):
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray, like a lost laptop
    _, err = proc.communicate()
    resumed = lrsweep("run", str(spec), "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    fresh_spec = write(tmp_path / "b", s3_server.uri("fresh"))
    fresh = lrsweep("run", str(fresh_spec), "--quiet", env=env)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    key = ["lineage_id", "branch", "step", "split", "weights"]
    a, b = load_curve_rows(uri, "s3sweep"), load_curve_rows(s3_server.uri("fresh"), "s3sweep")
    assert not a.duplicated(key).any() and len(a) == len(b)
    merged = a.merge(b, on=key, suffixes=("", "_fresh"))
    assert len(merged) == len(b) and (merged["loss"] == merged["loss_fresh"]).all()
    assert set(load_runs(uri, "s3sweep")["status"]) == {"completed"}
    stored = objects(s3_server, "killed/")
    assert any(k.startswith("killed/curves/") for k in stored) and any(k.startswith("killed/runs/") for k in stored)
    assert any(k.startswith("killed/_checkpoints/s3sweep/") and k.endswith(".pt") for k in stored)
    assert any("/_events/" in k for k in stored)  # the resume was recorded in the store
    # no credential in any object of the bucket, in the plan JSON or in what the CLI printed
    secrets = (env["AWS_ACCESS_KEY_ID"].encode(), env["AWS_SECRET_ACCESS_KEY"].encode())
    client = s3_server.client()
    for key_name in objects(s3_server):
        body = client.get_object(Bucket=s3_server.bucket, Key=key_name)["Body"].read()
        assert not any(s in body for s in secrets), key_name
    plan = lrsweep("plan", str(spec), "--json", env=env)
    assert plan.returncode == 0 and '"run_steps": 0' in plan.stdout
    for text in (plan.stdout, resumed.stdout, resumed.stderr, fresh.stdout, fresh.stderr, err.decode(errors="replace")):
        assert not any(s.decode() in text for s in secrets)


def test_a_store_uri_with_credentials_in_it_is_refused(tmp_path: Path) -> None:
    spec = write(tmp_path, "s3://AKIAEXAMPLE:topsecret@bucket/prefix")
    out = lrsweep("plan", str(spec), env={})
    assert out.returncode == 2 and "topsecret" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "credentials" in out.stderr


def test_run_plan_and_submit_resolve_a_relative_store_the_same_way(tmp_path: Path) -> None:
    from orchestrator.execution import resolve_store
    from orchestrator.jobs import _store_for_cluster
    from orchestrator.spec import load_spec

    spec = write(tmp_path / "project" / "sweeps", "../results", horizons="[40]")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    want = str((tmp_path / "project" / "results").resolve())
    assert resolve_store(load_spec(spec), spec) == want
    assert _store_for_cluster(spec, None, address="http://127.0.0.1:8265") == want
    out = lrsweep("run", str(spec), "--quiet", env={}, cwd=elsewhere)  # the driver runs from another folder
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "project" / "results" / "_lrsweep.json").exists() and not (elsewhere / "results").exists()
    # --store on the command line is relative to where the command runs
    assert resolve_store(load_spec(spec), spec, "here") == str((Path.cwd() / "here").resolve())


def test_a_spec_without_a_store_uses_the_default_that_status_and_query_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lrsweep run examples/quickstart.toml` then `lrsweep status` from the same folder: the
    results are where status looks (not beside the spec file)."""
    import argparse

    from orchestrator.cli import _store_of
    from orchestrator.execution import resolve_store
    from orchestrator.jobs import _store_for_cluster
    from orchestrator.spec import load_spec

    spec = write(tmp_path / "project" / "sweeps", "unused", horizons="[40]")
    spec.write_text("\n".join(line for line in spec.read_text().splitlines() if not line.startswith("store")))
    assert "store" not in load_spec(spec).model_fields_set
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("LRSWEEP_STORE", raising=False)
    want = str((elsewhere / "lrsweep-results").resolve())
    assert resolve_store(load_spec(spec), spec) == want
    assert _store_for_cluster(spec, None, address="http://127.0.0.1:8265") == want
    assert str(Path(_store_of(argparse.Namespace(store=None))).resolve()) == want
    monkeypatch.setenv("LRSWEEP_STORE", "shared/results")
    want = str((elsewhere / "shared" / "results").resolve())
    assert resolve_store(load_spec(spec), spec) == want
    assert str(Path(_store_of(argparse.Namespace(store=None))).resolve()) == want


def test_submit_refuses_a_laptop_store_for_a_remote_cluster_before_any_connection(tmp_path: Path) -> None:
    spec = write(tmp_path, "./results", horizons="[40]")
    began = time.monotonic()
    out = lrsweep("submit", str(spec), "--address", "http://ray-head.invalid:8265", env={})
    assert out.returncode == 2 and time.monotonic() - began < 30
    line = out.stderr.strip().splitlines()
    assert len(line) == 1 and "not reachable from a remote cluster" in line[0] and "--shared-store" in line[0]


def test_a_trial_that_cannot_see_the_store_stops_with_one_line(tmp_path: Path) -> None:
    """A node where the store path is not shared (here: a folder with no sweep in it) refuses to
    write rows nobody would find; the error names the store and the node."""
    import socket

    from orchestrator.planner import plan
    from orchestrator.spec import load_spec
    from orchestrator.store import StoreError
    from orchestrator.trainable import run_lineage_to_store

    spec = write(tmp_path, str(tmp_path / "never-created"), horizons="[40]")
    lineage = plan(load_spec(spec)).lineages[0]
    with pytest.raises(StoreError) as err:
        run_lineage_to_store(lineage.to_dict(), store_root=str(tmp_path / "never-created"), sweep_id="s3sweep",
                             model_size="dim=30")
    message = str(err.value)
    assert "\n" not in message and "is not reachable from node " + socket.gethostname() in message
    assert not (tmp_path / "never-created").exists()  # nothing written
