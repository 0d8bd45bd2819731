"""End to end on a real local Ray: rows present exactly once, crash safety, divergence, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.planner import plan
from orchestrator.query import final_losses, load_curves, load_lineages
from orchestrator.spec import load_spec
from trials.branches import plan_branches
from trials.schedules import build_schedule

LINREG = """
name = "{name}"
store = "{store}"
warmup = 0
batch_size = 4
seeds = [0]
divergence_factor = 5.0
[workload]
name = "linreg"
sizes = [{{ dim = 50 }}]
[[optimizers]]
name = "sgd"
lr = {lrs}
[[schedules]]
name = "cosine"
final_fraction = 0.0
[[schedules]]
name = "wsd"
cooldown_fraction = 0.2
[[schedules]]
name = "polynomial"
gamma = 0.5
t0 = 10.0
[horizons]
steps = {horizons}
[[averagers]]
kind = "ema"
half_life = 0.1
[[averagers]]
kind = "swa"
start_fraction = 0.5
[eval]
log_points = 4
[resources]
cpu = 1
retries = 2
checkpoint_every = {checkpoint_every}
"""


def write_spec(tmp_path: Path, name="e2e", lrs="[0.05, 0.1]", horizons="[40, 80]", checkpoint_every=0) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(LINREG.format(name=name, store=tmp_path / "store", lrs=lrs, horizons=horizons,
                                  checkpoint_every=checkpoint_every))
    return path


def lrsweep(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def expected_eval_keys(spec_path: Path) -> set[tuple]:
    """Every (lineage, branch, eval step, weights) the plan promises."""
    keys = set()
    for lineage in plan(load_spec(spec_path)).lineages:
        schedule = build_schedule(lineage.schedule, warmup=lineage.warmup, **lineage.schedule_params) if lineage.schedule else None
        trunk, forks = plan_branches(lineage, schedule)
        for branch in [trunk, *forks]:
            for step in branch.eval_steps:
                keys.add((lineage.lineage_id, branch.name, step, "raw"))
                if lineage.optimizer.startswith("sf_"):  # schedule-free: the evaluation point x
                    keys.add((lineage.lineage_id, branch.name, step, "x"))
                for a in lineage.averagers:
                    if step == 0 or (a.eval_at is not None and a.eval_at != step):
                        continue
                    if a.kind == "swa" and step <= a.params.get("start", 0):
                        continue
                    keys.add((lineage.lineage_id, branch.name, step, a.label))
    return keys


def eval_keys(store: Path, sweep: str) -> list[tuple]:
    curves = load_curves(str(store), sweep)
    ev = curves[curves["split"] == "eval"]
    return [tuple(r) for r in ev[["lineage_id", "branch", "step", "weights"]].astype(
        {"lineage_id": str, "branch": str, "weights": str}).itertuples(index=False)]


def test_linreg_sweep_writes_every_row_exactly_once_and_query_matches_pandas(tmp_path):
    spec = write_spec(tmp_path)
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    keys = eval_keys(tmp_path / "store", "e2e")
    assert len(keys) == len(set(keys))  # nothing duplicated
    assert set(keys) == expected_eval_keys(spec)  # nothing lost, nothing extra
    lineages = load_lineages(str(tmp_path / "store"), "e2e")
    assert set(lineages["status"]) == {"completed"}
    # train rows: one per update of every branch
    curves = load_curves(str(tmp_path / "store"), "e2e")
    train = curves[curves["split"] == "train"]
    assert not train.duplicated(["lineage_id", "branch", "step"]).any()
    assert len(train) == int(lineages["steps_trained"].sum())
    # `lrsweep query` returns the same final losses as the pandas API
    sql = "SELECT lineage_id, branch, horizon, weights, loss FROM final_losses ORDER BY ALL"
    q = lrsweep("query", "--store", str(tmp_path / "store"), "--format", "json", sql)
    assert q.returncode == 0, q.stderr
    from_sql = pd.DataFrame(json.loads(q.stdout))
    from_pandas = (final_losses(str(tmp_path / "store"), "e2e")[["lineage_id", "branch", "horizon", "weights", "loss"]]
                   .astype({"lineage_id": str, "branch": str, "weights": str})
                   .sort_values(["lineage_id", "branch", "horizon", "weights", "loss"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(from_sql, from_pandas, check_dtype=False)
    # `lrsweep status` counts what the store holds; `lrsweep export` gives one curve as step,lr,loss
    status = json.loads(lrsweep("status", "--store", str(tmp_path / "store"), "--json").stdout)
    assert status[0]["completed"] == lineages["lineage_id"].nunique() and status[0]["pending"] == 0
    cosine = lineages[(lineages["schedule"] == "cosine")].iloc[0]
    csv = lrsweep("export", "e2e", cosine["lineage_id"][:8], "--store", str(tmp_path / "store"))
    assert csv.returncode == 0, csv.stderr
    exported = pd.read_csv(__import__("io").StringIO(csv.stdout))
    mine = train[(train["lineage_id"] == cosine["lineage_id"])].sort_values("step")
    assert list(exported.columns) == ["step", "lr", "loss"]
    assert exported["step"].tolist() == mine["step"].tolist()
    assert exported["loss"].tolist() == pytest.approx(mine["loss"].tolist(), rel=1e-8)  # CSV keeps 10 digits
    # a rerun trains nothing
    again = lrsweep("run", str(spec), "--quiet")
    assert again.returncode == 0 and "already done" in again.stdout and "nothing new to run" in again.stdout


def test_diverging_lr_is_recorded_while_the_rest_complete(tmp_path):
    spec = write_spec(tmp_path, name="div", lrs="[0.05, 5.0]")
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    lineages = load_lineages(str(tmp_path / "store"), "div")
    by_lr = lineages.groupby("peak_lr")["status"].agg(set).to_dict()
    assert by_lr == {0.05: {"completed"}, 5.0: {"diverged"}}


def test_edited_spec_runs_only_what_is_new_and_refuses_invalidating_edits(tmp_path):
    spec = write_spec(tmp_path, name="edit", lrs="[0.05]")
    assert lrsweep("run", str(spec), "--quiet").returncode == 0
    before = load_lineages(str(tmp_path / "store"), "edit")[["lineage_id", "branch", "finished_at"]]
    write_spec(tmp_path, name="edit", lrs="[0.05, 0.1]")  # a new LR: only new lineages run
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    after = load_lineages(str(tmp_path / "store"), "edit")
    kept = after.merge(before, on=["lineage_id", "branch"], suffixes=("", "_before"))
    assert len(kept) == len(before) and (kept["finished_at"] == kept["finished_at_before"]).all()
    assert after["lineage_id"].nunique() == 2 * before["lineage_id"].nunique()
    write_spec(tmp_path, name="edit", lrs="[0.05, 0.1]", horizons="[40, 60]")  # changes old lineages
    refused = lrsweep("run", str(spec), "--quiet")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--force" in refused.stderr
    forced = lrsweep("run", str(spec), "--quiet", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    keys = eval_keys(tmp_path / "store", "edit")
    assert len(keys) == len(set(keys)) and set(keys) == expected_eval_keys(spec)


@pytest.mark.slow
def test_driver_sigkill_then_rerun_loses_and_duplicates_nothing(tmp_path):
    spec = write_spec(tmp_path, name="kill", lrs="[0.02, 0.05, 0.1]", horizons="[300, 600]", checkpoint_every=100)
    store = tmp_path / "store"
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(spec), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    # wait until some lineages are done, then SIGKILL the driver (and, like a lost laptop, its Ray)
    deadline = time.monotonic() + 300
    done = set()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if (store / "lineages").exists():
            try:
                done = set(load_lineages(str(store), "kill")["lineage_id"])
            except Exception:  # noqa: BLE001 - store still empty
                done = set()
        if len(done) >= 2:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(done) < len(plan(load_spec(spec)).lineages)
    finished_before = load_lineages(str(store), "kill").set_index(["lineage_id", "branch"])["finished_at"]
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    keys = eval_keys(store, "kill")
    assert len(keys) == len(set(keys)) and set(keys) == expected_eval_keys(spec)
    curves = load_curves(str(store), "kill")
    train = curves[curves["split"] == "train"]
    assert not train.duplicated(["lineage_id", "branch", "step"]).any()
    after = load_lineages(str(store), "kill").set_index(["lineage_id", "branch"])["finished_at"]
    assert (after.loc[finished_before.index] == finished_before).all()  # not trained again


def _trial_worker_pids() -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::ImplicitFunc") or "ray::_Inner" in cmd or cmd.startswith("ray::tune_trainable"):
            pids.append(int(pid))
    return pids


@pytest.mark.slow
def test_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    spec = write_spec(tmp_path, name="wk", lrs="[0.05]", horizons="[4000]", checkpoint_every=500)
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(spec), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpts = store / "_checkpoints" / "wk"
    deadline = time.monotonic() + 300
    killed = []
    while time.monotonic() < deadline and not killed:
        time.sleep(0.2)
        if list(ckpts.glob("*/checkpoint.pt")):
            for pid in _trial_worker_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    assert killed, "no trial worker found to kill"
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    events = [json.loads(l) for l in (ckpts / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "resumed" and e["step"] >= 500 for e in events)
    keys = eval_keys(store, "wk")
    assert len(keys) == len(set(keys)) and set(keys) == expected_eval_keys(spec)
    assert set(load_lineages(str(store), "wk")["status"]) == {"completed"}


CHAR_GPT = """
name = "tinygpt"
store = "{store}"
warmup = 5
batch_size = 4
seeds = [0]
[workload]
name = "char_gpt"
sizes = [{{ size = "nano", block_size = 32 }}]
[workload.params]
eval_batch_size = 4
[[optimizers]]
name = "adamw"
lr = [3e-3]
[[optimizers]]
name = "sf_adamw"
lr = [3e-3]
[[schedules]]
name = "wsd"
cooldown_fraction = 0.25
[[schedules]]
name = "cosine"
[horizons]
steps = [20, 40]
[[averagers]]
kind = "ema"
half_life = 0.2
[eval]
log_points = 3
batches = 2
[resources]
cpu = 1
"""


def test_tiny_char_gpt_sweep_writes_every_row_exactly_once(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(CHAR_GPT.format(store=tmp_path / "store"))
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    keys = eval_keys(tmp_path / "store", "tinygpt")
    assert len(keys) == len(set(keys)) and set(keys) == expected_eval_keys(spec)
    # schedule-free lineages also carry their evaluation point x at every eval step
    curves = load_curves(str(tmp_path / "store"), "tinygpt")
    lineages = load_lineages(str(tmp_path / "store"), "tinygpt")
    sf = set(lineages.loc[lineages["optimizer"] == "sf_adamw", "lineage_id"])
    x_rows = curves[(curves["weights"] == "x") & curves["lineage_id"].isin(sf)]
    raw_rows = curves[(curves["split"] == "eval") & (curves["weights"] == "raw") & curves["lineage_id"].isin(sf)]
    assert len(sf) == 1 and len(x_rows) == len(raw_rows) > 0


@pytest.mark.parametrize("bad", sorted((Path(__file__).parent / "bad_specs").glob("*.toml"))[:8],
                         ids=lambda p: p.stem)
def test_cli_bad_sweep_file_exits_2_with_one_line_and_writes_nothing(tmp_path, bad):
    spec = tmp_path / bad.name
    spec.write_text(bad.read_text())
    out = lrsweep("run", str(spec), "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrsweep: error: "), out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "lrsweep-results").exists()
