"""Searches end to end on a real local Ray (started once for the module) over the cheap linreg
workload: quality against a dense grid, horizon-aware stopping, and what the store records."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import pytest

from orchestrator.execution import run_sweep
from orchestrator.query import final_losses, load_runs
from orchestrator.reporting import write_sweep_report
from orchestrator.search.frames import search_frames
from orchestrator.search.searcher import LOSSES, STOPPED_AT
from orchestrator.search.study import open_study
from orchestrator.spec import load_spec

SPEC = """
name = "{name}"
store = "{store}"
batch_size = 8
[workload]
name = "linreg"
sizes = [{{ dim = {dim} }}]
[[optimizers]]
name = "sgd"
lr = 0.1
{schedules}
[horizons]
steps = {horizons}
[search]
n_trials = {n_trials}
sampler = "{sampler}"
seed = {seed}
stopping = "{stopping}"
concurrency = {concurrency}
[search.space]
lr = {{ low = {lr_low}, high = {lr_high}, log = true }}
{space}
"""
POLY = '[[schedules]]\nname = "polynomial"\ngamma = 0.5\nt0 = 10.0'
GAMMA = '"schedules.polynomial.gamma" = { low = 0.0, high = 1.0 }'
HORIZONS = (100, 300, 1000)


@pytest.fixture(scope="module", autouse=True)
def ray_once():
    """One embedded Ray for every search of this module, shut down at the end (ours only)."""
    import ray

    from orchestrator.ray_local import init_ray

    started = not ray.is_initialized()
    init_ray(None)
    yield
    if started:
        ray.shutdown()


def write(tmp_path: Path, name: str, *, n_trials: int, sampler: str = "tpe", seed: int = 0, stopping: str = "halving",
          concurrency: int = 1, dim: int = 100, schedules: str = POLY, space: str = GAMMA,
          horizons: tuple[int, ...] = HORIZONS, lr_low: float = 0.05, lr_high: float = 2.0) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, store=tmp_path / "store", n_trials=n_trials, sampler=sampler, seed=seed,
                                stopping=stopping, concurrency=concurrency, dim=dim, schedules=schedules, space=space,
                                horizons=list(horizons), lr_low=lr_low, lr_high=lr_high))
    return path


def grid_best(lrs, gammas, *, dim: int = 100) -> tuple[float, int]:
    """The dense grid's best mean loss over HORIZONS (raw weights), run in-process (no store)."""
    from trials.lineage import run_lineage
    from trials.lineage_plan import PlanConfig, TrialSetting, plan_lineages
    from trials.sinks import MemorySink

    best = math.inf
    for lr, gamma in itertools.product(lrs, gammas):
        s = TrialSetting(workload="linreg", workload_params={"dim": dim}, optimizer="sgd", optimizer_params={},
                         schedule_free=False, schedule="polynomial", schedule_params={"gamma": gamma, "t0": 10.0},
                         peak_lr=lr, warmup=0, batch_size=8, seed=0, horizons=HORIZONS)
        (lineage,), _ = plan_lineages([s], PlanConfig())
        sink = MemorySink()
        run_lineage(lineage, sink=sink)
        ev = {r["step"]: r["loss"] for rows in sink.segments.values() for r in rows
              if r["split"] == "eval" and r["weights"] == "raw"}
        best = min(best, sum(ev.get(h, math.inf) for h in HORIZONS) / len(HORIZONS))
    return best, len(lrs) * len(gammas)


def searched(path: Path):
    spec = load_spec(path)
    study = open_study(spec, str(path.parent / "store"))
    return spec, study, [t for t in study.get_trials() if t.params]


def test_seeded_search_reaches_the_dense_grid_with_fewer_lineages(tmp_path: Path) -> None:
    lrs = [0.05 * 40 ** (i / 6) for i in range(7)]  # 0.05 .. 2.0, log-spaced
    gammas = [i / 6 for i in range(7)]
    best, n_grid = grid_best(lrs, gammas)
    path = write(tmp_path, "quality", n_trials=20)
    outcome = run_sweep(path, progress=False)
    spec, study, trials = searched(path)
    # tolerance: within 3% of the 49-point grid's best mean loss (the search's own best setting)
    assert outcome.search.best["value"] <= best * 1.03, (outcome.search.best, best)
    lineages = {lid for t in trials for lid in _lineages_of(spec, t)}
    assert len(lineages) == 20 < n_grid
    # the value told to the study is what the store answers for that setting (mean over horizons)
    fl = final_losses(str(tmp_path / "store"), "quality")
    winner = study.trials[outcome.search.best["number"]]
    sid = winner.user_attrs["lrsweep.setting_ids"][0]
    mine = fl[(fl["setting_id"] == sid) & (fl["weights"] == "raw")].sort_values("horizon")
    assert list(mine["horizon"]) == list(HORIZONS)
    assert mine["loss"].mean() == pytest.approx(winner.value, rel=1e-12)
    # the report's frames: the same best, and the grid's one point scored by the same objective
    frames = search_frames(str(tmp_path / "store"), "quality")
    assert frames["trials"]["best_so_far"].iloc[-1] == winner.value
    assert len(frames["trials"]) == 20 and frames["trials"]["cum_tokens"].iloc[-1] == outcome.search.tokens_trained
    grid_fl = fl[(fl["peak_lr"] == 0.1) & (fl["weights"] == "raw")]
    assert frames["grid"]["objective"].tolist() == [pytest.approx(grid_fl["loss"].mean(), rel=1e-12)]
    assert set(frames["importances"]["param"]) == {"lr", "schedules.polynomial.gamma"}


