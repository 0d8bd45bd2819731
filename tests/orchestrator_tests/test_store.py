"""Claims about ``orchestrator.store``: what is written is read back exactly once, whatever
happens in between (rewrites, crashes mid-write, compaction, crashes mid-compaction)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from orchestrator.store import CURVES, SCHEMA_VERSION, ResultsStore, StoreError
from orchestrator.store.sql import connect

REPO = Path(__file__).resolve().parents[2]
CURVE_COLUMNS = CURVES.schema.names
UTC = dt.timezone.utc


def curve_rows(lineage: str, branch: str, steps: range, weights=("raw", "ema@0.05"), offset=0.0):
    """Train rows (weights "raw") at every step plus eval rows per weights at every 10th."""
    rows = []
    for step in steps:
        base = dict(
            lineage_id=lineage,
            branch=branch,
            step=step,
            tokens=step * 64,
            flops=step * 1e9,
            lr=1e-3,
        )
        rows.append(
            {**base, "split": "train", "weights": "raw", "loss": 4.0 - step / 1000 + offset}
        )
        if step % 10 == 0:
            for i, w in enumerate(weights):
                rows.append(
                    {
                        **base,
                        "split": "eval",
                        "weights": w,
                        "loss": 3.9 - step / 997 - i / 50 + offset,
                    }
                )
    return rows


def run_row(lineage: str, branch: str, status: str = "completed", **overrides):
    row = dict(
        lineage_id=lineage, branch=branch, parent=None, fork_step=None, rule="cosine",
        rule_params={"final_fraction": 0.1, "horizon": 200}, cooldown_shape=None, final_fraction=None,
        workload="shakespeare-char", model_size="tiny", n_params=850_000,
        optimizer="adamw", optimizer_params={"betas": [0.9, 0.95]}, peak_lr=3e-3, warmup=10, batch_size=32,
        seed=0, tokens_per_step=4096, max_step=200, status=status, error=None,
        wall_time_s=12.5, steps_trained=200, tokens_trained=819_200, flops_trained=1.2e13, replayed_steps=0,
        finished_at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        train_time_s=10.0, step_time_s=0.05, tokens_per_s=81_920.0, mfu=None, device="cpu", workers=1,
        precision="fp32",
    )  # fmt: skip
    row.update(overrides)
    return row


def multiset(frame: pd.DataFrame | pa.Table, columns=CURVE_COLUMNS) -> Counter:
    if isinstance(frame, pa.Table):
        frame = frame.to_pandas()
    return Counter(frame[columns].itertuples(index=False, name=None))


def expected(rows: list[dict], sweep_id: str) -> Counter:
    return Counter(tuple({**r, "sweep_id": sweep_id}[c] for c in CURVE_COLUMNS) for r in rows)


def sql_curves(store: ResultsStore) -> pd.DataFrame:
    con = connect(store)
    try:
        return con.sql("SELECT * FROM curve_rows").to_arrow_table().to_pandas()
    finally:
        con.close()


def files_in(store: ResultsStore, table: str, sweep_id: str) -> list[str]:
    """Every file of the partition, by its path relative to the partition folder."""
    root = store.partition_dir(table, sweep_id)
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


FIRST_PART = "_compacted/0000000001-0000000001.parquet"  # what the first compaction writes


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    return ResultsStore(str(tmp_path / "results"))


@pytest.fixture
def two_lineages(store: ResultsStore) -> list[dict]:
    """Two lineages: a WSD trunk with two cooldown branches, and a cosine main; 2 segments each."""
    written = []
    for lineage, branch, steps in [
        ("wsd1", "trunk", range(0, 160)),
        ("wsd1", "h=100", range(80, 101)),
        ("wsd1", "h=200", range(160, 201)),
        ("cos1", "main", range(0, 200)),
    ]:
        rows = curve_rows(lineage, branch, steps)
        half = len(rows) // 2
        store.write_curves("s1", lineage, branch, "000", rows[:half])
        store.write_curves("s1", lineage, branch, "001", rows[half:])
        written += rows
    return written


def test_round_trip_reads_back_exactly_the_written_rows(store, two_lineages):
    assert multiset(store.read_table("curves")) == expected(two_lineages, "s1")
    assert multiset(sql_curves(store)) == expected(two_lineages, "s1")
    # The branch "h=100" is encoded so neither "_" nor "=" appears in a key part.
    assert "wsd1/h+3D100__000.parquet" in files_in(store, "curves", "s1")


def test_read_types_match_schema(store, two_lineages):
    assert store.read_table("curves").schema.remove_metadata() == CURVES.schema.remove_metadata()


def test_rewriting_a_fragment_key_replaces_instead_of_duplicating(store, two_lineages):
    new = curve_rows("cos1", "main", range(0, 20), offset=1.0)
    store.write_curves("s1", "cos1", "main", "000", new)
    table = store.read_table("curves")
    old_seg0 = curve_rows("cos1", "main", range(0, 200))
    kept = [r for r in two_lineages if r["lineage_id"] != "cos1"] + old_seg0[len(old_seg0) // 2 :]
    assert multiset(table) == expected(kept + new, "s1")


def test_inputs_as_table_dicts_and_dataframe_store_the_same_rows(store):
    rows = curve_rows("L", "main", range(0, 30))
    frame = pd.DataFrame(rows).astype({"weights": "category", "split": "category"})
    store.write_curves("a", "L", "main", "0", rows)
    store.write_curves("b", "L", "main", "0", frame)
    store.write_curves("c", "L", "main", "0", pa.Table.from_pylist(rows))
    tables = {sid: store.read_table("curves", sid).drop_columns(["sweep_id"]) for sid in "abc"}
    assert tables["a"].equals(tables["b"]) and tables["a"].equals(tables["c"])
    assert multiset(store.read_table("curves", "b")) == expected(rows, "b")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s, r: s.write_curves("s1", "L", "main", "0", [{**r[0], "bogus": 1}]), r"unknown column\(s\) \['bogus'\]"),
        (lambda s, r: s.write_curves("s1", "L", "main", "0", [{**r[0], "split": "test"}]), r"curves.split must be one of \['train', 'eval'\], got \['test'\]"),
        (lambda s, r: s.write_curves("s1", "L", "main", "0", [{**r[0], "sweep_id": "s2"}]), r"curves.sweep_id must be 's1'"),
        (lambda s, r: s.write_curves("s1", "L", "trunk", "0", r), r"curves.branch must be 'trunk' in this fragment"),
        (lambda s, r: s.write_curves("s1", "L", "main", "0", [{k: v for k, v in r[0].items() if k != "loss"}]), r"curves.loss is required"),
        (lambda s, r: s.write_curves("s1", "L", "main", "0", []), r"curves rows must not be empty"),
        (lambda s, r: s.write_curves("../x", "L", "main", "0", r), r"sweep_id must be 1 to 64 letters, digits"),
        (lambda s, r: s.write_curves("s1", "L", "main", "0", [{**r[0], "step": "ten"}]), r"curves.step must hold int64"),
    ],
)  # fmt: skip
def test_bad_rows_are_rejected_with_the_field_named(store, call, match):
    with pytest.raises(StoreError, match=match):
        call(store, curve_rows("L", "main", range(0, 2)))


_CRASH_WRITER = """
import os, sys
sys.path.insert(0, {repo!r})
from orchestrator.store import ResultsStore
ResultsStore._rename = lambda self, src, dst: os._exit(3)   # die between write and rename
store = ResultsStore({root!r})
store._marker_checked = True
rows = [dict(lineage_id="cos1", branch="main", step=s, tokens=s, flops=0.0, lr=1.0, split="train",
             weights="raw", loss=123.0) for s in range(1000)]
