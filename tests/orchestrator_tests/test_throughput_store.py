"""Throughput in the store: the runs columns from known values, stores written before the columns
existed, ``lrsweep status``, live progress; runtime choices in trunk ids; refusing GPUs the
local Ray would not have."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from orchestrator.planner import plan
from orchestrator.progress import SweepProgress
from orchestrator.query import load_lineages, load_runs
from orchestrator.spec import parse_spec
from orchestrator.status import sweep_summaries
from orchestrator.store.migrate import migrate_store
from orchestrator.trainable import throughput_columns
from trials.identity import canonical_hash, trunk_id

V1 = Path(__file__).resolve().parents[1] / "data" / "store_v1"
NEW_COLUMNS = ("train_time_s", "step_time_s", "tokens_per_s", "mfu", "device", "workers", "precision")


def test_throughput_columns_from_known_values():
    result = {"timed_steps": 50, "train_time_s": 2.0, "tokens_per_step": 1000, "flops_per_step": 6e9,
              "device": "NVIDIA H100 80GB HBM3", "workers": 2, "precision": "bf16"}
    row = throughput_columns(result)
    assert row["step_time_s"] == 2.0 / 50 and row["tokens_per_s"] == 1000 / 0.04
    assert row["mfu"] == pytest.approx(6e9 / 0.04 / (2 * 989e12), rel=1e-12)  # two H100s' bf16 dense peak
    # an extended trunk: 50 earlier updates at 20 ms each join this run's 50 at 40 ms
    more = throughput_columns(result, {"train_time_s": 1.0, "step_time_s": 0.02})
    assert more["train_time_s"] == 3.0 and more["step_time_s"] == 3.0 / 100
    cpu = throughput_columns({**result, "device": "cpu", "precision": "fp32", "workers": 1})
    assert cpu["mfu"] is None and cpu["tokens_per_s"] == 25000.0  # MFU n/a on CPU
    none = throughput_columns({**result, "timed_steps": 0, "train_time_s": 0.0})
    assert none["tokens_per_s"] is None and none["step_time_s"] is None and none["train_time_s"] is None


@pytest.fixture
def pre_throughput_store(tmp_path) -> Path:
    """A schema-2 store as lrsweep wrote it before the throughput columns: the migrated v1
    fixture with those columns removed from its runs files."""
    root = tmp_path / "store"
    shutil.copytree(V1, root)
    migrate_store(str(root))
    files = list((root / "runs").rglob("*.parquet"))
    assert files
    for path in files:
        table = pq.read_table(path)
        keep = [c for c in table.column_names if c not in NEW_COLUMNS]
        pq.write_table(table.select(keep).replace_schema_metadata(table.schema.metadata), path)
        assert not set(NEW_COLUMNS) & set(pq.read_schema(path).names)
    return root


def test_a_store_written_before_the_throughput_columns_reads_them_as_null(pre_throughput_store):
    store = str(pre_throughput_store)
    runs, lineages = load_runs(store), load_lineages(store)
    assert len(runs) and len(lineages)
    for frame in (runs, lineages):
        for col in NEW_COLUMNS:
            assert frame[col].isna().all(), col
    (summary,) = sweep_summaries(store)
    assert summary["tokens_per_s"] is None and summary["mfu"] is None and summary["completed"] > 0
    out = subprocess.run([sys.executable, "-m", "orchestrator", "status", "--store", store], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "MFU" in out.stdout and "n/a" in out.stdout, out.stderr


def test_status_throughput_is_tokens_over_time_with_median_step_time_and_mfu():
    import pandas as pd

    from orchestrator.status import _throughput

    runs = pd.DataFrame({"tokens_per_s": [1000.0, 4000.0, None], "train_time_s": [2.0, 1.0, None],
                         "step_time_s": [0.1, 0.3, None], "mfu": [None, None, None]})
    got = _throughput(runs)
    assert got["tokens_per_s"] == (2000.0 + 4000.0) / 3.0 and got["step_time_s"] == 0.2 and got["mfu"] is None
    runs["mfu"] = [0.3, 0.5, None]
    assert _throughput(runs)["mfu"] == 0.4


def test_live_progress_shows_tokens_per_second_and_mfu_per_running_lineage():
    buf = io.StringIO()
    p = SweepProgress([("aaaaaaaaaaaa", 10_000, "constant"), ("bbbbbbbbbbbb", 10_000, "cosine")], live=False,
                      console=Console(file=buf, width=400), interval=1e9)
    p.update("aaaaaaaaaaaa", state="running", tokens=100, branch="trunk", step=10, end=100, loss=3.0,
             tokens_per_s=15_200.0, mfu=None)
    p.update("bbbbbbbbbbbb", state="running", tokens=100, branch="trunk", step=10, end=100, loss=3.0,
             tokens_per_s=2.5e6, mfu=0.412)
    line = p.line()
    assert "aaaaaaaa trunk@10/100 loss 3 15.2k tokens/s MFU n/a" in line
    assert "bbbbbbbb trunk@10/100 loss 3 2.5M tokens/s MFU 41.2%" in line
    out = Console(file=io.StringIO(), width=200, record=True)
    out.print(p.render())
    text = out.export_text()
    assert "MFU" in text and "n/a" in text and "41.2%" in text and "15.2k" in text


MINIMAL = {"name": "ids", "warmup": 2, "batch_size": 8, "workload": {"name": "linreg", "sizes": [{"dim": 10}]},
           "optimizers": [{"name": "sgd", "lr": [0.1]}], "schedules": [{"name": "constant"}],
           "horizons": {"steps": [20]}}


def test_runtime_choices_enter_trunk_ids_only_when_they_differ_from_the_default():
    (base,) = plan(parse_spec(MINIMAL)).lineages
    # the id formula of before: the same hash, with no runtime key
    old = canonical_hash({"workload": "linreg", "workload_params": {"dim": 10}, "optimizer": "sgd",
                          "optimizer_params": {}, "peak_lr": 0.1, "warmup": 2, "batch_size": 8, "seed": 0,
                          "rule": "constant", "rule_params": {}})
    assert base.lineage_id == old == trunk_id(workload="linreg", workload_params={"dim": 10}, optimizer="sgd",
                                              optimizer_params={}, peak_lr=0.1, warmup=2, batch_size=8, seed=0,
                                              rule="constant", rule_params={}, runtime={})
    (same,) = plan(parse_spec({**MINIMAL, "runtime": {"precision": "fp32", "compile": False},
                               "resources": {"workers": 1}})).lineages
    assert same.lineage_id == base.lineage_id
    (two,) = plan(parse_spec({**MINIMAL, "resources": {"workers": 2}})).lineages
    (compiled,) = plan(parse_spec({**MINIMAL, "runtime": {"compile": True}})).lineages
    assert len({base.lineage_id, two.lineage_id, compiled.lineage_id}) == 3
    assert (two.workers, two.compile, compiled.compile, compiled.precision) == (2, False, True, "fp32")
    # the sweep's hash (stored with it, and a search's guard) likewise: as before for the defaults
    from orchestrator.spec import spec_hash

    spec = parse_spec(MINIMAL)
    assert spec_hash(spec) == canonical_hash(spec.model_dump(mode="json", exclude={"store", "resources", "runtime"}))
    assert spec_hash(parse_spec({**MINIMAL, "resources": {"workers": 2}})) != spec_hash(spec)
    assert spec_hash(parse_spec({**MINIMAL, "resources": {"cpu": 2}})) == spec_hash(spec)


@pytest.mark.parametrize("gpu", [0.25, 0.5, 1, 2, 1 / 3])
def test_gpu_shares_that_divide_a_gpu_or_whole_gpus_are_accepted(gpu):
    assert parse_spec({**MINIMAL, "resources": {"gpu": gpu}}).resources.gpu == gpu


_RUN = """
import json, sys
from orchestrator.cli import main
rc = main(["run", sys.argv[1], "--store", "store"])
print(json.dumps({"rc": rc, "ray": "ray" in sys.modules}))
"""


def test_lrsweep_run_refuses_a_gpu_the_local_ray_would_not_have(tmp_path):
    """This machine has no CUDA device (torch.cuda.device_count() == 0)."""
    import torch

    if torch.cuda.device_count() > 0:
        pytest.skip("this machine has a GPU")
    spec = tmp_path / "gpu.toml"
    spec.write_text('name = "g"\nwarmup = 2\nbatch_size = 8\n[workload]\nname = "linreg"\nsizes = [{ dim = 10 }]\n'
                    '[[optimizers]]\nname = "sgd"\nlr = [0.1]\n[[schedules]]\nname = "constant"\n'
                    '[horizons]\nsteps = [20]\n[resources]\ngpu = 1\n')
    out = subprocess.run([sys.executable, "-c", _RUN, str(spec)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    lines = out.stderr.strip().splitlines()
    assert result == {"rc": 2, "ray": False}, out.stderr
    assert len(lines) == 1 and lines[0].startswith("lrsweep: error: resources.gpu must be at most what this machine "
                                                   "has: 1 per trial needs 1 GPU(s), the local Ray would see 0")
    assert not (tmp_path / "store").exists()



@pytest.mark.parametrize(("cpu", "message"), [
    ("4096", "resources.cpu must be at most what this machine has: 4096 per trial needs 4096 CPUs, the local Ray "
             "has {have} (os.cpu_count())"),
    ("1e-300", "resources.cpu must be a number of CPUs of at least 0.0001, in steps of 0.0001 (Ray's resource unit), "
               "got 1e-300"),
    ("0.00015", "resources.cpu must be a number of CPUs of at least 0.0001, in steps of 0.0001 (Ray's resource "
                "unit), got 0.00015"),
])
def test_lrsweep_run_refuses_cpus_the_local_ray_cannot_schedule(tmp_path, cpu, message):
    """More CPUs per trial than the embedded Ray has (it would wait forever), or a share finer
    than Ray's resource unit: one line, exit 2, Ray not started, nothing written."""
    import os

    spec = tmp_path / "cpu.toml"
    spec.write_text('name = "c"\nwarmup = 2\nbatch_size = 8\n[workload]\nname = "linreg"\nsizes = [{ dim = 10 }]\n'
                    '[[optimizers]]\nname = "sgd"\nlr = [0.1]\n[[schedules]]\nname = "constant"\n'
                    f'[horizons]\nsteps = [20]\n[resources]\ncpu = {cpu}\n')
    out = subprocess.run([sys.executable, "-c", _RUN, str(spec)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    lines = out.stderr.strip().splitlines()
    assert result == {"rc": 2, "ray": False}, out.stderr
    assert len(lines) == 1 and message.format(have=os.cpu_count()) in lines[0], lines
    assert not (tmp_path / "store").exists() and not (tmp_path / "lrsweep-results").exists()


DP_SWEEP = """
name = "dp"
store = "{store}"
warmup = 2
batch_size = 8
[workload]
name = "linreg"
sizes = [{{ dim = 30 }}]
[[optimizers]]
name = "sgd"
lr = [0.05]
[[schedules]]
name = "wsd"
cooldown_fraction = 0.25
[horizons]
steps = [40, 80]
[resources]
cpu = 1
workers = 2
"""


def test_a_two_worker_sweep_through_ray_equals_one_worker_and_records_its_throughput(tmp_path):
    from trials.lineage import run_lineage
    from trials.sinks import MemorySink

    spec_path = tmp_path / "dp.toml"
    spec_path.write_text(DP_SWEEP.format(store=tmp_path / "store"))
    out = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec_path), "--quiet"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    store = str(tmp_path / "store")
    runs = load_runs(store, "dp")
    assert set(runs["status"]) == {"completed"} and len(runs) == 3  # the trunk and two cooldowns
    assert set(runs["workers"]) == {2} and set(runs["device"]) == {"cpu"} and runs["mfu"].isna().all()
    # fresh sweep: every update timed once; tokens/s = tokens per step / step time, consistent with rows
    assert (runs["train_time_s"] / runs["step_time_s"]).round().astype(int).tolist() == runs["steps_trained"].tolist()
    assert ((runs["tokens_per_s"] * runs["step_time_s"]).round() == runs["tokens_per_step"]).all()
    assert (runs["train_time_s"] <= runs["wall_time_s"]).all()
    lineages = load_lineages(store, "dp")
    assert lineages["tokens_per_s"].notna().all() and lineages["mfu"].isna().all()
    (summary,) = sweep_summaries(store, "dp")
    assert summary["tokens_per_s"] > 0 and summary["mfu"] is None
    # the stored 2-worker curve is the 1-worker curve of the same global batch, within float rounding
    from orchestrator.query import load_curve_rows
    from orchestrator.spec import load_spec

    (two,) = plan(load_spec(spec_path)).lineages
    one = MemorySink()
    run_lineage(__import__("dataclasses").replace(two, workers=1), sink=one)
    stored = load_curve_rows(store, "dp", split="train")
    mine = {(r.branch, r.step): r.loss for r in stored.itertuples()}
    theirs = {(r["branch"], r["step"]): r["loss"] for r in one.rows() if r["split"] == "train"}
    assert mine.keys() == theirs.keys()
    assert max(abs(mine[k] - theirs[k]) for k in mine) < 1e-5


def test_a_trial_report_becomes_tokens_per_second_and_mfu_in_the_display():
    """What a running trial reports (updates/s, its devices' peak) through the Tune callback."""
    from types import SimpleNamespace

    from orchestrator.execution import _make_progress_callback

    display = SweepProgress([("L1", 10_000, "a"), ("L2", 10_000, "b")], live=False,
                            console=Console(file=io.StringIO()), interval=1e9)
    callback = _make_progress_callback(object, display, {}, [0.0], {"L1": 256, "L2": 256}, {"L1": 1e9, "L2": 1e9})
    for lid, peak in (("L1", None), ("L2", 1e12)):
        trial = SimpleNamespace(config={"lineage": {"lineage_id": lid}})
        callback.on_trial_result(0, [], trial, {"steps_done": 10, "branch": "trunk", "step": 10, "end": 40,
                                                "loss": 3.0, "steps_per_s": 4.0, "peak_flops": peak})
    one, two = display.lineages["L1"], display.lineages["L2"]
    assert (one.tokens_per_s, one.mfu) == (1024.0, None)  # CPU: n/a
    assert (two.tokens_per_s, two.mfu) == (1024.0, 4.0 * 1e9 / 1e12)
