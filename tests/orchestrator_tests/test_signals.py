"""SIGINT and SIGTERM to a real ``lrsweep run`` driver: the sweep stops, one line says so and
how to resume, the exit code is 130 / 143 (so ``lrsweep run X && lrsweep report X`` stops), and
the rerun finishes the sweep with every update stored exactly once (``orchestrator/signals.py``).
Before, Tune swallowed SIGINT (exit 0, "completed") and SIGTERM aborted the driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.planner import plan
from orchestrator.query import load_curve_rows, load_runs
from orchestrator.spec import load_spec

SPEC = """
name = "sig"
batch_size = 8
store = "store"
[workload]
name = "linreg"
sizes = [{ dim = 50 }]
[[optimizers]]
name = "sgd"
lr = [0.02, 0.05]
[[schedules]]
name = "cosine"
[horizons]
steps = [6000]
[resources]
cpu = 1
checkpoint_every = 500
"""


def _run(spec: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec), "--quiet"], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_sweep_with_its_exit_code_and_the_rerun_finishes_it(tmp_path, signum, code):
    spec = tmp_path / "sweep.toml"
    spec.write_text(SPEC)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(spec), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lineages = tmp_path / "store" / "_checkpoints" / "sig"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:  # until a trial has started
        if lineages.is_dir() and any(not p.name.startswith("_") for p in lineages.iterdir()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    time.sleep(1.0)
    os.kill(proc.pid, signum)  # the driver only, as `kill PID` would
    out, err = proc.communicate(timeout=120)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of its Ray is left
    except ProcessLookupError:
        pass
    assert proc.returncode == code, err[-3000:]
    assert out == ""  # no "completed" summary
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == (
        f"lrsweep: interrupted by {name}: what finished is stored, running lineages keep their last checkpoint; "
        f"rerun `lrsweep run {spec}` to resume")
    assert "Tuner.restore" not in err and "Traceback" not in err
    if signum == signal.SIGTERM:
        return
    again = _run(spec)
    assert again.returncode == 0, again.stderr[-3000:]
    store = str(tmp_path / "store")
    train = load_curve_rows(store, "sig", split="train")
    assert not train.duplicated(["lineage_id", "branch", "step"]).any()
    assert len(train) == plan(load_spec(spec)).planned_steps
    assert set(load_runs(store, "sig")["status"]) == {"completed"}
