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
    load_curve_rows,
    load_curves,
    load_lineages,
    load_runs,
    load_settings,
    load_sweeps,
    query_df,
    run_query,
)
from orchestrator.store import ResultsStore, StoreError
from orchestrator.store.errors import QueryError

REPO = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
NAN = math.nan


def setting(sid: str, lid: str, branch: str, horizons: list[int], family: str = "cosine", **kw) -> dict:
    row = dict(
        setting_id=sid, lineage_id=lid, branch=branch, fork_step=None, horizons=horizons, family=family,
        workload="shakespeare-char", model_size="tiny", n_params=850_000, optimizer="adamw", optimizer_params="{}",
        schedule=family, schedule_params="{}", peak_lr=3e-3, warmup=10, batch_size=32, seed=0,
        tokens_per_step=1000,
    )  # fmt: skip
    row.update(kw)
    return row


def run(lid: str, branch: str, max_step: int, status: str = "completed", **kw) -> dict:
    row = dict(
        lineage_id=lid, branch=branch, parent=None if branch == "trunk" else "trunk", fork_step=kw.pop("fork_step", None),
        rule="cosine", rule_params="{}", cooldown_shape=None, final_fraction=None, workload="shakespeare-char",
        model_size="tiny", n_params=850_000, optimizer="adamw", optimizer_params="{}", peak_lr=3e-3, warmup=10,
        batch_size=32, seed=0, tokens_per_step=1000, max_step=max_step, status=status, error=None, wall_time_s=1.5,
        steps_trained=max_step, tokens_trained=max_step * 1000, flops_trained=1e12, replayed_steps=0,
        finished_at=dt.datetime(2025, 1, 1, tzinfo=UTC),
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


WSD100, WSD200 = "h=100/1-sqrt@80", "h=200/1-sqrt@160"


def build(store: ResultsStore, sweep_id: str = "s1") -> None:
    """Lineages whose final losses and whole curves are written out by hand below."""
    curves = {
        # cosine at one horizon: eval raw + ema at 50 and 100. A train row at 100 must not count.
        ("cos", "trunk"): [
            ev("cos", "trunk", 50, "raw", 3.5), ev("cos", "trunk", 50, "ema@0.1", 3.4),
            ev("cos", "trunk", 100, "raw", 3.0), ev("cos", "trunk", 100, "ema@0.1", 2.9),
            train("cos", "trunk", 0, 5.0), train("cos", "trunk", 100, 9.9),
        ],
        # one constant trunk shared by the constant setting (answers 100, 200) and a WSD setting
        # (its cooldowns answer 100 and 200); "swa@100" only exists at step 100.
        ("cw", "trunk"): [
            ev("cw", "trunk", 50, "raw", 3.6), ev("cw", "trunk", 100, "raw", 3.2),
            ev("cw", "trunk", 100, "ema@0.1", 3.1), ev("cw", "trunk", 100, "swa@100", 3.05),
            ev("cw", "trunk", 150, "raw", 3.0), ev("cw", "trunk", 200, "raw", 2.9),
            ev("cw", "trunk", 200, "ema@0.1", 2.7),
            train("cw", "trunk", 0, 5.0), train("cw", "trunk", 79, 4.0), train("cw", "trunk", 80, 3.9),
            train("cw", "trunk", 159, 3.5), train("cw", "trunk", 160, 3.4), train("cw", "trunk", 199, 3.0),
        ],
        ("cw", WSD100): [ev("cw", WSD100, 100, "raw", 2.8), train("cw", WSD100, 80, 3.9), train("cw", WSD100, 99, 2.9)],
        ("cw", WSD200): [ev("cw", WSD200, 180, "raw", 9.0), ev("cw", WSD200, 200, "raw", 2.5),
                         train("cw", WSD200, 160, 3.4)],
        # diverged before step 100: NaN at both horizons for every weights it evaluated.
        ("div", "trunk"): [ev("div", "trunk", 50, "raw", 6.0), ev("div", "trunk", 50, "ema@0.1", 5.0)],
    }  # fmt: skip
    for (lid, branch), rows in curves.items():
        store.write_curves(sweep_id, lid, branch, "0000000000-0000000200", rows)
    store.write_runs(sweep_id, [
        run("cos", "trunk", 100), run("cw", "trunk", 200, rule="constant"),
        run("cw", WSD100, 100, fork_step=80, rule="constant"), run("cw", WSD200, 200, fork_step=160, rule="constant"),
        run("div", "trunk", 61, "diverged", rule="polynomial", error="loss 5x first loss at step 60"),
        run("dead", "trunk", 0, "failed", error="OOM"),  # no curve rows at all
    ])  # fmt: skip
    store.write_settings(sweep_id, [
        setting("S-cos", "cos", "trunk", [100]),
        setting("S-const", "cw", "trunk", [100, 200], family="constant"),
        setting("S-wsd", "cw", WSD100, [100], family="wsd", fork_step=80),
        setting("S-wsd", "cw", WSD200, [200], family="wsd", fork_step=160),
        setting("S-div", "div", "trunk", [100, 200], family="polynomial"),
        setting("S-dead", "dead", "trunk", [100]),
        setting("S-pend", "later", "trunk", [100], family="constant", seed=1),  # planned, never run yet
    ])  # fmt: skip
    store.write_sweep(sweep_id, name="demo", spec_text="x = 1\n", plan_json="{}", code_version="t")


# (setting, branch, horizon, weights, loss, status): written out by hand from build().
EXPECTED = [
    ("S-const", "trunk", 100, "ema@0.1", 3.1, "completed"),
    ("S-const", "trunk", 100, "raw", 3.2, "completed"),
    ("S-const", "trunk", 100, "swa@100", 3.05, "completed"),
    ("S-const", "trunk", 200, "ema@0.1", 2.7, "completed"),
    ("S-const", "trunk", 200, "raw", 2.9, "completed"),
    ("S-cos", "trunk", 100, "ema@0.1", 2.9, "completed"),
    ("S-cos", "trunk", 100, "raw", 3.0, "completed"),
    ("S-dead", "trunk", 100, "raw", NAN, "failed"),
    ("S-div", "trunk", 100, "ema@0.1", NAN, "diverged"),
    ("S-div", "trunk", 100, "raw", NAN, "diverged"),
    ("S-div", "trunk", 200, "ema@0.1", NAN, "diverged"),
    ("S-div", "trunk", 200, "raw", NAN, "diverged"),
    ("S-pend", "trunk", 100, "raw", NAN, "pending"),
    ("S-wsd", WSD100, 100, "raw", 2.8, "completed"),
    ("S-wsd", WSD200, 200, "raw", 2.5, "completed"),
]


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(str(tmp_path / "results"))
    build(s)
    return s


def _rows(frame: pd.DataFrame) -> list[tuple]:
    cols = ["setting_id", "branch", "horizon", "weights", "loss", "status"]
    return [tuple(r) for r in frame[cols].itertuples(index=False, name=None)]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    def norm(v):
        return "NaN" if isinstance(v, float) and math.isnan(v) else v

    return [tuple(map(norm, r)) for r in a] == [tuple(map(norm, r)) for r in b]


def sql_final(store, where: str = "") -> pd.DataFrame:
    return query_df(
        store,
        f"SELECT * FROM final_losses {where} ORDER BY sweep_id, setting_id, lineage_id, branch, horizon, weights",
    )


def test_final_losses_equal_the_hand_computed_table(store):
    frame = final_losses(store)
    assert _same(_rows(frame), EXPECTED)
    wsd = frame[frame["branch"] == WSD200].iloc[0]
    assert (wsd["tokens"], wsd["fork_step"], wsd["parent"], wsd["family"], wsd["lineage_id"]) == (
        200_000, 160, "trunk", "wsd", "cw")
    assert frame["flops"].iloc[0] == 100 * 1e6


def test_sql_view_equals_pandas_exactly(store):
    pd.testing.assert_frame_equal(sql_final(store), final_losses(store))
    assert _same(_rows(sql_final(store)), EXPECTED)


def test_curves_are_whole_the_shared_trunk_is_stored_once(store):
    rows = load_curves(store, "s1", split="train")
    def steps(sid, branch):
        sel = rows[(rows["setting_id"] == sid) & (rows["branch"] == branch)]
        return list(zip(sel["step"], sel["loss"], strict=True))
    # a cooldown reads the trunk's rows before its fork, then its own
    assert steps("S-wsd", WSD100) == [(0, 5.0), (79, 4.0), (80, 3.9), (99, 2.9)]
    assert steps("S-wsd", WSD200) == [(0, 5.0), (79, 4.0), (80, 3.9), (159, 3.5), (160, 3.4)]
    # the constant setting is the trunk up to its longest horizon; cosine stops at 100 too
    assert steps("S-const", "trunk") == [(0, 5.0), (79, 4.0), (80, 3.9), (159, 3.5), (160, 3.4), (199, 3.0)]
    assert steps("S-cos", "trunk") == [(0, 5.0)]
    evals = load_curves(store, "s1", split="eval", setting_id="S-wsd", branch=WSD200, weights="raw")
    assert list(zip(evals["step"], evals["loss"], strict=True)) == [
        (50, 3.6), (100, 3.2), (150, 3.0), (180, 9.0), (200, 2.5)]  # trunk evals <= 160, then its own
    # ...while the rows are stored once: 6 trunk train rows, not once per setting
    stored = load_curve_rows(store, "s1", lineage_id="cw", branch="trunk", split="train")
    assert len(stored) == 6


def test_lineages_view_joins_settings_with_their_runs(store):
    lin = load_lineages(store, "s1")
    got = {(r.setting_id, r.branch): r.status for r in lin.itertuples()}
    assert got == {("S-cos", "trunk"): "completed", ("S-const", "trunk"): "completed",
                   ("S-wsd", WSD100): "completed", ("S-wsd", WSD200): "completed",
                   ("S-div", "trunk"): "diverged", ("S-dead", "trunk"): "failed", ("S-pend", "trunk"): "pending"}
    assert list(lin.loc[lin["branch"] == WSD200, "horizons"].iloc[0]) == [200]
    runs = load_runs(store, "s1")
    assert len(runs) == 6 and set(runs["rule"]) == {"cosine", "constant", "polynomial"}
    assert len(load_settings(store, "s1")) == 7


def test_sql_equals_pandas_after_compaction_and_per_sweep(store):
    build(store, "s2")
    store.write_curves("s2", "cos", "trunk", "0000000000-0000000200", [ev("cos", "trunk", 100, "raw", 1.0)])
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
        store, "s1", split="eval", weights=["ema@0.1", "swa@100"], setting_id="S-const"
    )
    assert list(zip(frame["step"], frame["weights"], frame["loss"], strict=True)) == [
        (100, "ema@0.1", 3.1), (200, "ema@0.1", 2.7), (100, "swa@100", 3.05),
    ]  # fmt: skip
    assert len(load_curve_rows(store)) == 27
    lin = load_lineages(store, "s1")
    assert list(zip(lin["lineage_id"], lin["branch"], strict=True))[:3] == [
        ("cos", "trunk"), ("cw", WSD100), ("cw", WSD200)]
    assert load_sweeps(store)["name"].tolist() == ["demo"]
    with pytest.raises(StoreError, match=r"load_curves filter 'stp' is not a curves column"):
        load_curves(store, stp=3)


