"""Sweeps of many lineages: a trial reads only its own lineage, compaction is incremental (and
still loses and duplicates nothing across crashes), small lineages run in bundles whose rows
equal each lineage's own run."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from orchestrator.bundles import make_bundles
from orchestrator.planner import plan
from orchestrator.spec import load_spec
from orchestrator.store import ResultsStore
from orchestrator.store.schema import FRAGMENT_COLUMN

SPEC = """
name = "many"
store = "{store}"
warmup = 0
batch_size = 4
seeds = {seeds}
[workload]
name = "linreg"
sizes = [{{ dim = 20 }}]
[[optimizers]]
name = "sgd"
lr = [0.05, 0.1]
[[schedules]]
name = "cosine"
[horizons]
steps = [30]
[eval]
points_per_decade = 2
[resources]
cpu = 1
retries = 1
"""


def lineages(tmp_path: Path, seeds: int = 1):
    path = tmp_path / "many.toml"
    path.write_text(SPEC.format(store=tmp_path / "store", seeds=list(range(seeds))))
    the_plan = plan(load_spec(path))
    return path, the_plan


def curve_rows(lineage: str, steps: range, offset: float = 0.0) -> list[dict]:
    return [{"lineage_id": lineage, "branch": "trunk", "step": s, "tokens": 4 * s, "flops": None, "lr": 0.1,
             "split": "train", "weights": "raw", "loss": 1.0 / (1 + s) + offset} for s in steps]


def run_row(lineage: str, max_step: int, status: str = "completed") -> dict:
    import datetime as dt

    return dict(lineage_id=lineage, branch="trunk", parent=None, fork_step=None, rule="cosine", rule_params={},
                cooldown_shape=None, final_fraction=None, workload="linreg", model_size="d20", n_params=20,
                optimizer="sgd", optimizer_params={}, peak_lr=0.1, warmup=0, batch_size=4, seed=0,
                tokens_per_step=4, max_step=max_step, status=status, error=None, wall_time_s=0.1,
                steps_trained=max_step, tokens_trained=4 * max_step, flops_trained=1.0, replayed_steps=0,
                finished_at=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))


class _Recorder(pafs.FileSystemHandler):
    """A local filesystem that records every listing (and how many entries it returned) and
    every file opened for reading."""

    def __init__(self) -> None:
        self.fs = pafs.LocalFileSystem()
        self.listed: list[tuple[str, int]] = []
        self.opened: list[str] = []

    def get_type_name(self):  # noqa: ANN201
        return "recorder"

    def equals(self, other):  # noqa: ANN001, ANN201
        return other is self

    def get_file_info(self, paths):  # noqa: ANN001, ANN201
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector):  # noqa: ANN001, ANN201
        infos = self.fs.get_file_info(selector)
        self.listed.append((selector.base_dir, len(infos)))
        return infos

    def create_dir(self, path, recursive):  # noqa: ANN001, ANN201
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):  # noqa: ANN001, ANN201
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):  # noqa: ANN001, ANN201
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):  # noqa: ANN201
        raise OSError("refused")

    def delete_file(self, path):  # noqa: ANN001, ANN201
        self.fs.delete_file(path)

    def move(self, src, dest):  # noqa: ANN001, ANN201
        self.fs.move(src, dest)

    def copy_file(self, src, dest):  # noqa: ANN001, ANN201
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path):  # noqa: ANN001, ANN201
        self.opened.append(path)
        return self.fs.open_input_stream(path)

    def open_input_file(self, path):  # noqa: ANN001, ANN201
        self.opened.append(path)
        return self.fs.open_input_file(path)

    def open_output_stream(self, path, metadata):  # noqa: ANN001, ANN201
        return self.fs.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):  # noqa: ANN001, ANN201
        return self.fs.open_append_stream(path, metadata=metadata)

    def normalize_path(self, path):  # noqa: ANN001, ANN201
        return path


def _sweep_with_others(root: Path, n_other: int) -> ResultsStore:
    """A store whose sweep ``many`` holds ``n_other`` other lineages: half merged, half fragments."""
    store = ResultsStore(str(root))
    store.write_sweep("many", name="many", spec_text="", plan_json={}, code_version="test")
    for i in range(n_other):
        lid = f"other{i:04d}"
        store.write_curves("many", lid, "trunk", "0000000000-0000000030", curve_rows(lid, range(30)))
        store.write_runs("many", [run_row(lid, 30)])
        if i == n_other // 2:
            store.compact("many")
    return store


def _trial_reads(tmp_path: Path, n_other: int) -> tuple[list[tuple[str, int]], list[str], str]:
    from orchestrator.trainable import run_lineage_to_store

    _, the_plan = lineages(tmp_path)
    lineage = the_plan.lineages[0]
    root = tmp_path / f"store{n_other}"
    _sweep_with_others(root, n_other)
    recorder = _Recorder()
    store = ResultsStore(str(root), filesystem=pafs.PyFileSystem(recorder))
    summary = run_lineage_to_store(lineage.to_dict(), store_root=str(root), sweep_id="many",
                                   model_size=the_plan.compute_of(lineage.lineage_id).size, store=store)
    assert summary["status"] == "completed" and summary["steps_trained"] > 0
    rel = [(d[len(str(root)):], n) for d, n in recorder.listed]
    return rel, [p[len(str(root)):] for p in recorder.opened], lineage.lineage_id


def test_a_trial_lists_and_opens_only_its_own_lineage_however_many_others_the_sweep_holds(tmp_path):
    few, few_opened, lid = _trial_reads(tmp_path, 3)
    many, many_opened, _ = _trial_reads(tmp_path, 30)
    assert many == few and many_opened == few_opened  # the same listings, entries and opens
    for folder, _ in many:
        assert folder.endswith((f"/{lid}", "/_compacted")) or f"/_checkpoints/many/{lid}" in folder, folder
    assert not [p for p in many_opened if "/other" in p]
    # The merged part is read (its footer), the other lineages' fragments never.
    assert any("/_compacted/" in p for p in many_opened)


def _rows(store: ResultsStore) -> Counter:
    table = store.read_table("curves", "s")
    return Counter(tuple(r.values()) for r in table.select(["lineage_id", "step", "loss"]).to_pylist())


def _parts(store: ResultsStore, table: str = "curves") -> list[pa.Table]:
    part = store.snapshot(table, "s").partitions["s"]
    return [pq.read_table(p.path) for p in part.parts]


@pytest.mark.parametrize("growth", [0.0, 1.0])
def test_incremental_compaction_equals_a_full_one_over_rounds_restarts_and_crashes(tmp_path, monkeypatch, growth):
    """Round after round (new lineages, restarted lineages rewriting merged fragments, a
    crashed compaction), the incrementally compacted store holds exactly the last write of
    every fragment: the table a single full compaction of those writes gives. ``growth`` 0:
    parts are folded only to drop stale copies (so parts accumulate and that rule is tested)."""
    from orchestrator.store import compaction

    monkeypatch.setattr(compaction, "GROWTH", growth)
    rng = random.Random(0)
    store = ResultsStore(str(tmp_path / "inc"))
    latest: dict[tuple[str, str], list[dict]] = {}

    def write(lid: str, seg: int, offset: float) -> None:
        rows = curve_rows(lid, range(seg * 10, seg * 10 + 10), offset)
        store.write_curves("s", lid, "trunk", f"{seg * 10:010d}-{seg * 10 + 10:010d}", rows)
        latest[(lid, str(seg))] = rows

    class Crash(BaseException):
        pass

    real = ResultsStore.write_batches
    for round_ in range(6):
        for i in range(rng.randint(1, 4)):  # new lineages
            lid = f"L{round_}x{i}"
            for seg in range(rng.randint(1, 3)):
                write(lid, seg, 0.0)
        for lid, seg in rng.sample(sorted(latest), 2):  # restarts rewrite merged fragments
            write(lid, int(seg), float(round_ + 1))
        if round_ == 3:  # killed after the new part is in place, before any delete
            def crash_after(self, *args):  # noqa: ANN001, ANN202
                real(self, *args)
                raise Crash

            monkeypatch.setattr(ResultsStore, "write_batches", crash_after)
            with pytest.raises(Crash):
                store.compact("s", ("curves",))
            monkeypatch.setattr(ResultsStore, "write_batches", real)
        if round_ == 4:  # killed while streaming the new part
            def crash_during(self, path, spec, schema, batches):  # noqa: ANN001, ANN202
                def cut():
                    for k, b in enumerate(_small(batches)):
                        if k == 1:
                            raise Crash
                        yield b
                return real(self, path, spec, schema, cut())

            monkeypatch.setattr(ResultsStore, "write_batches", crash_during)
            with pytest.raises(Crash):
                store.compact("s", ("curves",))
            monkeypatch.setattr(ResultsStore, "write_batches", real)
        want = Counter((r["lineage_id"], r["step"], r["loss"]) for rows in latest.values() for r in rows)
        assert _rows(store) == want  # before this round's compaction: fragments shadow stale copies
        store.compact("s", ("curves",))
        assert _rows(store) == want
        names = [n for t in _parts(store) for n in set(t.column(FRAGMENT_COLUMN).to_pylist())]
        assert len(names) == len(set(names)) == len(latest)  # each fragment in exactly one part
    full = ResultsStore(str(tmp_path / "full"))
    for (lid, seg), rows in latest.items():
        s = int(seg)
        full.write_curves("s", lid, "trunk", f"{s * 10:010d}-{s * 10 + 10:010d}", rows)
    full.compact("s", ("curves",))
    assert _rows(full) == _rows(store)
    assert not [f for f in store.snapshot("curves", "s").partitions["s"].fragments]


def _small(batches):  # noqa: ANN001, ANN202
    """Split each batch in two, so a stream has a second batch to crash on."""
    for b in batches:
        half = max(1, b.num_rows // 2)
        yield b.slice(0, half)
        if b.num_rows > half:
            yield b.slice(half)


def test_adding_one_lineage_to_a_compacted_sweep_rewrites_only_that_lineage(tmp_path):
    store = ResultsStore(str(tmp_path / "s"))
    for i in range(50):
        store.write_curves("s", f"old{i:03d}", "trunk", "0000000000-0000000100", curve_rows(f"old{i:03d}", range(100)))
    store.compact("s", ("curves",))
    store.write_curves("s", "new", "trunk", "0000000000-0000000100", curve_rows("new", range(100)))
    before = {p.path for p in store.snapshot("curves", "s").partitions["s"].parts}
    store.compact("s", ("curves",))
    after = store.snapshot("curves", "s").partitions["s"].parts
    written = [p for p in after if p.path not in before]
    assert len(written) == 1 and {p.path for p in after} - before == {written[0].path}
    assert pq.read_metadata(written[0].path).num_rows == 100  # that lineage's rows, nothing else
    assert store.read_table("curves", "s").num_rows == 5100


def test_truncating_a_merged_lineage_reads_and_rewrites_only_the_part_holding_it(tmp_path):
    store = ResultsStore(str(tmp_path / "s"))
    store.write_curves("s", "a", "trunk", "0000000000-0000000010", curve_rows("a", range(10)))
    store.write_curves("s", "a", "trunk", "0000000010-0000000020", curve_rows("a", range(10, 20)))
    store.compact("s", ("curves",))
    store.write_curves("s", "b", "trunk", "0000000000-0000000010", curve_rows("b", range(10)))
    store.compact("s", ("curves",))
    assert store.truncate_curve("s", "a", "trunk", 10) == 1
    got = store.read_table("curves", "s")
    assert sorted(got.filter(pa.compute.equal(got["lineage_id"], "a"))["step"].to_pylist()) == list(range(10))
    assert got.num_rows == 20


def test_small_lineages_are_bundled_and_large_ones_run_alone(tmp_path):
    _, the_plan = lineages(tmp_path, seeds=8)
    todo = the_plan.todo()
    bundles = make_bundles(todo, the_plan, slots=2)
    assert sorted(lin.lineage_id for b in bundles for lin in b) == sorted(lin.lineage_id for lin in todo)
    assert 1 < len(bundles) < len(todo)
    assert make_bundles(todo, the_plan, slots=2, gpu=1.0) == [[lin] for lin in todo]


def test_live_compaction_merges_only_finished_lineages_and_stays_off_over_older_parts(tmp_path):
    from orchestrator.live_compaction import LiveCompactor

    store = ResultsStore(str(tmp_path / "s"))
    for lid in ("a", "b"):
        store.write_curves("s", lid, "trunk", "0000000000-0000000010", curve_rows(lid, range(10)))
    live = LiveCompactor(store, "s", interval_s=0.0)
    live.finished("a")  # b is still being written: its fragment stays
    part = store.snapshot("curves", "s").partitions["s"]
    assert [f.name for f in part.fragments] == ["b__trunk__0000000000-0000000010.parquet"]
    assert len(part.parts) == 1 and pq.read_metadata(part.parts[0].path).num_rows == 10
    assert store.read_table("curves", "s").num_rows == 20
    assert not LiveCompactor(store, "s", interval_s=0.0).enabled  # a run starting over parts


@pytest.mark.slow  # a real Ray sweep; the bundle's rows and resume are also covered in-process below
def test_a_bundled_sweep_stores_each_lineage_exactly_as_its_own_run(tmp_path, monkeypatch):
    """Every lineage of a bundled sweep has the rows its standalone run (no Ray, no store) gives;
    with compaction after every finished lineage, the store ends merged by several rounds."""
    from orchestrator import live_compaction
    from orchestrator.execution import run_sweep

    monkeypatch.setattr(live_compaction, "INTERVAL_S", 0.0)
    from orchestrator.query import load_curve_rows, load_runs
    from trials.lineage import run_lineage
    from trials.sinks import MemorySink

    path, the_plan = lineages(tmp_path, seeds=8)  # 16 lineages: bundles of two (4 per trial slot)
    assert len(make_bundles(the_plan.todo(), the_plan, slots=2)) < len(the_plan.lineages)
    outcome = run_sweep(path, progress=False)
    assert set(outcome.statuses.values()) == {"completed"} and len(outcome.statuses) == len(the_plan.lineages)
    stored = load_curve_rows(str(tmp_path / "store"), "many")
    runs = load_runs(str(tmp_path / "store"), "many")
    assert sorted(runs["lineage_id"]) == sorted(lin.lineage_id for lin in the_plan.lineages)
    assert not stored.duplicated(["lineage_id", "branch", "step", "split", "weights"]).any()
    parts = ResultsStore(str(tmp_path / "store")).snapshot("curves", "many").partitions["many"].parts
    assert max(p.gen for p in parts) >= 2  # compacted during the run, then at its end
    for lineage in the_plan.lineages:
        sink = MemorySink()
        run_lineage(lineage, sink=sink)
        want = sorted((r["branch"], r["step"], r["split"], r["weights"], r["loss"]) for r in sink.rows())
        mine = stored[stored["lineage_id"] == lineage.lineage_id]
        got = sorted(zip(mine["branch"], mine["step"], mine["split"], mine["weights"], mine["loss"], strict=True))
        assert got == want


def test_a_bundle_killed_between_lineages_resumes_without_rerunning_or_duplicating(tmp_path, monkeypatch):
    """The trial body of a bundle (orchestrator/trainable.py) dies after its second lineage;
    the retry skips the two finished lineages (no update trained, no file rewritten), runs the
    rest, and every lineage's rows equal its standalone run, each once. Ray's ``tune.report``
    is replaced by a recorder (the body runs here, without a Tune session)."""
    from ray import tune

    from orchestrator.query import load_curve_rows
    from orchestrator.trainable import tune_trainable
    from trials.lineage import run_lineage
    from trials.sinks import MemorySink

    _, the_plan = lineages(tmp_path, seeds=2)
    bundle = the_plan.lineages[:4]
    root = tmp_path / "store"
    ResultsStore(str(root)).write_sweep("many", name="many", spec_text="", plan_json={}, code_version="test")
    config = {"bundle": [lin.to_dict() for lin in bundle], "store": str(root), "sweep_id": "many", "threads": 1,
              "model_size": {lin.lineage_id: the_plan.compute_of(lin.lineage_id).size for lin in bundle}}

    class Killed(BaseException):
        pass

    reports: list[dict] = []

    def dies_after_two(result: dict) -> None:
        reports.append(result)
        if sum(bool(r.get("lineage_done")) for r in reports) == 2:
            raise Killed

    monkeypatch.setattr(tune, "report", dies_after_two)
    with pytest.raises(Killed):
        tune_trainable(config)
    first_two = {lin.lineage_id for lin in bundle[:2]}
    files = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet") if p.parent.name in first_two}
    assert files
    reports.clear()
    monkeypatch.setattr(tune, "report", reports.append)
    tune_trainable(config)
    done = {r["lineage_id"]: r for r in reports if r.get("lineage_done")}
    assert list(done) == [lin.lineage_id for lin in bundle] and reports[-1]["done"]
    assert [done[lid]["steps_trained"] for lid in sorted(first_two)] == [0, 0]
    assert all(done[lin.lineage_id]["steps_trained"] > 0 for lin in bundle[2:])
    assert {p: p.stat().st_mtime_ns for p in files} == files
    stored = load_curve_rows(str(root), "many")
    assert not stored.duplicated(["lineage_id", "branch", "step", "split", "weights"]).any()
    for lineage in bundle:
        sink = MemorySink()
        run_lineage(lineage, sink=sink)
        mine = stored[stored["lineage_id"] == lineage.lineage_id]
        assert sorted(zip(mine["step"], mine["split"], mine["weights"], mine["loss"], strict=True)) == sorted(
            (r["step"], r["split"], r["weights"], r["loss"]) for r in sink.rows())
