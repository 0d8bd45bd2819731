"""The query sandbox: one test per attempt to escape it, through ``run_query`` (both layers), the
raw ``connect()`` connection (the DuckDB settings alone) and the ``lrsweep query`` CLI; normal
queries keep working."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_query import build  # the hand-built store of the query tests

from orchestrator.query import connect, query_arrow, query_df, run_query
from orchestrator.store import ResultsStore
from orchestrator.store.errors import QueryError
from orchestrator.store.sandbox import SETTINGS, read_only_statement

REPO = Path(__file__).resolve().parents[2]
ROWS = 38  # rows of the whole-curve view over what build() writes (27 stored rows)


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(str(tmp_path / "results"))
    build(s)
    return s


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the store holding a secret text file and a Parquet file."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text("s3cr3t\n")
    (d / "secret.csv").write_text("s3cr3t\n")
    pq.write_table(pa.table({"a": [7]}), d / "other.parquet")
    return d


def store_digest(store: ResultsStore) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(store.base):
        for name in files:
            path = os.path.join(root, name)
            out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def refused(store: ResultsStore, sql: str, match: str = "") -> str:
    with pytest.raises(QueryError, match=match) as info:
        run_query(store, sql)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    return message


def raw_fails(store: ResultsStore, sql: str, match: str) -> None:
    """The settings alone (a raw connect() connection, no statement check) stop ``sql``."""
    con = connect(store)
    try:
        with pytest.raises(duckdb.Error, match=match):
            con.execute(sql)
    finally:
        con.close()


def curve_count(store: ResultsStore) -> int:
    return query_arrow(store, "SELECT count(*) AS n FROM curves")["n"][0].as_py()


# ---------------------------------------------------------------------------------- writes
def test_copy_to_a_file_is_refused_and_writes_nothing(store, tmp_path):
    target = tmp_path / "stolen.csv"
    sql = f"COPY (SELECT * FROM curves) TO '{target}'"
    assert refused(store, sql, "query refused: only read-only statements") .endswith("got COPY")
    assert not target.exists()
    raw_fails(store, sql, "disabled by configuration")
    assert not target.exists()


def test_copy_into_the_stores_own_folder_is_impossible(store):
    before, digest = curve_count(store), store_digest(store)
    part = Path(store.partition_dir("curves", "s1"))
    fragment = sorted(part.glob("*/*.parquet"))[0]  # in its lineage's folder
    new_file = part / "dup__main__0.parquet"
    for sql in (
        f"COPY (SELECT * EXCLUDE (sweep_id) FROM curves) TO '{new_file}'",
        f"COPY (SELECT * EXCLUDE (sweep_id) FROM curves) TO '{fragment}' (USE_TMP_FILE false)",
        f"EXPLAIN ANALYZE COPY (SELECT * FROM curves) TO '{new_file}'",
        f"EXPLAIN (ANALYZE) COPY (SELECT * FROM curves) TO '{fragment}' (USE_TMP_FILE false)",
    ):
        refused(store, sql, "query refused")
    raw_fails(store, f"COPY (SELECT * FROM curves) TO '{new_file}'", "disabled by configuration")
    raw_fails(store, f"COPY (SELECT 1) TO '{part}/x.csv'", "disabled by configuration")
    assert not new_file.exists() and store_digest(store) == digest
    assert curve_count(store) == before == ROWS


# ---------------------------------------------------------------------------------- reads
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('{outside}/secret.txt')",
        "SELECT * FROM '{outside}/secret.csv'",
        "SELECT * FROM read_parquet('{outside}/other.parquet')",
        "SELECT * FROM glob('{outside}/*')",
        "SELECT * FROM read_parquet('{store}/curves/*/*.parquet')",  # the store's folder, by glob
        "SELECT * FROM read_blob('{store}/_lrsweep.json')",  # a store file no view reads
    ],
    ids=["passwd", "read_text", "replacement-scan", "parquet", "glob", "store-glob", "marker"],
)
def test_reading_outside_the_listed_store_files_is_refused(store, outside, sql):
    sql = sql.format(outside=outside, store=store.base)
    message = refused(store, sql, "query failed: Permission Error")
    assert "s3cr3t" not in message and "root:" not in message
    raw_fails(store, sql, "disabled by configuration")


def test_python_variables_are_not_scanned(store):
    leaked = pa.table({"secret": ["s3cr3t"]})  # noqa: F841  (what a replacement scan would find)
    with pytest.raises(QueryError, match="leaked"):
        query_df(store, "SELECT * FROM leaked")


# ---------------------------------------------------------------------------------- attach
def test_attach_is_refused(store, tmp_path):
    db = tmp_path / "new.db"
    refused(store, f"ATTACH '{db}' AS x", "got ATTACH")
    refused(store, "ATTACH ':memory:' AS m", "got ATTACH")
    raw_fails(store, f"ATTACH '{db}' AS x", "disabled by configuration")
    assert not db.exists()


# ---------------------------------------------------------------------------------- extensions
@pytest.mark.parametrize("sql", ["INSTALL httpfs", "LOAD httpfs", "FORCE INSTALL spatial"])
def test_installing_and_loading_extensions_is_refused(store, sql):
    refused(store, sql, "query refused")
    raw_fails(store, sql, "disabled|Permission")


def test_no_extension_is_auto_installed_or_loaded(store):
    # httpfs is not built in: a URL would auto-install and auto-load it by default.
    message = refused(store, "SELECT * FROM read_parquet('https://127.0.0.1:9/x.parquet')", "query")
    assert "query failed" in message
    con = duckdb.connect()  # what the default connection does, for contrast
    try:
        assert con.execute("SELECT current_setting('autoload_known_extensions')").fetchone()[0]
    finally:
        con.close()
    loaded = query_arrow(store, "SELECT current_setting('autoload_known_extensions') AS v")
    assert loaded["v"].to_pylist() == [False]


# ---------------------------------------------------------------------------------- statements
@pytest.mark.parametrize(
    "sql, count",
    [("SELECT 1; SELECT 2", 2), ("SELECT 1; COPY (SELECT 1) TO '{tmp}/x.csv'", 2), ("", 0), (";", 0)],
)
def test_more_or_less_than_one_statement_is_refused(store, tmp_path, sql, count):
    message = refused(store, sql.format(tmp=tmp_path), "query refused: one statement per query")
    assert message.endswith(f"got {count}")
    assert not (tmp_path / "x.csv").exists()


# ---------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SET allowed_directories = ['/']",
        "PRAGMA enable_profiling",
        "SET VARIABLE x = 1",
        "CALL pragma_version()",
    ],
)
def test_settings_changes_are_refused(store, sql):
    refused(store, sql, "query refused")


@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET allowed_directories = ['/']",
        "SET lock_configuration = false",
        "PRAGMA enable_profiling",
        "SET autoinstall_known_extensions = true",
    ],
)
def test_the_raw_connection_configuration_is_locked(store, sql):
    raw_fails(store, sql, "configuration has been locked")


def test_every_setting_holds_on_a_connection(store):
    con = connect(store)
    try:
        for name, value in SETTINGS:
            got = con.execute(f"SELECT current_setting('{name}')").fetchone()[0]
            assert str(got).lower() == value.strip("'"), name
        allowed = con.execute("SELECT current_setting('allowed_paths')").fetchone()[0]
        assert con.execute("SELECT current_setting('allowed_directories')").fetchone()[0] == []
    finally:
        con.close()
    listed = sorted(str(p) for p in Path(store.base).rglob("*.parquet"))
    assert sorted(allowed) == listed  # exactly the files the views read: no directory, no marker


# ---------------------------------------------------------------------------------- still works
@pytest.mark.parametrize(
    "sql, check",
    [
        ("SELECT count(*) AS n FROM curves", lambda t: t["n"].to_pylist() == [ROWS]),
        ("WITH c AS (SELECT * FROM curves) SELECT count(*) AS n FROM c", lambda t: t["n"][0].as_py() == ROWS),
        ("FROM lineages SELECT count(*) AS n", lambda t: t["n"].to_pylist() == [7]),
        ("VALUES (1), (2)", lambda t: t.num_rows == 2),
        ("DESCRIBE curves", lambda t: "loss" in t["column_name"].to_pylist()),
        ("SUMMARIZE SELECT loss FROM curves", lambda t: t["column_name"].to_pylist() == ["loss"]),
        ("SHOW TABLES", lambda t: {"curves", "final_losses"} <= set(t["name"].to_pylist())),
        ("EXPLAIN SELECT * FROM curves", lambda t: t.num_rows >= 1),
        ("/* why */ EXPLAIN ANALYZE SELECT count(*) FROM final_losses;", lambda t: t.num_rows >= 1),
        ("EXPLAIN (FORMAT json) SELECT 1", lambda t: t.num_rows >= 1),
        ("SELECT count(*) AS n FROM final_losses", lambda t: t["n"].to_pylist() == [15]),
    ],
)
def test_read_only_queries_work(store, sql, check):
    assert check(query_arrow(store, sql))


def test_parse_errors_stay_query_failures(store):
    message = refused(store, "SELEC 1", "Parser")
    assert message.startswith("query failed: Parser Error")


@pytest.mark.parametrize(
    "sql, kind",
    [
        ("EXPLAIN COPY (SELECT 1) TO 'x'", "COPY"),
        ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "INSERT"),
        ("EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1) TO 'x'", "COPY"),
        ("EXPLAIN /* (( */ ANALYZE CREATE TABLE t AS SELECT 1", "CREATE"),
    ],
)
def test_explain_only_of_a_read_only_statement(sql, kind):
    with pytest.raises(QueryError, match=rf"EXPLAIN only of a read-only statement, got EXPLAIN {kind}$"):
        read_only_statement(sql)


# ---------------------------------------------------------------------------------- CLI
def lrsweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_refusal_is_one_line_and_exit_2(store, tmp_path):
    target = tmp_path / "out.csv"
    out = lrsweep("query", f"COPY (SELECT * FROM curves) TO '{target}'", "--store", store.base)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("lrsweep: error: query refused: only read-only statements")
    assert out.stderr.count("\n") == 1 and len(out.stderr) < 300 and "Traceback" not in out.stderr
    assert not target.exists()
    out = lrsweep("query", "SELECT * FROM read_csv('/etc/passwd')", "--store", store.base)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "root:" not in out.stderr
    out = lrsweep("query", "SELECT count(*) AS n FROM curves", "--store", store.base, "--format", "csv")
    assert out.returncode == 0 and out.stdout.split() == ["n", str(ROWS)]


# ---------------------------------------------------------------------------------- racing
def compact_once_after(monkeypatch, store: ResultsStore, table: str) -> dict:
    """Run a real compaction of s1 right after a reader first lists ``table``: every fragment
    that reader listed is deleted before it reads one."""
    real = ResultsStore.snapshot
    fired = {"n": 0}

    def snapshot(self, name, sweep_id=None):
        snap = real(self, name, sweep_id)
        if name == table and not fired["n"]:
            fired["n"] = 1
            assert snap.paths() and not any(p.parts for p in snap.partitions.values())
            store.compact("s1")
        return snap

    monkeypatch.setattr(ResultsStore, "snapshot", snapshot)
    return fired


def test_a_query_racing_a_compaction_retries_on_a_fresh_listing(store, monkeypatch):
    fired = compact_once_after(monkeypatch, store, "curves")
    got = query_df(store, "SELECT count(*) AS n, sum(loss) AS s FROM curves")
    assert fired["n"] == 1 and got["n"].tolist() == [ROWS]
    assert got["s"].tolist() == pytest.approx([query_df(store, "SELECT sum(loss) AS s FROM curves")["s"][0]])
    assert query_df(store, "SELECT count(*) AS n FROM final_losses")["n"].tolist() == [15]


def test_without_the_retry_the_same_race_fails(store, monkeypatch):
    from orchestrator.store import sandbox

    compact_once_after(monkeypatch, store, "curves")
    with pytest.raises(Exception, match="curves|No such file|not found"):
        sandbox.run(store, lambda con: con.sql("SELECT count(*) FROM curves").fetchall(), attempts=1)


def test_a_compaction_between_connecting_and_querying_is_retried(store, monkeypatch):
    from orchestrator.store import sandbox

    real, fired = sandbox.confine, {"n": 0}

    def confine_then_compact(con, files):
        real(con, files)
        if not fired["n"]:
            fired["n"] = 1
            store.compact("s1")  # the views' fragments are gone before the statement runs

    monkeypatch.setattr(sandbox, "confine", confine_then_compact)
    assert query_df(store, "SELECT count(*) AS n FROM curves")["n"].tolist() == [ROWS]
    assert fired["n"] == 1 and not list(Path(store.partition_dir("curves", "s1")).glob("[!_]*/*.parquet"))


def test_a_bad_query_is_not_retried(store, monkeypatch):
    from orchestrator.store import sandbox

    calls = {"n": 0}
    real = sandbox.confine

    def counting(con, files):
        calls["n"] += 1
        real(con, files)

    monkeypatch.setattr(sandbox, "confine", counting)
    with pytest.raises(QueryError, match="lossy"):
        run_query(store, "SELECT lossy FROM curves")
    assert calls["n"] == 1


def test_readers_under_repeated_compactions_never_fail_nor_miscount(tmp_path):
    """A thread rewrites 30 fragments and compacts them, over and over; every read meanwhile
    (SQL through the sandbox, and ``load_curves`` through pyarrow) sees each row exactly once.
    Without the retries a quarter of such reads failed with a 10 ms pause between compactions;
    with that pause and five other processes loading both cores, one read in 13 still raced
    five times in a row, hence the 0.2 s pause (still far more compactions than a sweep runs)."""
    import threading
    import time

    from test_query import ev

    from orchestrator.query import load_curve_rows

    s = ResultsStore(str(tmp_path / "r"))
    n = 30

    def write_all():
        for i in range(n):
            s.write_curves("s1", f"l{i}", "main", "0", [ev(f"l{i}", "main", t, "raw", 1.0) for t in (10, 20)])

    write_all()
    stop, cycles, failures = threading.Event(), [0], []

    def churn():
        while not stop.is_set():
            write_all()
            s.compact("s1")
            cycles[0] += 1
            time.sleep(0.2)  # a compaction every ~0.3 s: far more often than sweeps compact

    thread = threading.Thread(target=churn)
    thread.start()
    reads, began = 0, time.monotonic()
    try:
        while (time.monotonic() - began < 3 or cycles[0] < 5 or reads < 10) and time.monotonic() - began < 60:
            reads += 1
            try:
                if reads % 2:
                    got = int(run_query(s, "SELECT count(*) AS n FROM curve_rows", "csv").split()[1])
                else:
                    got = len(load_curve_rows(s, "s1"))
                if got != 2 * n:
                    failures.append(f"read {reads}: {got} rows")
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(f"read {reads}: {exc}")
    finally:
        stop.set()
        thread.join()
    assert cycles[0] >= 5 and reads >= 10
    assert failures == []
