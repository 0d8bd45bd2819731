"""A store path that is an existing, non-empty folder holding no store (a mistyped path, a home
folder) is refused before anything is written; ``--init-store-in-nonempty-dir`` overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.store import ResultsStore, StoreError

SPEC = """
name = "foreign"
batch_size = 4
[workload]
name = "linreg"
sizes = [{ dim = 10 }]
[[optimizers]]
name = "sgd"
lr = 0.1
[[schedules]]
name = "constant"
[horizons]
steps = [10]
"""


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"" for p in sorted(folder.rglob("*"))}


def _write_sweep(store: ResultsStore) -> None:
    store.write_sweep("foreign", name="foreign", spec_text=SPEC, spec_hash="h", plan_json="{}", code_version="test")


def test_lrsweep_run_refuses_a_foreign_folder_in_one_line_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    (home / "thesis").mkdir()
    (tmp_path / "sweep.toml").write_text(SPEC)
    before = _listing(home)
    out = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(tmp_path / "sweep.toml"), "--store", str(home)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert out.stderr.strip() == (
        f"lrsweep: error: results store {str(home)!r} is a non-empty folder that is not an lrsweep store "
        "(no _lrsweep.json; it holds notes.txt, thesis): give a new or empty folder, or pass "
        "--init-store-in-nonempty-dir to make it one")
    assert _listing(home) == before


def test_the_override_makes_a_store_there_and_later_writes_need_no_override(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="non-empty folder that is not an lrsweep store"):
        _write_sweep(ResultsStore(str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    store = ResultsStore(str(tmp_path))
    store.init_in_nonempty_dir = True
    _write_sweep(store)
    assert (tmp_path / "_lrsweep.json").is_file() and (tmp_path / "notes.txt").read_text() == "mine"
    _write_sweep(ResultsStore(str(tmp_path)))  # now a store: no override needed
    assert ResultsStore(str(tmp_path)).sweep_ids() == ["foreign"]


def test_new_empty_and_marker_less_stores_are_accepted_and_a_file_is_not(tmp_path):
    _write_sweep(ResultsStore(str(tmp_path / "new")))  # missing: created
    (tmp_path / "empty").mkdir()
    _write_sweep(ResultsStore(str(tmp_path / "empty")))
    # a store written without the marker (by hand, or copied without it) is still a store
    (tmp_path / "new" / "_lrsweep.json").unlink()
    _write_sweep(ResultsStore(str(tmp_path / "new")))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="exists and is not a folder"):
        _write_sweep(ResultsStore(str(tmp_path / "file")))
