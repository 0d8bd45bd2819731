"""``lrsweep migrate``: a schema-version-1 store (written by lrsweep 0.1 at commit dbbefa7, see
tests/data/store_v1/README.md) comes into this schema with every row and every answer kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orchestrator.query import final_losses, load_curve_rows, load_runs, load_settings
from orchestrator.store import ResultsStore, StoreError

V1 = Path(__file__).resolve().parents[1] / "data" / "store_v1"


def lrsweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True, timeout=300)


def v1_table(table: str) -> list[dict]:
    return pq.read_table(V1 / table / "sweep_id=v1sweep" / "compacted.parquet").to_pylist()


def v1_answers() -> dict[tuple, float]:
    """Version 1's final losses, read straight from its files: per (setting, horizon, weights),
    the eval loss at step == horizon on the branch that answered it."""
    evals = {(r["lineage_id"], r["branch"], r["step"], r["weights"]): r["loss"]
             for r in v1_table("curves") if r["split"] == "eval"}
    out = {}
    for row in v1_table("lineages"):
        for h in row["horizons"]:
            for (lid, branch, step, weights), loss in evals.items():
                if (lid, branch, step) == (row["lineage_id"], row["branch"], h):
                    out[(row["setting_id"], h, weights)] = loss
    return out


@pytest.fixture
def migrated(tmp_path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(V1, root)
    refused = lrsweep("query", "--store", str(root), "SELECT 1")
    assert refused.returncode == 2 and f"migrate it with `lrsweep migrate --store {root}`" in refused.stderr
    out = lrsweep("migrate", "--store", str(root))
    assert out.returncode == 0, out.stderr
    assert "439 curve rows -> 357 (82 were a shared trunk stored twice)" in out.stdout
    assert json.loads((root / "_lrsweep.json").read_text())["schema_version"] == 2
    backups = list(tmp_path.glob("store.v1-backup-*"))
    assert len(backups) == 1 and (backups[0] / "curves").is_dir()  # nothing of v1 is thrown away
    return root


def test_every_v1_answer_is_the_same_after_migration(migrated):
    want = v1_answers()
    got = final_losses(str(migrated), "v1sweep")
    assert set(got["status"]) == {"completed"}
    have = {(r.setting_id, r.horizon, r.weights): r.loss for r in got.itertuples()}
    # 2 LRs x (constant, cosine, WSD) x 2 horizons x (raw, ema, swa) + SF-SGD x 2 horizons x (raw, x, ema, swa)
    assert have == want and len(want) == 2 * 3 * 2 * 3 + 2 * 4


def test_every_v1_curve_row_is_kept_once_under_its_trunk(migrated):
    rows = load_curve_rows(str(migrated), "v1sweep")
    key = ["lineage_id", "branch", "step", "split", "weights"]
    assert not rows.duplicated(key).any()
    v1 = v1_table("curves")
    # each v1 row's value is in the migrated store: the constant run and the WSD trunk at one LR
    # were one trajectory stored twice, now once
    values = {tuple(r) for r in rows[["step", "split", "weights", "loss", "lr"]].itertuples(index=False)}
    assert {(r["step"], r["split"], r["weights"], r["loss"], r["lr"]) for r in v1} <= values
    assert len(rows) == len(v1) - 82
    runs = load_runs(str(migrated), "v1sweep")
    assert sorted(runs["rule"].value_counts().items()) == [("constant", 6), ("cosine", 4), ("schedule_free", 1)]
    assert set(runs.loc[runs["rule"] == "constant", "branch"]) == {"trunk", "h=20/1-sqrt@16", "h=40/1-sqrt@32"}
    settings = load_settings(str(migrated), "v1sweep")
    assert set(settings["family"]) == {"constant", "cosine", "wsd", "sf_sgd"}


def test_migrating_twice_or_a_current_store_is_a_clear_no_op(migrated, tmp_path):
    again = lrsweep("migrate", "--store", str(migrated))
    assert again.returncode == 0 and "already has schema version 2: nothing to migrate" in again.stdout
    with pytest.raises(StoreError, match="not an lrsweep results store"):
        from orchestrator.store.migrate import migrate_store

        migrate_store(str(tmp_path / "nothing"))
    assert ResultsStore(str(migrated)).check_version()
