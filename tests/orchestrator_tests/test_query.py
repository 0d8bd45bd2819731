"""Claims about ``orchestrator.query``: final losses against a hand-computed table, SQL and
pandas agreeing exactly, output formats that parse back to the same values, clear errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from orchestrator.query import (
    connect,
    final_losses,
    load_curves,
    load_lineages,
    load_sweeps,
    query_df,
    run_query,
)
from orchestrator.store import ResultsStore, StoreError
from orchestrator.store.errors import QueryError

REPO = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
NAN = math.nan


def lineage(lid: str, branch: str, horizons: list[int], status: str = "completed", **kw) -> dict:
    row = dict(
        lineage_id=lid, branch=branch, parent=None, fork_step=None, setting_id=f"set-{lid}",
        family=kw.pop("family", "cosine"), workload="shakespeare-char", model_size="tiny",
        n_params=850_000, optimizer="adamw", optimizer_params="{}", schedule="cosine",
        schedule_params="{}", peak_lr=3e-3, warmup=10, batch_size=32, seed=0,
        tokens_per_step=1000, horizons=horizons, max_step=max(horizons, default=160),
        status=status, error=None, wall_time_s=1.5, steps_trained=200, tokens_trained=200_000,
        flops_trained=1e12, finished_at=dt.datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    row.update(kw)
    return row


def ev(lid: str, branch: str, step: int, weights: str, loss: float) -> dict:
    return dict(
        lineage_id=lid, branch=branch, step=step, tokens=step * 1000, flops=step * 1e6, lr=1e-3,
        split="eval", weights=weights, loss=loss,
    )  # fmt: skip


def train(lid: str, branch: str, step: int, loss: float) -> dict:
    return {**ev(lid, branch, step, "raw", loss), "split": "train"}


def build(store: ResultsStore, sweep_id: str = "s1") -> None:
    """Five lineages whose final losses are written out by hand in EXPECTED."""
    curves = {
        # cosine at one horizon: eval raw + ema at 50 and 100. A train row at 100 must not count.
        ("cos", "main"): [
            ev("cos", "main", 50, "raw", 3.5), ev("cos", "main", 50, "ema@0.1", 3.4),
            ev("cos", "main", 100, "raw", 3.0), ev("cos", "main", 100, "ema@0.1", 2.9),
            train("cos", "main", 100, 9.9),
        ],
        # WSD: trunk evals never count (no horizons); each cooldown branch answers its horizon.
        ("wsd", "trunk"): [ev("wsd", "trunk", s, "raw", 4.0 - s / 100) for s in (50, 100, 150)],
        ("wsd", "h=100"): [ev("wsd", "h=100", 100, "raw", 2.8)],
        ("wsd", "h=200"): [ev("wsd", "h=200", 100, "raw", 9.0), ev("wsd", "h=200", 200, "raw", 2.5)],
        # constant + averagers at two horizons; "swa@100" only exists at step 100.
        ("const", "main"): [
            ev("const", "main", 100, "raw", 3.2), ev("const", "main", 100, "ema@0.1", 3.1),
            ev("const", "main", 100, "swa@100", 3.05),
            ev("const", "main", 200, "raw", 2.9), ev("const", "main", 200, "ema@0.1", 2.7),
        ],
        # diverged before step 100: NaN at both horizons for every weights it evaluated.
        ("div", "main"): [ev("div", "main", 50, "raw", 6.0), ev("div", "main", 50, "ema@0.1", 5.0)],
    }  # fmt: skip
    for (lid, branch), rows in curves.items():
        store.write_curves(sweep_id, lid, branch, "0", rows)
    store.write_lineage(
        sweep_id,
        [
            lineage("cos", "main", [100]),
            lineage("wsd", "trunk", [], family="wsd", schedule="wsd"),
            lineage(
                "wsd", "h=100", [100], family="wsd", schedule="wsd", parent="trunk", fork_step=80
            ),
            lineage(
                "wsd", "h=200", [200], family="wsd", schedule="wsd", parent="trunk", fork_step=160
            ),
            lineage("const", "main", [100, 200], family="constant", schedule="constant"),
            lineage("div", "main", [100, 200], "diverged", error="loss 5x first loss at step 61"),
            lineage("dead", "main", [100], "failed", error="OOM"),  # no curve rows at all
        ],
    )
    store.write_sweep(sweep_id, name="demo", spec_text="x = 1\n", plan_json="{}", code_version="t")


# (lineage, branch, horizon, weights, loss, status): written out by hand from build().
EXPECTED = [
    ("const", "main", 100, "ema@0.1", 3.1, "completed"),
    ("const", "main", 100, "raw", 3.2, "completed"),
    ("const", "main", 100, "swa@100", 3.05, "completed"),
    ("const", "main", 200, "ema@0.1", 2.7, "completed"),
    ("const", "main", 200, "raw", 2.9, "completed"),
    ("cos", "main", 100, "ema@0.1", 2.9, "completed"),
    ("cos", "main", 100, "raw", 3.0, "completed"),
    ("dead", "main", 100, "raw", NAN, "failed"),
    ("div", "main", 100, "ema@0.1", NAN, "diverged"),
    ("div", "main", 100, "raw", NAN, "diverged"),
    ("div", "main", 200, "ema@0.1", NAN, "diverged"),
    ("div", "main", 200, "raw", NAN, "diverged"),
    ("wsd", "h=100", 100, "raw", 2.8, "completed"),
    ("wsd", "h=200", 200, "raw", 2.5, "completed"),
]


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(str(tmp_path / "results"))
    build(s)
    return s


def _rows(frame: pd.DataFrame) -> list[tuple]:
    cols = ["lineage_id", "branch", "horizon", "weights", "loss", "status"]
    return [tuple(r) for r in frame[cols].itertuples(index=False, name=None)]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    def norm(v):
        return "NaN" if isinstance(v, float) and math.isnan(v) else v

    return [tuple(map(norm, r)) for r in a] == [tuple(map(norm, r)) for r in b]


def sql_final(store, where: str = "") -> pd.DataFrame:
    return query_df(
        store,
        f"SELECT * FROM final_losses {where} ORDER BY sweep_id, lineage_id, branch, horizon, weights",
    )


def test_final_losses_equal_the_hand_computed_table(store):
    frame = final_losses(store)
    assert _same(_rows(frame), EXPECTED)
    wsd = frame[frame["branch"] == "h=200"].iloc[0]
    assert (wsd["tokens"], wsd["fork_step"], wsd["parent"], wsd["family"]) == (
        200_000,
        160,
        "trunk",
        "wsd",
    )
    assert frame["flops"].iloc[0] == 100 * 1e6


def test_sql_view_equals_pandas_exactly(store):
    pd.testing.assert_frame_equal(sql_final(store), final_losses(store))
    assert _same(_rows(sql_final(store)), EXPECTED)


def test_sql_equals_pandas_after_compaction_and_per_sweep(store):
    build(store, "s2")
    store.write_curves("s2", "cos", "main", "0", [ev("cos", "main", 100, "raw", 1.0)])  # s2 differs
    store.compact("s1")
    both = final_losses(store)
    pd.testing.assert_frame_equal(sql_final(store), both)
    assert len(both) == 2 * len(EXPECTED) - 1  # s2's cos lost its ema row at 100
    only_s2 = final_losses(store, "s2")
    pd.testing.assert_frame_equal(sql_final(store, "WHERE sweep_id = 's2'"), only_s2)
    assert only_s2.loc[only_s2["lineage_id"] == "cos", "loss"].tolist() == [1.0]
    assert _same(_rows(final_losses(store, "s1")), EXPECTED)


def test_loaders_filter_and_sort(store):
    frame = load_curves(
        store, "s1", split="eval", weights=["ema@0.1", "swa@100"], lineage_id="const"
    )
    assert list(zip(frame["step"], frame["weights"], frame["loss"], strict=True)) == [
        (100, "ema@0.1", 3.1), (200, "ema@0.1", 2.7), (100, "swa@100", 3.05),
    ]  # fmt: skip
    assert len(load_curves(store)) == 18
    lin = load_lineages(store, "s1")
    assert list(zip(lin["lineage_id"], lin["branch"], strict=True))[:3] == [
        ("const", "main"),
        ("cos", "main"),
        ("dead", "main"),
    ]
    assert list(lin.loc[lin["branch"] == "h=200", "horizons"].iloc[0]) == [200]
    assert load_sweeps(store)["name"].tolist() == ["demo"]
    with pytest.raises(StoreError, match=r"load_curves filter 'stp' is not a curves column"):
        load_curves(store, stp=3)


def test_run_query_csv_and_json_parse_back_to_the_same_values(store):
    sql = "SELECT * FROM final_losses JOIN (SELECT sweep_id, lineage_id, branch, horizons, finished_at FROM lineages) USING (sweep_id, lineage_id, branch) ORDER BY lineage_id, branch, horizon, weights"
    want = query_df(store, sql)
    records = json.loads(run_query(store, sql, "json"))
    rows = list(csv.DictReader(io.StringIO(run_query(store, sql, "csv"))))
    assert len(records) == len(rows) == len(want) == len(EXPECTED)
    for i, expected_row in want.iterrows():
        for column, value in expected_row.items():
            got_json, got_csv = records[i][column], rows[i][column]
            if column == "horizons":
                assert got_json == json.loads(got_csv) == list(value)
            elif column == "finished_at":
                assert pd.Timestamp(got_json) == pd.Timestamp(got_csv) == value
            elif isinstance(value, float) and math.isnan(value):
                assert got_json is None and got_csv == ""
            elif isinstance(value, float):
                assert got_json == float(got_csv) == value
            elif isinstance(value, int):
                assert got_json == int(got_csv) == value
            else:
                assert got_json == got_csv == value


def test_run_query_table_format(store):
    text = run_query(store, "SELECT lineage_id, loss FROM final_losses WHERE branch = 'h=100'")
    assert text.splitlines() == [
        "lineage_id  loss",
        "----------  ----",
        "wsd          2.8",
        "(1 row)",
    ]


def test_aggregates_render_as_numbers(store):
    out = json.loads(run_query(store, "SELECT sum(step) AS s, count(*) AS n FROM curves", "json"))
    assert out == [{"s": sum(r["step"] for r in load_curves(store).to_dict("records")), "n": 18}]


def test_file_uri_root_gives_the_same_answers(store):
    sql = "SELECT * FROM final_losses"
    assert run_query(f"file://{store.base}", sql, "csv") == run_query(store.base, sql, "csv")
    pd.testing.assert_frame_equal(final_losses(f"file://{store.base}"), final_losses(store.base))


def test_non_local_filesystem_reads_through_arrow_datasets(store):
    mem = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("memory")))
    remote = ResultsStore(f"/lrsweep-test-{id(store)}", filesystem=mem)
    build(remote)
    remote.compact("s1", ("curves",))
    remote.write_curves("s1", "cos", "main", "0", [ev("cos", "main", 100, "raw", 1.5)])  # shadows
    assert not remote.is_local
    local_frame = final_losses(store)
    local_frame.loc[
        (local_frame["lineage_id"] == "cos") & (local_frame["weights"] == "raw"), "loss"
    ] = 1.5
    local_frame = local_frame[
        ~((local_frame["lineage_id"] == "cos") & (local_frame["weights"] != "raw"))
    ]
    pd.testing.assert_frame_equal(final_losses(remote), local_frame.reset_index(drop=True))
    pd.testing.assert_frame_equal(sql_final(remote), final_losses(remote))
    assert (
        remote.completed_lineages("s1")
        == store.completed_lineages("s1")
        == {"cos", "const", "div", "wsd"}
    )


def test_connect_exposes_the_four_views(store):
    con = connect(store)
    try:
        counts = {
            v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0]
            for v in ("curves", "lineages", "sweeps", "final_losses")
        }
    finally:
        con.close()
    assert counts == {"curves": 18, "lineages": 7, "sweeps": 1, "final_losses": len(EXPECTED)}


def test_errors_are_one_clear_line(tmp_path, store):
    empty = str(tmp_path / "nothing")
    with pytest.raises(
        StoreError, match=r"^results store '.*nothing' is empty: no sweep has written results yet$"
    ):
        run_query(empty, "SELECT 1")
    with pytest.raises(StoreError, match=r"is empty"):
        final_losses(empty)
    with pytest.raises(
        StoreError, match=r"sweep_id 'nope' is not in results store .*; sweeps there: s1$"
    ):
        final_losses(store, "nope")
    with pytest.raises(QueryError) as info:
        run_query(store, "SELEC loss FROM curves")
    assert "\n" not in str(info.value) and str(info.value).startswith("query failed: Parser Error")
    with pytest.raises(QueryError, match=r"lossy"):
        run_query(store, "SELECT lossy FROM curves")
    with pytest.raises(
        StoreError, match=r"fmt must be one of \['csv', 'json', 'table'\], got 'xml'"
    ):
        run_query(store, "SELECT 1", "xml")


def test_store_with_only_a_sweep_row_gives_empty_typed_views(tmp_path):
    s = ResultsStore(str(tmp_path / "r"))
    s.write_sweep("s1", name="planned", spec_text="", plan_json="{}", code_version="t")
    assert query_df(s, "SELECT count(*) AS n FROM final_losses")["n"].tolist() == [0]
    assert final_losses(s).empty and list(final_losses(s).columns) == list(sql_final(s).columns)


def test_query_process_imports_neither_pandas_nor_torch(tmp_path):
    # Exercise every view-building path: fragments, compacted rows shadowed by a rewritten
    # fragment, and tables with no files (typed empty views).
    s = ResultsStore(str(tmp_path / "r"))
    s.write_curves("s1", "cos", "main", "0", [ev("cos", "main", 100, "raw", 3.0)])
    s.write_curves("s1", "cos", "main", "1", [ev("cos", "main", 200, "raw", 2.0)])
    s.compact("s1")
    s.write_curves("s1", "cos", "main", "1", [ev("cos", "main", 200, "raw", 1.0)])
    code = (
        "import sys; from orchestrator.query import run_query; "
        f"out = run_query({s.base!r}, 'SELECT sum(loss) AS n FROM curves, (SELECT count(*) FROM final_losses)', 'csv'); "
        "print(out.split()[1], sorted(m for m in ('pandas', 'torch', 'pyarrow.dataset') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.split(maxsplit=1) == ["4.0", "[]\n"]


def test_union_by_name_reads_fragments_lacking_a_nullable_column(store):
    import pyarrow.parquet as pq

    from orchestrator.store import CURVES

    rows = [ev("zzz", "main", 100, "raw", 2.0)]
    table = pa.Table.from_pylist(rows, schema=CURVES.file_schema).drop_columns(["lr"])
    pq.write_table(table, f"{store.partition_dir('curves', 's1')}/zzz__main__0.parquet")
    with pytest.raises(QueryError, match=r"query failed: .*lr"):
        run_query(store, "SELECT count(lr) FROM curves")
    con = connect(store, union_by_name=True)
    try:
        got = con.execute("SELECT count(*), count(lr) FROM curves").fetchone()
    finally:
        con.close()
    assert got == (19, 18)