def test_run_query_csv_and_json_parse_back_to_the_same_values(store):
    sql = "SELECT * FROM final_losses JOIN (SELECT sweep_id, setting_id, lineage_id, branch, horizons, finished_at FROM lineages) USING (sweep_id, setting_id, lineage_id, branch) ORDER BY setting_id, branch, horizon, weights"
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
                if pd.isna(value):
                    assert got_json is None and got_csv == ""
                else:
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
    text = run_query(store, f"SELECT lineage_id, loss FROM final_losses WHERE branch = '{WSD100}'")
    assert text.splitlines() == [
        "lineage_id  loss",
        "----------  ----",
        "cw           2.8",
        "(1 row)",
    ]


def test_aggregates_render_as_numbers(store):
    out = json.loads(run_query(store, "SELECT sum(step) AS s, count(*) AS n FROM curve_rows", "json"))
    assert out == [{"s": sum(r["step"] for r in load_curve_rows(store).to_dict("records")), "n": 27}]


def test_file_uri_root_gives_the_same_answers(store):
    sql = "SELECT * FROM final_losses"
    assert run_query(f"file://{store.base}", sql, "csv") == run_query(store.base, sql, "csv")
    pd.testing.assert_frame_equal(final_losses(f"file://{store.base}"), final_losses(store.base))


