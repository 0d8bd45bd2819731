"""Embedded Ray's edges: a short temp dir whatever TMPDIR is, and no Ray process outliving a
driver killed with SIGKILL (a real kill of a real driver; processes identified by the process
tree recorded while the driver lived, so the check does not rely on the watchdog's own rule)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.ray_local import RAY_TEMP_MAX, ray_temp_dir
from tests._procs import descendants, process_table
from trials.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
# macOS-like: /var/folders/xy/<28 characters>/T/ is ~50 characters; this is 65
LONG_TMPDIR = f"/tmp/lrsweep-long-tmpdir-{os.getpid():08d}-".ljust(65, "a")

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def long_tmpdir(monkeypatch):
    import shutil

    os.makedirs(LONG_TMPDIR, exist_ok=True)
    monkeypatch.setenv("TMPDIR", LONG_TMPDIR)
    monkeypatch.delenv("LRSWEEP_RAY_TMPDIR", raising=False)
    monkeypatch.setattr("tempfile.tempdir", None)  # gettempdir() caches its answer
    yield LONG_TMPDIR
    shutil.rmtree(LONG_TMPDIR, ignore_errors=True)


def test_the_ray_temp_dir_is_short_whatever_tmpdir_is(long_tmpdir):
    import tempfile

    assert tempfile.gettempdir() == long_tmpdir
    path = ray_temp_dir()
    assert len(os.fsencode(path)) <= RAY_TEMP_MAX and not path.startswith(long_tmpdir)
    st = os.lstat(path)
    assert os.path.isdir(path) and not os.path.islink(path) and st.st_uid == os.getuid()
    # Ray's longest socket path under it fits AF_UNIX's 107 bytes with room to spare
    session = "session_2026-11-30_10-48-15_330123_4194304"
    assert len(f"{path}/{session}/sockets/plasma_store") <= 107


def test_an_explicit_ray_temp_dir_must_be_short(monkeypatch, tmp_path):
    monkeypatch.setenv("LRSWEEP_RAY_TMPDIR", str(tmp_path / ("b" * 60)))
    with pytest.raises(ConfigError, match=r"^LRSWEEP_RAY_TMPDIR must be a writable directory of ours whose path is at most 40 bytes"):
        ray_temp_dir()
    short = f"/tmp/lrs-{os.getpid()}"
    monkeypatch.setenv("LRSWEEP_RAY_TMPDIR", short)
    try:
        assert ray_temp_dir() == short and os.path.isdir(short)
    finally:
        os.rmdir(short)


# ---------------------------------------------------------------------------------- real Ray
DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from orchestrator.ray_local import init_ray
    init_ray(num_cpus=1)
    import ray
    assert ray.get(ray.remote(lambda: 41).remote()) + 1 == 42  # a worker is up
    node = ray.nodes()[0]
    print(json.dumps({"sockets": [node["ObjectStoreSocketName"], node["RayletSocketName"]]}), flush=True)
    time.sleep(600)
    """
)


@linux
def test_no_ray_process_outlives_a_killed_driver(tmp_path, long_tmpdir):
    """SIGKILL a driver that started embedded Ray (under a 65-character TMPDIR): within a few
    seconds none of the processes below it is alive (the agents used to linger ~60 s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = driver.stdout.readline()
        assert line, driver.stderr.read()[-3000:]
        sockets = json.loads(line)["sockets"]
        assert all(len(os.fsencode(s)) <= 107 and not s.startswith(long_tmpdir) for s in sockets)
        time.sleep(1.0)  # let the watchdog see the tree once more
        below = descendants(driver.pid, process_table())
        names = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:40] for pid in below}
        assert any(b"Agent" in n for n in names.values()), names  # the ones that used to linger
        assert len(below) >= 6
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        killed = time.monotonic()
    alive = below
    while alive and time.monotonic() - killed < 10:
        time.sleep(0.25)
        table = process_table()
        alive = {p: s for p, s in below.items() if p in table and table[p][2] == s and table[p][1] != "Z"}
    outlived = time.monotonic() - killed
    assert not alive, {p: names[p] for p in alive}
    assert outlived < 6.0


@linux
def test_a_sweep_runs_under_a_long_tmpdir(tmp_path, long_tmpdir):
    spec = tmp_path / "t.toml"
    spec.write_text(textwrap.dedent(f"""
        name = "longtmp"
        store = "{tmp_path / 'store'}"
        batch_size = 4
        [workload]
        name = "linreg"
        sizes = [{{ dim = 20 }}]
        [[optimizers]]
        name = "sgd"
        lr = 0.05
        [[schedules]]
        name = "constant"
        [horizons]
        steps = [20]
    """))
    out = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec), "--quiet"], cwd=REPO,
                         capture_output=True, text=True, timeout=600, env={**os.environ})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "1 completed" in out.stdout


def test_the_embedded_ray_keeps_token_auth_without_announcing_it():
    driver = textwrap.dedent(
        """
        import os
        from orchestrator.ray_local import init_ray
        init_ray(num_cpus=1)
        import ray
        assert ray.get(ray.remote(lambda: 41).remote()) + 1 == 42  # workers authenticate
        print(os.environ.get("RAY_AUTH_MODE"), flush=True)
        ray.shutdown()
        """
    )
    out = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["token"]  # Ray's default for a new local cluster, still on
    assert "Token authentication is enabled" not in out.stderr, out.stderr[-3000:]
