"""A search whose driver is SIGKILLed mid-way continues from its stored study when rerun: no
finished trial reruns, the trials in flight are resumed (same numbers, same params), and the
finished study is the one an uninterrupted run of the same seed produces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from orchestrator.query import load_runs
from orchestrator.search.space import SearchSpace
from orchestrator.search.study import study_path
from orchestrator.spec import load_spec
from trials.lineage_plan import plan_lineages

SPEC = """
name = "resume"
store = "{store}"
batch_size = 8
[workload]
name = "linreg"
sizes = [{{ dim = 100 }}]
[[optimizers]]
name = "sgd"
lr = 0.1
[[schedules]]
name = "polynomial"
gamma = 0.5
t0 = 10.0
[horizons]
steps = [100, 300, 1000]
[search]
n_trials = 12
seed = 7
concurrency = 2
[search.space]
lr = {{ low = 0.05, high = 2.0, log = true }}
"schedules.polynomial.gamma" = {{ low = 0.0, high = 1.0 }}
"""
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def lrsweep(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def trials_of(journal: Path) -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="resume", storage=storage).get_trials()


def summary(trials) -> list[tuple]:
    return [(t.number, t.state.name, tuple(sorted(t.params.items())), t.values,
             t.user_attrs.get("lrsweep.rungs")) for t in trials]


def run_to_end(spec: Path) -> str:
    proc = lrsweep("run", "-q", str(spec))
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def test_killed_search_continues_from_its_study(tmp_path: Path) -> None:
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    for d in (killed, fresh):
        d.mkdir()
        (d / "resume.toml").write_text(SPEC.format(store=d / "store"))
    journal = study_path(str(killed / "store"), "resume")

    # 1. run until a few trials finished and others are in flight, then SIGKILL the driver
    proc = lrsweep("run", "-q", str(killed / "resume.toml"))
    before: list[optuna.trial.FrozenTrial] = []
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if not journal.exists():
                continue
            trials = trials_of(journal)
            # late enough that the sampler has asked with its model (not only its random start-up),
            # early enough that waves are still to be asked after the rerun
            if (sum(t.state in FINISHED for t in trials) >= 5 and any(t.state.name == "RUNNING" for t in trials)
                    and len(trials) <= 10):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
                before = trials_of(journal)
                break
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        try:  # Ray's processes this driver started (its own session): gone with it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read() if proc.stdout else ""
    finished = [t for t in before if t.state in FINISHED]
    running = [t for t in before if t.state.name == "RUNNING"]
    assert len(finished) >= 5 and running and len(before) <= 10, summary(before)
    runs_before = load_runs(str(killed / "store"), "resume")

    # 2. rerun: the study continues
    run_to_end(killed / "resume.toml")
    after = trials_of(journal)
    by_number = {t.number: t for t in after}
    for t in finished:  # finished trials untouched
        assert summary([by_number[t.number]]) == summary([t])
    for t in running:  # in-flight trials resumed with their params, not re-asked
        assert by_number[t.number].params == t.params
        assert by_number[t.number].state in FINISHED
    assert len(after) == 12 and all(t.state in FINISHED for t in after), summary(after)
    # no lineage of a finished trial trained again: its runs rows are those written before the kill
    spec = load_spec(killed / "resume.toml")
    space = SearchSpace(spec)
    mine = set()
    for t in finished:
        ts = space.settings(t.params)
        mine |= {lin.lineage_id for lin in plan_lineages(ts.up_to(space.n_horizons - 1), ts.config)[0]}
    keys = ["lineage_id", "branch", "status", "max_step", "steps_trained", "finished_at"]

    def rows(frame):
        return frame[frame["lineage_id"].isin(mine)][keys].sort_values(keys[:2]).reset_index(drop=True)

    assert len(rows(runs_before)) >= len(finished)
    assert rows(load_runs(str(killed / "store"), "resume")).equals(rows(runs_before))

    # 3. the same study as a run that was never interrupted (seeded per trial number)
    run_to_end(fresh / "resume.toml")
    assert summary(trials_of(study_path(str(fresh / "store"), "resume"))) == summary(after)