store.write_curves("s1", "cos1", "main", "000", rows)      # same key as an existing fragment
store.write_curves("s1", "new1", "main", "000", rows)      # a new key
"""


def test_crash_between_write_and_rename_leaves_readers_seeing_no_partial_rows(store, two_lineages):
    script = _CRASH_WRITER.format(repo=str(REPO), root=store.root)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    temps = [n for n in files_in(store, "curves", "s1") if n.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith("cos1/.main__000.parquet.")
    # A torn temp file too (a crash during the write itself).
    Path(store.partition_dir("curves", "s1"), ".new1__main__000.parquet.deadbeef.tmp").write_bytes(
        b"PAR1\x00"
    )
    want = expected(two_lineages, "s1")
    assert multiset(store.read_table("curves")) == want
    assert multiset(sql_curves(store)) == want
    # Plain readers of the layout skip temps as well: pyarrow discovery and DuckDB's glob
    # (fragments sit one folder deeper, in their lineage's folder).
    curves_dir = f"{store.base}/curves"
    plain = ds.dataset(curves_dir, format="parquet", partitioning="hive").to_table()
    assert plain.num_rows == len(two_lineages)
    glob = (
        duckdb.connect()
        .execute(
            f"SELECT count(*) FROM read_parquet('{curves_dir}/*/*/*.parquet', hive_partitioning=true, union_by_name=true)"
        )
        .fetchone()[0]
    )
    assert glob == len(two_lineages)


def test_compaction_preserves_the_multiset_of_rows_and_is_idempotent(store, two_lineages):
    want = expected(two_lineages, "s1")
    assert store.compact("s1") == {"curves": 8, "runs": 0}
    assert files_in(store, "curves", "s1") == [FIRST_PART]
    assert multiset(store.read_table("curves")) == want
    assert multiset(sql_curves(store)) == want
    before = pq.read_table(f"{store.partition_dir('curves', 's1')}/{FIRST_PART}")
    assert store.compact("s1") == {"curves": 0, "runs": 0}
    assert pq.read_table(f"{store.partition_dir('curves', 's1')}/{FIRST_PART}").equals(before)
    assert multiset(store.read_table("curves")) == want


class _Crash(BaseException):
    pass


def test_crash_after_compacted_rename_never_shows_duplicates_and_rerun_finishes(
    store, two_lineages, monkeypatch
):
    want = expected(two_lineages, "s1")
    real_write = ResultsStore.write_batches

    def write_then_crash(self, *args):
        real_write(self, *args)
        raise _Crash  # renamed in, none of the merged fragments deleted yet

    monkeypatch.setattr(ResultsStore, "write_batches", write_then_crash)
    with pytest.raises(_Crash):
        store.compact("s1")
    monkeypatch.setattr(ResultsStore, "write_batches", real_write)
    names = files_in(store, "curves", "s1")
    assert FIRST_PART in names and len(names) == 9
    assert multiset(store.read_table("curves")) == want
    assert multiset(sql_curves(store)) == want
    # A reader in the middle of the deletes: half the merged fragments gone.
    for name in [n for n in names if n != FIRST_PART][:4]:
        os.remove(f"{store.partition_dir('curves', 's1')}/{name}")
    assert multiset(store.read_table("curves")) == want
    assert multiset(sql_curves(store)) == want
    assert store.compact("s1")["curves"] == 4
    # The rerun folds the crashed part (the same size as what it writes) into a new one.
    assert files_in(store, "curves", "s1") == ["_compacted/0000000002-0000000001.parquet"]
    assert multiset(store.read_table("curves")) == want


def test_crash_before_compacted_rename_leaves_state_unchanged(store, two_lineages, monkeypatch):
    def crash(self, src, dst):
        raise _Crash

    monkeypatch.setattr(ResultsStore, "_rename", crash)
    monkeypatch.setattr(ResultsStore, "write_batches", _write_without_cleanup)
    with pytest.raises(_Crash):
        store.compact("s1")
    monkeypatch.undo()
    names = files_in(store, "curves", "s1")
    assert FIRST_PART not in names and any(n.startswith("_compacted/.") for n in names)
    assert multiset(store.read_table("curves")) == expected(two_lineages, "s1")
    store.compact("s1")  # also removes the crashed compaction's temp
    assert files_in(store, "curves", "s1") == [FIRST_PART]
    assert multiset(sql_curves(store)) == expected(two_lineages, "s1")


def _write_without_cleanup(self, path, spec, schema, batches):
    """ResultsStore.write_batches minus the temp cleanup a hard crash would not get to run."""
    from orchestrator.store import _layout

    self.fs.create_dir(path.rpartition("/")[0], recursive=True)
    tmp = _layout.temp_path(path)
    pq.write_table(pa.concat_tables(list(batches)), tmp, filesystem=self.fs)
    self._rename(tmp, path)


def test_a_fragment_rewritten_after_compaction_wins_over_its_merged_copy(store, two_lineages):
    store.compact("s1")
    shorter = curve_rows("cos1", "main", range(0, 5), offset=2.0)
    store.write_curves("s1", "cos1", "main", "001", shorter)  # replaces segment 001 of cos1
    cos = curve_rows("cos1", "main", range(0, 200))
    want = [r for r in two_lineages if r["lineage_id"] != "cos1"] + cos[: len(cos) // 2] + shorter
    assert multiset(store.read_table("curves")) == expected(want, "s1")
    assert multiset(sql_curves(store)) == expected(want, "s1")
    store.compact("s1")
    assert multiset(store.read_table("curves")) == expected(want, "s1")


def test_delete_lineage_removes_its_rows_from_fragments_and_compacted(store, two_lineages):
    store.write_runs("s1", [run_row("cos1", "main"), run_row("wsd1", "trunk")])
    store.compact("s1")
    store.write_curves("s1", "cos1", "main", "002", curve_rows("cos1", "main", range(300, 310)))
    assert store.delete_lineage("s1", "cos1") == 3  # compacted curves, fragment, compacted runs
    want = [r for r in two_lineages if r["lineage_id"] != "cos1"]
    assert multiset(store.read_table("curves")) == expected(want, "s1")
    assert multiset(sql_curves(store)) == expected(want, "s1")
    assert store.read_table("runs")["lineage_id"].to_pylist() == ["wsd1"]


@pytest.mark.parametrize("compact_first", [False, True])
def test_truncate_drops_the_segments_from_a_step_on_and_keeps_replays(store, compact_first):
    """What a crash left beyond the last checkpoint goes; what came before, other branches and
    evaluations a replay added stay — whether in fragments or merged into the compacted file."""
    segments = {"0000000000-0000000020": range(0, 20), "0000000020-0000000040": range(20, 40),
                "0000000040-0000000050": range(40, 50)}
    for key, steps in segments.items():
        store.write_curves("s1", "L", "trunk", key, curve_rows("L", "trunk", steps))
    replay = curve_rows("L", "trunk", range(30, 31), weights=("ema@9",))[1:]
    store.write_curves("s1", "L", "trunk", "r0000000000-0000000030-abc", replay)
    store.write_curves("s1", "L", "h=50/1-sqrt@40", "0000000040-0000000050",
                       curve_rows("L", "h=50/1-sqrt@40", range(40, 50)))
    if compact_first:
        store.compact("s1")
    store.truncate_curve("s1", "L", "trunk", 20)
    got = store.read_table("curves").to_pylist()
    trunk = sorted(r["step"] for r in got if r["branch"] == "trunk" and r["split"] == "train")
    assert trunk == list(range(20))
    assert [r["weights"] for r in got if r["branch"] == "trunk" and r["step"] == 30] == ["ema@9"]
    assert sum(r["branch"] != "trunk" for r in got) == len(curve_rows("L", "x", range(40, 50)))


def test_write_runs_round_trips_every_column(store):
    row = run_row("wsd", "h=100/1-sqrt@80", "completed", parent="trunk", fork_step=80, rule="constant",
                  rule_params={}, cooldown_shape="1-sqrt", final_fraction=0.0)
    store.write_runs("s1", [row])
    got = store.read_table("runs").to_pylist()[0]
    assert got == {**row, "sweep_id": "s1", "optimizer_params": '{"betas":[0.9,0.95]}', "rule_params": "{}"}
    store.write_runs("s1", [{**row, "status": "diverged"}])  # same key: replaced, not added
    assert store.read_table("runs")["status"].to_pylist() == ["diverged"]


def test_write_sweep_keeps_created_at_and_bumps_updated_at(store):
    store.write_sweep(
        "s1", name="demo", spec_text="[sweep]\n", plan_json={"lineages": 3}, code_version="abc"
    )
    first = store.read_table("sweeps").to_pylist()[0]
    store.write_sweep(
        "s1", name="demo", spec_text="[sweep]\n", plan_json={"lineages": 4}, code_version="def"
    )
    rows = store.read_table("sweeps").to_pylist()
    assert len(rows) == 1
    assert (
        rows[0]["created_at"] == first["created_at"]
        and rows[0]["updated_at"] >= first["updated_at"]
    )
    assert rows[0]["plan_json"] == '{"lineages":4}' and rows[0]["schema_version"] == SCHEMA_VERSION
    assert len(rows[0]["spec_hash"]) == 64


def test_file_uri_root_is_the_same_store_as_the_plain_path(store, two_lineages):
    via_uri = ResultsStore(f"file://{store.base}")
    assert multiset(via_uri.read_table("curves")) == expected(two_lineages, "s1")
    via_uri.write_curves("s2", "x", "main", "0", curve_rows("x", "main", range(3)))
    assert store.sweep_ids() == ["s1", "s2"]
    assert via_uri.read_table("curves").equals(store.read_table("curves"))


def test_schema_version_mismatch_raises_a_clear_error(store, two_lineages):
    Path(store.base, "_lrsweep.json").write_text(json.dumps({"schema_version": 1}))
    fresh = ResultsStore(store.root)
    msg = (rf"has schema version 1, but this lrsweep reads schema version {SCHEMA_VERSION}; "
           rf"migrate it with `lrsweep migrate --store {store.root}`")
    with pytest.raises(StoreError, match=msg):
        fresh.read_table("curves")
    with pytest.raises(StoreError, match=msg):
        connect(fresh)
    with pytest.raises(StoreError, match=msg):
        fresh.write_curves("s1", "x", "main", "0", curve_rows("x", "main", range(2)))


def test_store_without_marker_is_judged_by_file_metadata(store, two_lineages):
    os.remove(Path(store.base, "_lrsweep.json"))
    assert multiset(ResultsStore(store.root).read_table("curves")) == expected(two_lineages, "s1")
    path = f"{store.partition_dir('curves', 's1')}/cos1/main__000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"lrsweep.schema_version": b"7"}), path)
    with pytest.raises(StoreError, match="has schema version 7"):
        ResultsStore(store.root).read_table("curves")


def test_files_missing_a_required_column_raise_a_clear_error(store, two_lineages):
    path = f"{store.partition_dir('curves', 's1')}/cos1/main__000.parquet"  # first in order
    table = pq.read_table(path)
    pq.write_table(
        table.drop_columns(["loss"]).replace_schema_metadata(table.schema.metadata), path
    )
    with pytest.raises(StoreError, match=r"curves.loss is required"):
        store.read_table("curves")
    with pytest.raises(StoreError, match=r"curves.loss is required, but the files in results"):
        connect(store)


def test_sweep_ids_and_empty_reads(store, two_lineages):
    assert store.sweep_ids() == ["s1"]
    empty = store.read_table("curves", "nope")
    assert empty.num_rows == 0 and empty.schema == CURVES.schema
    assert ResultsStore(store.base + "-missing").check_version() is False


def test_store_module_does_not_import_torch_or_pandas():
    code = (
        "import sys; import orchestrator.store, orchestrator.query; "
        "print(sorted(m for m in ('torch', 'pandas', 'ray') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_naive_datetimes_are_taken_as_utc(store):
    naive = dt.datetime(2025, 5, 6, 7, 8, 9)
    store.write_runs("s1", [run_row("L", "trunk", finished_at=naive)])
    got = store.read_table("runs")["finished_at"][0].as_py()
    assert got == naive.replace(tzinfo=UTC)


def compaction_after_first_listing(monkeypatch, store: ResultsStore, table: str) -> dict:
    """A real compaction of s1 runs right after a reader first lists ``table``."""
    real, fired = ResultsStore.snapshot, {"n": 0}

    def snapshot(self, name, sweep_id=None):
        snap = real(self, name, sweep_id)
        if name == table and not fired["n"]:
            fired["n"] = 1
            store.compact("s1")  # deletes every fragment the reader just listed
        return snap

    monkeypatch.setattr(ResultsStore, "snapshot", snapshot)
    return fired


def test_read_table_racing_a_compaction_lists_again(store, two_lineages, monkeypatch):
    fired = compaction_after_first_listing(monkeypatch, store, "curves")
    assert multiset(store.read_table("curves", "s1")) == expected(two_lineages, "s1")
    assert fired["n"] == 1 and files_in(store, "curves", "s1") == [FIRST_PART]


def test_runs_read_racing_a_compaction_lists_again(store, monkeypatch):
    store.write_runs("s1", [run_row("done", "trunk"), run_row("x", "trunk", "failed")])
    fired = compaction_after_first_listing(monkeypatch, store, "runs")
    assert sorted(store.read_table("runs", "s1")["lineage_id"].to_pylist()) == ["done", "x"]
    assert fired["n"] == 1 and files_in(store, "runs", "s1") == [FIRST_PART]