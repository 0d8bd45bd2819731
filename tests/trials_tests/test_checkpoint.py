"""Checkpoints are loaded without running anything, refuse what is not theirs, and round-trip."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trials.checkpoint import CheckpointError, CheckpointStore
from trials.lineage import run_lineage
from trials.lineage_plan import PlanConfig, TrialSetting, plan_lineages
from trials.sinks import MemorySink


class _Payload:
    """Unpickling this creates a marker file: what a planted checkpoint would do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _spec():
    setting = TrialSetting(workload="linreg", workload_params={"dim": 8}, optimizer="sgd", optimizer_params={},
                           schedule_free=False, schedule="constant", schedule_params={}, peak_lr=0.05, warmup=0,
                           batch_size=2, seed=0, horizons=(40,))
    return plan_lineages([setting], PlanConfig(divergence_factor=1e6))[0][0]  # noise never trips it


def test_a_planted_checkpoint_is_refused_and_never_runs(tmp_path):
    spec = _spec()
    store = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    marker = tmp_path / "pwned"
    path = Path(store.trunk_path(40))
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:  # an old-style (full pickle) torch file with a payload
        torch.save({"format": 2, "lineage_id": spec.lineage_id, "step": 40, "branch": None,
                    "evil": _Payload(str(marker))}, handle, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    (path.with_suffix(".json")).write_text(
        json.dumps({"format": 2, "lineage_id": spec.lineage_id, "step": 40, "branch": None, "averagers": []}))
    assert store.trunk_checkpoints() == {40: frozenset()}
    with pytest.raises(CheckpointError, match=r"checkpoint .*0000000040\.pt cannot be used: not a safe lrsweep checkpoint"):
        store.load_trunk(40)
    assert not marker.exists()
    # the same file through a whole lineage run: one clean error, still nothing executed
    stored = MemorySink().stored(store)
    with pytest.raises(CheckpointError):
        run_lineage(spec, sink=MemorySink(), checkpoints=store, stored=stored)
    assert not marker.exists()


def test_foreign_corrupt_and_misplaced_checkpoints_are_refused_with_one_line(tmp_path):
    spec = _spec()
    mine = CheckpointStore(tmp_path / "a", spec.lineage_id)
    run_lineage(spec, sink=MemorySink(), checkpoints=mine)
    assert 40 in mine.trunk_checkpoints()
    other = CheckpointStore(tmp_path / "a", "someone-else")
    with pytest.raises(CheckpointError, match="belongs to lineage"):
        other.load(mine.trunk_path(40), step=40, branch=None)
    with pytest.raises(CheckpointError, match="expected trunk step 32"):
        mine.load(mine.trunk_path(40), step=32, branch=None)
    Path(mine.trunk_path(40)).write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError) as err:
        mine.load_trunk(40)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_a_crash_mid_write_never_leaves_a_listed_partial_checkpoint(tmp_path):
    """The sidecar is written after the data: a listing never names a half-written file."""
    spec = _spec()
    store = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    code = (
        "import os, sys, torch\n"
        "from trials.checkpoint import CheckpointStore\n"
        f"s = CheckpointStore({str(tmp_path / 'ck')!r}, {spec.lineage_id!r})\n"
        "real = os.replace\n"
        "def dying(src, dst):\n"
        "    if str(dst).endswith('.json'): os._exit(9)  # killed between the data and its sidecar\n"
        "    real(src, dst)\n"
        "os.replace = dying\n"
        "s.save_trunk(7, {'model': {'w': torch.ones(3)}}, [])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 9
    assert Path(store.trunk_path(7)).exists() and store.trunk_checkpoints() == {}