def _lineages_of(spec, trial) -> set[str]:
    from orchestrator.search.space import SearchSpace
    from trials.lineage_plan import plan_lineages

    space = SearchSpace(spec)
    ts = space.settings(trial.params)
    lineages, _ = plan_lineages(ts.up_to(space.n_horizons - 1), ts.config)
    return {lin.lineage_id for lin in lineages}


def test_halving_spends_less_than_no_stopping_at_an_equal_or_better_objective(tmp_path: Path) -> None:
    # random sampling asks the same settings with and without stopping (seeded per trial
    # number), so the comparison isolates the stopping rule
    outcomes = {}
    for stopping in ("halving", "none"):
        path = write(tmp_path, f"sh-{stopping}", n_trials=12, sampler="random", stopping=stopping, seed=3)
        outcomes[stopping] = run_sweep(path, progress=False).search
    _, _, with_sh = searched(tmp_path / "sh-halving.toml")
    _, _, without = searched(tmp_path / "sh-none.toml")
    assert [t.params for t in with_sh] == [t.params for t in without]
    assert outcomes["halving"].best["value"] <= outcomes["none"].best["value"]
    assert outcomes["none"].steps_trained == 12 * 1000
    assert outcomes["halving"].steps_trained < 0.7 * outcomes["none"].steps_trained
    stopped = [t for t in with_sh if t.state.name == "PRUNED"]
    assert stopped, "halving stopped nothing"
    # a stopped trial keeps its rows, and its trunk is marked stopped where it was judged
    runs = load_runs(str(tmp_path / "store"), "sh-halving")
    for t in stopped:
        rung = t.user_attrs[STOPPED_AT]
        row = runs[runs["lineage_id"].isin(_lineages_of(load_spec(tmp_path / "sh-halving.toml"), t))].iloc[0]
        assert (row["status"], row["max_step"]) == ("stopped", HORIZONS[rung])
        # the losses it was judged by are the store's evals at the rung horizon
        assert len(t.user_attrs[LOSSES]) == rung + 1


def test_horizon_dependent_schedules_are_never_judged_mid_schedule(tmp_path: Path) -> None:
    schedules = POLY + '\n[[schedules]]\nname = "cosine"\nfinal_fraction = 0.0\n[[schedules]]\nname = "wsd"'
    path = write(tmp_path, "mixed", n_trials=9, sampler="random", seed=1, schedules=schedules, dim=50,
                 horizons=(60, 180, 540), lr_low=0.02, lr_high=1.0)
    run_sweep(path, progress=False)
    spec, study, trials = searched(path)
    runs = load_runs(str(tmp_path / "store"), "mixed")
    fams = {t.number: t.params["grid_point"].split()[0].removeprefix("schedule=") for t in trials}
    assert {"cosine", "wsd", "polynomial"} <= set(fams.values())
    assert any(t.state.name == "PRUNED" and fams[t.number] == "cosine" for t in trials), "no cosine trial was stopped"
    for t in trials:
        for lid in _lineages_of(spec, t):
            rows = runs[runs["lineage_id"] == lid]
            trunk = rows[rows["branch"] == "trunk"].iloc[0]
            rule = json.loads(trunk["rule_params"])
            if fams[t.number] == "cosine":
                # a cosine trunk either ran its whole horizon or never started
                assert (trunk["max_step"], trunk["steps_trained"]) in ((rule["horizon"], rule["horizon"]), (0, 0)), trunk
                assert trunk["status"] == ("completed" if trunk["max_step"] else "stopped")
            if fams[t.number] == "wsd" and trunk["status"] == "stopped":
                # judged by its cooled branches: every branch it trained finished its cooldown
                done = rows[(rows["branch"] != "trunk") & (rows["steps_trained"] > 0)]
                assert (done["status"] == "completed").all()
                assert trunk["max_step"] in set(done["fork_step"])
    # the search's settings are in the settings table, so final_losses answers them like grid ones
    fl = final_losses(str(tmp_path / "store"), "mixed")
    assert set(fl["status"]) <= {"completed", "stopped", "diverged"}
    assert {sid for t in trials for sid in t.user_attrs["lrsweep.setting_ids"]} <= set(fl["setting_id"])
    # the report reads a store with stopped settings (their unanswered horizons left out)
    report = write_sweep_report(str(tmp_path / "store"), "mixed", tmp_path / "report.html")
    text = report.read_text()
    # the search's history and importances are drawn after the grid's figures (one objective: no front)
    assert 'data-figure-id="search-history"' in text and 'data-figure-id="search-importance"' in text
    assert text.index('data-figure-id="search-history"') > text.index('id="section-fig-compute"')
    assert 'id="section-search-pareto"' in text and "Failed:" not in text
    # like for like: stopped settings are said to be stopped, never "failed or not run", and each
    # family's tuning budget (grid points + searched trials, from the store's settings) is stated
    assert "stopped early by the search: " in text and "failed or not run" not in text
    budget = re.search(r"tuning budget per family \(settings tried: grid points \+ searched trials\): ([^<]*)\.", text)
    counts = {f: (int(g), int(n)) for f, g, n in re.findall(r"(\w+) \d+ \((\d+) grid \+ (\d+) searched\)", budget.group(1))}
    assert {f: g for f, (g, _) in counts.items()} == {"cosine": 1, "polynomial": 1, "wsd": 1}
    assert sum(n for _, n in counts.values()) == len(trials)
