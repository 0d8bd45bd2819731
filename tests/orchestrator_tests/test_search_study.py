"""The study: every sampler of ``[search] sampler`` asks reproducibly through the per-number seed,
whatever ran before in the process; a changed search refuses the stored study."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from orchestrator.search.space import SearchSpace
from orchestrator.search.spec import SAMPLERS
from orchestrator.search.study import open_study, sampler_for, study_path
from orchestrator.spec import parse_spec
from trials.errors import ConfigError


def _sweep(sampler: str, objective: str = "mean", **extra):
    return parse_spec({
        "name": "st", "store": "unused",
        "workload": {"name": "linreg", "sizes": [{"dim": 10}]},
        "optimizers": [{"name": "sgd", "lr": 0.1}],
        "schedules": [{"name": "polynomial", "gamma": 0.5, "t0": 10.0}],
        "horizons": {"steps": [10, 30]},
        "search": {"sampler": sampler, "objective": objective, "n_trials": 12, "seed": 5, **extra,
                   "space": {"lr": {"low": 1e-3, "high": 1.0, "log": True},
                             "schedules.polynomial.gamma": {"low": 0.0, "high": 1.0}}},
    })


def _drive(sweep, store: Path, n: int) -> list[dict]:
    """Ask/tell ``n`` trials with a known function, a fresh sampler per ask (as the driver does)."""
    study = open_study(sweep, str(store))
    space = SearchSpace(sweep)
    out = []
    for _ in range(n):
        number = len(study.trials)
        asking = optuna.load_study(study_name=study.study_name, storage=study._storage,  # noqa: SLF001
                                   sampler=sampler_for(sweep, number))
        trial = asking.ask()
        params = space.suggest(trial)
        x, g = math.log10(params["lr"]), params["schedules.polynomial.gamma"]
        values = [(x + 1) ** 2 + (g - 0.5) ** 2, (x + 1.5) ** 2 + g]
        asking.tell(trial, values if len(study.directions) == 2 else values[0])
        out.append(params)
    return out


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_asks_the_same_trials_twice(sampler: str, tmp_path: Path) -> None:
    sweep = _sweep(sampler)
    first = _drive(sweep, tmp_path / "a", 12)
    optuna.samplers.RandomSampler(seed=99).sample_independent  # noqa: B018 - unrelated RNG use in between
    second = _drive(sweep, tmp_path / "b", 12)
    assert first == second
    assert len({p["lr"] for p in first}) >= 8  # not one trial repeated (NSGA-II may copy a parent)


@pytest.mark.parametrize("sampler", sorted(s for s, multi in SAMPLERS.items() if multi))
def test_pareto_runs_on_every_multi_objective_sampler(sampler: str, tmp_path: Path) -> None:
    sweep = _sweep(sampler, objective="pareto")
    _drive(sweep, tmp_path, 8)
    study = open_study(sweep, str(tmp_path))
    assert len(study.directions) == 2 and study.best_trials


def test_a_changed_search_refuses_the_stored_study(tmp_path: Path) -> None:
    open_study(_sweep("tpe"), str(tmp_path))
    assert study_path(str(tmp_path), "st").is_file()
    open_study(_sweep("tpe", n_trials=40, concurrency=2), str(tmp_path))  # more trials: the same search
    with pytest.raises(ConfigError, match=r"^search must be the study of this \[search\] section"):
        open_study(_sweep("random"), str(tmp_path))


def test_regret_rung_pools_are_scored_against_todays_envelope(tmp_path: Path) -> None:
    """The first trial's recorded regret is 0 (it was the envelope); judged later, it is scored
    against everything seen since, or every later trial would be stopped against a stale 0."""
    from orchestrator.search.searcher import LOSSES, RUNGS, WAVE, StudySearcher
    from orchestrator.search.study import _storage

    sweep = _sweep("random", objective="regret", n_trials=2)
    storage = _storage(study_path(str(tmp_path), "st"))
    study = open_study(sweep, str(tmp_path), storage=storage)
    for number, (losses, recorded) in enumerate([([4.0, 2.0], 0.0), ([2.0, 4.0], 0.0)]):
        trial = study.ask()
        SearchSpace(sweep).suggest(trial)
        for key, value in ((WAVE, number), (LOSSES, losses), (RUNGS, {"0": [recorded], "1": [recorded]})):
            trial.set_user_attr(key, value)
        study.tell(trial, recorded)
    searcher = StudySearcher(sweep=sweep, study=study, storage=storage, job_base={})
    # envelope today: [2, 2]; rung 0: 4/2 - 1 = 1 and 0; rung 1: max(1, 0) = 1 and max(0, 1) = 1
    assert searcher._pool(0) == [[1.0], [0.0]]
    assert searcher._pool(1) == [[1.0], [1.0]]
    assert searcher.finished()