def test_non_local_filesystem_reads_through_arrow_datasets(store):
    mem = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("memory")))
    remote = ResultsStore(f"/lrsweep-test-{id(store)}", filesystem=mem)
    build(remote)
    remote.compact("s1", ("curves",))
    remote.write_curves("s1", "cos", "trunk", "0000000000-0000000200",
                        [ev("cos", "trunk", 100, "raw", 1.5)])  # shadows its merged copy
    assert not remote.is_local
    local_frame = final_losses(store)
    is_cos = local_frame["lineage_id"] == "cos"
    local_frame.loc[is_cos & (local_frame["weights"] == "raw"), "loss"] = 1.5
    local_frame = local_frame[~(is_cos & (local_frame["weights"] != "raw"))]
    pd.testing.assert_frame_equal(final_losses(remote), local_frame.reset_index(drop=True))
    pd.testing.assert_frame_equal(sql_final(remote), final_losses(remote))


def test_connect_exposes_the_views(store):
    con = connect(store)
    try:
        counts = {
            v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0]
            for v in ("curves", "curve_rows", "lineages", "runs", "settings", "sweeps", "final_losses")
        }
    finally:
        con.close()
    # whole curves: cos 5 (not its train row at 100), const 13, WSD 100: 3 trunk rows before 80 + its
    # 3, WSD 200: 9 trunk rows before 160 + its 3, div 2
    assert counts == {"curves": 5 + 13 + 6 + 12 + 2, "curve_rows": 27, "lineages": 7, "runs": 6, "settings": 7,
                      "sweeps": 1, "final_losses": len(EXPECTED)}


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
    s.write_curves("s1", "cos", "trunk", "0", [ev("cos", "trunk", 100, "raw", 3.0)])
    s.write_curves("s1", "cos", "trunk", "1", [ev("cos", "trunk", 200, "raw", 2.0)])
    s.compact("s1")
    s.write_curves("s1", "cos", "trunk", "1", [ev("cos", "trunk", 200, "raw", 1.0)])
    code = (
        "import sys; from orchestrator.query import run_query; "
        f"out = run_query({s.base!r}, 'SELECT sum(loss) AS n FROM curve_rows, (SELECT count(*) FROM final_losses)', 'csv'); "
        "print(out.split()[1], sorted(m for m in ('pandas', 'torch', 'pyarrow.dataset') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.split(maxsplit=1) == ["4.0", "[]\n"]


def test_union_by_name_reads_fragments_lacking_a_nullable_column(store):
    import pyarrow.parquet as pq

    from orchestrator.store import CURVES

    rows = [ev("zzz", "trunk", 100, "raw", 2.0)]
    table = pa.Table.from_pylist(rows, schema=CURVES.file_schema).drop_columns(["lr"])
    pq.write_table(table, f"{store.partition_dir('curves', 's1')}/zzz__trunk__0.parquet")
    with pytest.raises(QueryError, match=r"query failed: .*lr"):
        run_query(store, "SELECT count(lr) FROM curve_rows")
    con = connect(store, union_by_name=True)
    try:
        got = con.execute("SELECT count(*), count(lr) FROM curve_rows").fetchone()
    finally:
        con.close()
    assert got == (28, 27)
