"""End to end on a real local Ray: rows present exactly once, crash safety, divergence, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.planner import plan
from orchestrator.query import final_losses, load_curve_rows, load_curves, load_lineages, load_runs
from orchestrator.spec import load_spec
from tests._procs import descendants, process_table
from trials.work import wanted_evals

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
name = "constant"
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
points_per_decade = 4
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
        for step in lineage.eval_steps:
            keys |= {(lineage.lineage_id, "trunk", step, w) for w, _ in wanted_evals(lineage, "trunk", step)}
        for b in lineage.branches:
            for step in b.eval_steps:
                keys |= {(lineage.lineage_id, b.name, step, w) for w, _ in wanted_evals(lineage, b.name, step)}
    return keys


def eval_keys(store: Path, sweep: str) -> list[tuple]:
    curves = load_curve_rows(str(store), sweep, split="eval")
    return [tuple(r) for r in curves[["lineage_id", "branch", "step", "weights"]].astype(
        {"lineage_id": str, "branch": str, "weights": str}).itertuples(index=False)]


def test_linreg_sweep_writes_every_row_exactly_once_and_query_matches_pandas(tmp_path):
    spec = write_spec(tmp_path)
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    store = str(tmp_path / "store")
    keys = eval_keys(tmp_path / "store", "e2e")
    assert len(keys) == len(set(keys))  # nothing duplicated
    assert set(keys) == expected_eval_keys(spec)  # nothing lost, nothing extra
    assert set(load_lineages(store, "e2e")["status"]) == {"completed"}
    # train rows: one per update of every trunk and cooldown, stored once
    runs = load_runs(store, "e2e")
    train = load_curve_rows(store, "e2e", split="train")
    assert not train.duplicated(["lineage_id", "branch", "step"]).any()
    assert len(train) == int(runs["steps_trained"].sum()) == plan(load_spec(spec)).planned_steps
    # `lrsweep query` returns the same final losses as the pandas API
    sql = "SELECT setting_id, branch, horizon, weights, loss FROM final_losses ORDER BY ALL"
    q = lrsweep("query", "--store", store, "--format", "json", sql)
    assert q.returncode == 0, q.stderr
    from_sql = pd.DataFrame(json.loads(q.stdout))
    from_pandas = (final_losses(store, "e2e")[["setting_id", "branch", "horizon", "weights", "loss"]]
                   .astype({"setting_id": str, "branch": str, "weights": str})
                   .sort_values(["setting_id", "branch", "horizon", "weights", "loss"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(from_sql, from_pandas, check_dtype=False)
    # `lrsweep status` counts what the store holds
    status = json.loads(lrsweep("status", "--store", store, "--json").stdout)
    assert status[0]["completed"] == runs["lineage_id"].nunique() and status[0]["pending"] == 0
    # `lrsweep export` gives a WHOLE WSD curve: the shared trunk's rows before the fork, then the cooldown
    lineages = load_lineages(store, "e2e")
    wsd = lineages[(lineages["schedule"] == "wsd") & (lineages["peak_lr"] == 0.05)].sort_values("fork_step").iloc[-1]
    csv = lrsweep("export", "e2e", wsd["lineage_id"][:8], "--branch", wsd["branch"], "--store", store)
    assert csv.returncode == 0, csv.stderr
    exported = pd.read_csv(__import__("io").StringIO(csv.stdout))
    mine = train[train["lineage_id"] == wsd["lineage_id"]]
    whole = pd.concat([mine[(mine["branch"] == "trunk") & (mine["step"] < wsd["fork_step"])],
                       mine[mine["branch"] == wsd["branch"]]]).sort_values("step")
    assert list(exported.columns) == ["step", "lr", "loss"]
    assert exported["step"].tolist() == whole["step"].tolist() == list(range(80))
    assert exported["loss"].tolist() == pytest.approx(whole["loss"].tolist(), rel=1e-8)  # CSV keeps 10 digits
    # a driver killed during its final compaction leaves fragments behind (here: one rewritten);
    # a rerun trains nothing and finishes the compaction
    from orchestrator.store import ResultsStore

    results = ResultsStore(store)
    before = load_curve_rows(store, "e2e")
    mine = before[(before["lineage_id"] == wsd["lineage_id"]) & (before["branch"] == "trunk")]
    seg = mine[((mine["split"] == "train") & (mine["step"] < 32)) | ((mine["split"] == "eval") & (mine["step"] <= 32))]
    results.write_curves("e2e", wsd["lineage_id"], "trunk", "0000000000-0000000032",
                         seg.drop(columns=["sweep_id"]).to_dict("records"))
    assert len(results.snapshot("curves", "e2e").partitions["e2e"].fragments) == 1
    again = lrsweep("run", str(spec), "--quiet")
    assert again.returncode == 0 and "nothing new to run" in again.stdout and "(0 steps)" in again.stdout
    assert results.snapshot("curves", "e2e").partitions["e2e"].fragments == []
    pd.testing.assert_frame_equal(load_curve_rows(store, "e2e"), before)


def test_diverging_lr_is_recorded_while_the_rest_complete(tmp_path):
    spec = write_spec(tmp_path, name="div", lrs="[0.05, 5.0]")
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    lineages = load_lineages(str(tmp_path / "store"), "div")
    by_lr = lineages.groupby("peak_lr")["status"].agg(set).to_dict()
    assert by_lr == {0.05: {"completed"}, 5.0: {"diverged"}}


def plan_json(spec: Path) -> dict:
    out = lrsweep("plan", str(spec), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def fork(branch: str) -> int:
    return int(branch.rsplit("@", 1)[1])


def test_extending_a_sweep_trains_only_what_is_missing_and_equals_a_fresh_run(tmp_path):
    """Horizons [40, 80] -> [40, 80, 160] -> [40, 60, 80, 160]: plan --json reports the steps the
    minimum needs, and after each rerun every stored row (every averager too) is bit-identical to
    a fresh run of the final spec, none twice."""
    spec = write_spec(tmp_path, name="ext", lrs="[0.05]", horizons="[40, 80]")
    assert lrsweep("run", str(spec), "--quiet").returncode == 0
    write_spec(tmp_path, name="ext", lrs="[0.05]", horizons="[40, 80, 160]")
    p = plan_json(spec)
    # stored: the constant/WSD trunk to 80 + cooldowns 8 and 16, cosine 40 and 80, polynomial to 80.
    # To run: the trunk 80 -> 160 from its checkpoint at 80 + the cooldown 128 -> 160 (its SWA window
    # starts at 80: nothing to replay), cosine 160, polynomial 80 -> 160.
    assert (p["stored_steps"], p["run_steps"], p["replay_steps"]) == (80 + 24 + 120 + 80, 80 + 32 + 160 + 80, 0)
    assert p["planned_steps"] == 160 + (8 + 16 + 32) + (40 + 80 + 160) + 160
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0 and "(352 steps)" in out.stdout, out.stdout + out.stderr[-2000:]
    write_spec(tmp_path, name="ext", lrs="[0.05]", horizons="[40, 60, 80, 160]")
    p = plan_json(spec)
    # horizon 60: the constant eval at 60 and the fork at 48 need the SWA window of 60 (updates
    # after 30): no kept checkpoint <= 30 (the grid keeps 32, 64, 128), so the trunk replays
    # 0 -> 60 (the same for the polynomial trunk); then the cooldown 48 -> 60 and cosine 60.
    assert (p["run_steps"], p["replay_steps"]) == (60 + 12 + 60 + 60, 60 + 60)
    assert lrsweep("run", str(spec), "--quiet").returncode == 0
    assert plan_json(spec)["run_steps"] == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    spec_fresh = write_spec(fresh, name="ext", lrs="[0.05]", horizons="[40, 60, 80, 160]")
    assert lrsweep("run", str(spec_fresh), "--quiet").returncode == 0
    key = ["lineage_id", "branch", "step", "split", "weights"]
    extended = load_curve_rows(str(tmp_path / "store"), "ext")
    scratch = load_curve_rows(str(fresh / "store"), "ext")
    assert not extended.duplicated(key).any() and len(extended) == len(scratch)
    both = extended.merge(scratch, on=key, suffixes=("", "_fresh"))
    assert len(both) == len(scratch)
    assert (both["loss"] == both["loss_fresh"]).all() and (both["lr"] == both["lr_fresh"]).all()
    pd.testing.assert_frame_equal(final_losses(str(tmp_path / "store"), "ext"),
                                  final_losses(str(fresh / "store"), "ext"))
    # the constant schedule's curve and the WSD cooldowns' prefixes are the trunk's stored rows
    curves = load_curves(str(tmp_path / "store"), "ext", split="train")
    cw = curves.loc[curves["family"] == "wsd", "lineage_id"].iloc[0]
    trunk = extended[(extended["lineage_id"] == cw) & (extended["branch"] == "trunk") & (extended["split"] == "train")]
    assert len(trunk) == 160  # stored once, not once per schedule
    stored = trunk.set_index("step")["loss"]
    for (family, branch), rows in curves[curves["lineage_id"] == cw].groupby(["family", "branch"]):
        end = 160 if family == "constant" else fork(branch)
        prefix = rows[rows["step"] < end].set_index("step")["loss"]
        assert len(prefix) == end and (prefix == stored.loc[prefix.index]).all(), (family, branch)


def test_removing_results_needs_force_which_retrains_only_what_it_deletes(tmp_path):
    spec = write_spec(tmp_path, name="edit", lrs="[0.05]")
    assert lrsweep("run", str(spec), "--quiet").returncode == 0
    before = load_runs(str(tmp_path / "store"), "edit")[["lineage_id", "branch", "finished_at"]]
    write_spec(tmp_path, name="edit", lrs="[0.05, 0.1]")  # a new LR: only new lineages run
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    after = load_runs(str(tmp_path / "store"), "edit")
    kept = after.merge(before, on=["lineage_id", "branch"], suffixes=("", "_before"))
    assert len(kept) == len(before) and (kept["finished_at"] == kept["finished_at_before"]).all()
    assert after["lineage_id"].nunique() == 2 * before["lineage_id"].nunique()
    write_spec(tmp_path, name="edit", lrs="[0.05, 0.1]", horizons="[40]")  # removes horizon 80
    refused = lrsweep("run", str(spec), "--quiet")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--force" in refused.stderr
    forced = lrsweep("run", str(spec), "--quiet", "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    keys = eval_keys(tmp_path / "store", "edit")
    assert len(keys) == len(set(keys)) and set(keys) == expected_eval_keys(spec)
    # the cosine run at 40 was not touched; every lineage that stored horizon 80 was replaced
    now = before.merge(load_runs(str(tmp_path / "store"), "edit"), on=["lineage_id", "branch"])
    untouched = now[now["finished_at_x"] == now["finished_at_y"]]
    assert len(now) == 4 and untouched["rule"].tolist() == ["cosine"]


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
        if (store / "runs").exists():
            try:
                runs = load_runs(str(store), "kill")
                done = set(runs.loc[runs["branch"] == "trunk", "lineage_id"])
            except Exception:  # noqa: BLE001 - store still empty
                done = set()
        if len(done) >= 2:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(done) < len(plan(load_spec(spec)).lineages)
    finished_before = load_runs(str(store), "kill").set_index(["lineage_id", "branch"])["finished_at"]
    out = lrsweep("run", str(spec), "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    keys = eval_keys(store, "kill")
    assert len(keys) == len(set(keys)) and set(keys) == expected_eval_keys(spec)
    train = load_curve_rows(str(store), "kill", split="train")
    assert not train.duplicated(["lineage_id", "branch", "step"]).any()
    assert len(train) == plan(load_spec(spec)).planned_steps
    after = load_runs(str(store), "kill").set_index(["lineage_id", "branch"])["finished_at"]
    assert (after.loc[finished_before.index] == finished_before).all()  # not trained again


def _trial_worker_pids(driver: int) -> list[int]:
    """Tune's trial workers under ``driver`` (its embedded Ray's raylet forks them): never
    another sweep's on the same machine."""
    pids = []
    for pid in descendants(driver, process_table()):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::ImplicitFunc") or "ray::_Inner" in cmd or cmd.startswith("ray::tune_trainable"):
            pids.append(pid)
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
        if list(ckpts.glob("*/trunk/*.json")):
            for pid in _trial_worker_pids(proc.pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    assert killed, "no trial worker found to kill"
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    from orchestrator.store import ResultsStore
    from orchestrator.trainable import read_events

    events = read_events(ResultsStore(str(store)), "wk")
    # resumed from the last checkpoint before the kill (a kept grid checkpoint or a multiple of 500)
    assert any(e["event"] == "resumed" and e["step"] > 0 for e in events), events
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
points_per_decade = 2
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
    curves = load_curve_rows(str(tmp_path / "store"), "tinygpt")
    lineages = load_lineages(str(tmp_path / "store"), "tinygpt")
    sf = set(lineages.loc[lineages["optimizer"] == "sf_adamw", "lineage_id"])
    x_rows = curves[(curves["weights"] == "x") & curves["lineage_id"].isin(sf)]
    raw_rows = curves[(curves["split"] == "eval") & (curves["weights"] == "raw") & curves["lineage_id"].isin(sf)]
    assert len(sf) == 1 and len(x_rows) == len(raw_rows) > 0


BAD_SPECS = sorted((Path(__file__).parent / "bad_specs").glob("*.toml"))

# One interpreter runs `lrsweep plan` and `lrsweep run` on every bad sweep file (through the CLI's
# own `main`, each in a fresh empty directory): what it prints, its exit code, what it left
# behind, and whether anything imported ray.
_REFUSALS = """
import contextlib, io, json, os, shutil, sys, tempfile
from orchestrator.cli import main
base, results = os.getcwd(), []
for path in sys.argv[1:]:
    for command in ("plan", "run"):
        with tempfile.TemporaryDirectory(dir=base) as d:
            shutil.copy(path, d)
            os.chdir(d)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main([command, os.path.basename(path), "--store", "store"])
                except BaseException as exc:  # noqa: BLE001 - reported, never swallowed
                    rc = repr(exc)
            left = sorted(set(os.listdir(d)) - {os.path.basename(path)})
            os.chdir(base)
        results.append({"spec": os.path.basename(path), "command": command, "rc": rc, "stdout": out.getvalue(),
                        "stderr": err.getvalue(), "left": left, "ray": "ray" in sys.modules})
print(json.dumps(results))
"""


def test_cli_refuses_every_bad_sweep_file_with_one_line_before_anything_runs(tmp_path):
    """Every fixture, `plan` and `run`: exit 2, one line under 300 characters, no traceback,
    nothing written, ray never imported (so never started)."""
    proc = subprocess.run([sys.executable, "-c", _REFUSALS, *map(str, BAD_SPECS)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 2 * len(BAD_SPECS)
    for r in results:
        where = f"{r['command']} {r['spec']}: {r}"
        assert r["rc"] == 2, where
        lines = r["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lrsweep: error: "), where
        assert len(lines[0]) < 300 and "Traceback" not in r["stderr"] and not r["stdout"], where
        assert r["left"] == [] and not r["ray"], where


@pytest.mark.parametrize("bad", ["horizon_steps_beyond_int64", "horizon_chinchilla_1e30", "memory_batch_too_large",
                                 "optimizer_grad_clip_negative", "unknown_optimizer"])
def test_lrsweep_run_refuses_a_bad_sweep_file_with_one_line_and_writes_nothing(tmp_path, bad):
    spec = tmp_path / f"{bad}.toml"
    spec.write_text((Path(__file__).parent / "bad_specs" / f"{bad}.toml").read_text())
    out = lrsweep("run", str(spec), "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrsweep: error: "), out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "lrsweep-results").exists()
