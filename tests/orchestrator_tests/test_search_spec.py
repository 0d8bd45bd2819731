"""The ``[search]`` section: bad sections exit 2 with one line naming the field; the space
(grid points, conditional axes, settings per trial) is what the sweep file says."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.search.space import GRID_POINT, SearchSpace
from orchestrator.spec import parse_spec

BASE = """
name = "s"
batch_size = 8
[workload]
name = "linreg"
sizes = [{{ dim = 20 }}]
[[optimizers]]
name = "sgd"
lr = 0.05
[[schedules]]
name = "polynomial"
gamma = 0.5
t0 = 10.0
[[schedules]]
name = "wsd"
[[averagers]]
kind = "ema"
half_life = 0.1
[horizons]
steps = [100, 300]
[search]
{search}
[search.space]
{space}
"""
LR = 'lr = { low = 1e-3, high = 1e-1, log = true }'

# (what the section says, fragments the one-line error must contain)
BAD = {
    "empty_range": ("", 'lr = { low = 0.1, high = 0.1 }',
                    ["search.space.lr must be a non-empty range (low < high)", "0.1"]),
    "inverted_range": ("", '"schedules.polynomial.gamma" = { low = 0.9, high = 0.1 }',
                       ["search.space.schedules.polynomial.gamma must be a range with low < high", "inverted"]),
    "log_nonpositive": ("", 'lr = { low = 0.0, high = 0.1, log = true }',
                        ["search.space.lr.low must be > 0 for a log range, got 0.0"]),
    "log_negative": ("", '"schedules.polynomial.t0" = { low = -1.0, high = 10.0, log = true }',
                     ["search.space.schedules.polynomial.t0.low must be > 0 for a log range, got -1.0"]),
    "not_numeric_axis": ("", '"schedules.wsd.cooldown_shape" = { low = 0.0, high = 1.0 }',
                         ["search.space.schedules.wsd.cooldown_shape must be a numeric axis of this sweep",
                          "one of ['schedules.wsd.cooldown_fraction', 'schedules.wsd.final_fraction']"]),
    "not_an_axis_at_all": ("", 'seeds = { low = 0, high = 3, int = true }',
                           ["search.space.seeds must be a numeric axis of this sweep"]),
    "schedule_not_in_sweep": ("", '"schedules.cosine.final_fraction" = { low = 0.0, high = 0.1 }',
                              ["search.space.schedules.cosine.final_fraction must be a parameter of one of the "
                               "sweep's schedules ['polynomial', 'wsd']"]),
    "out_of_domain": ("", '"schedules.polynomial.gamma" = { low = 0.0, high = 1.5 }',
                      ["search.space.schedules.polynomial.gamma.high must be a number in [0, 1], got 1.5"]),
    "int_axis_as_float": ("", 'warmup = { low = 0, high = 10 }',
                          ["search.space.warmup.int must be true: warmup takes integers, got False"]),
    "unknown_sampler": ('sampler = "bayes"', LR,
                        ["search.sampler must be one of ['cmaes', 'gp', 'nsga2', 'random', 'tpe'], got 'bayes'"]),
    "unknown_objective": ('objective = "median"', LR,
                          ["search.objective must be one of ['final', 'mean', 'pareto', 'regret'], got 'median'"]),
    "unknown_stopping": ('stopping = "hyperband"', LR, ["search.stopping must be one of ['halving', 'none']"]),
    "pareto_with_cmaes": ('objective = "pareto"\nsampler = "cmaes"', LR,
                          ["search.sampler must be a multi-objective sampler for objective 'pareto'", "'cmaes'"]),
    "horizon_not_a_horizon": ('objective = "final"\nhorizon = 200', LR,
                              ["search.horizon must be one of the sweep's horizons.steps [100, 300], got 200"]),
    "optimizer_hyper_out_of_range": ("", '"optimizers.sgd.momentum" = { low = 0.5, high = 1.5 }',
                                     ["search.space.optimizers.sgd.momentum.high must be a number in [0, 1), got 1.5"]),
    "optimizer_hyper_unknown": ("", '"optimizers.sgd.beta3" = { low = 0.5, high = 0.9 }',
                                ["search.space.optimizers.sgd.beta3 must be a numeric hyperparameter of 'sgd': one of",
                                 "'momentum'"]),
    "unknown_key": ('trials = 5', LR, ["unknown key 'trials' in search"]),
    "no_space": ("", "", ["search.space must be a table of at least one range"]),
    "unknown_weights": ('weights = "ema@0.2"', LR, ["search.weights must be one of ['best', 'ema@0.1', 'raw']"]),
    "unknown_per": ('per = "schedule"', LR, ["search.per must be one of ['family', 'optimizer'], got 'schedule'"]),
    "warm_start_itself": ('warm_start = "s"', LR, ["search.warm_start must be the name of another sweep", "got 's'"]),
    "warm_start_k_alone": ('warm_start_k = 2', LR, ["search.warm_start_k must be absent", "got 2"]),
    "warm_start_k_zero": ('warm_start = "pilot"\nwarm_start_k = 0', LR, ["search.warm_start_k must be > 0, got 0"]),
}


def _write(tmp_path: Path, search: str, space: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(BASE.format(search=search, space=space))
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_search_section_exits_2_with_one_line_naming_the_field(case: str, tmp_path: Path, capsys) -> None:
    search, space, fragments = BAD[case]
    path = _write(tmp_path, search, space)
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert err.startswith(f"lrsweep: error: {path}: ")


def test_a_warm_start_from_a_sweep_the_store_lacks_exits_2_before_anything_is_written(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, 'warm_start = "pilot"', LR)
    store = tmp_path / "store"
    assert main(["run", str(path), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lrsweep: error: search.warm_start must be a sweep in the store"), err
    assert not store.exists()


def test_per_family_splits_the_grid_points_into_one_space_per_family() -> None:
    sweep = _sweep({"lr": {"low": 1e-3, "high": 0.1, "log": True},
                    "schedules.polynomial.gamma": {"low": 0.0, "high": 1.0}}, per="family")
    assert SearchSpace(sweep).groups() == ["polynomial", "wsd", "cosine"]
    poly = SearchSpace(sweep, "polynomial")
    assert [p.first.schedule for p in poly.grid_points] == ["polynomial"]  # the grid lrs are one point: lr is searched
    assert SearchSpace(_sweep({"lr": {"low": 1e-3, "high": 0.1}}, per="optimizer")).groups() == ["sgd"]
    assert SearchSpace(_sweep({"lr": {"low": 1e-3, "high": 0.1}})).groups() == [""]


def test_a_good_section_plans_the_grid(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, 'n_trials = 4', LR + '\n"schedules.polynomial.gamma" = { low = 0.0, high = 1.0 }')
    assert main(["plan", str(path), "--json"]) == 0
    assert '"lineages"' in capsys.readouterr().out


def _sweep(space: dict, **search):
    data = {
        "name": "s", "batch_size": 8, "seeds": [0, 1],
        "workload": {"name": "linreg", "sizes": [{"dim": 20}]},
        "optimizers": [{"name": "sgd", "lr": [0.01, 0.05]}],
        "schedules": [{"name": "polynomial", "gamma": 0.5, "t0": 10.0}, {"name": "wsd"}, {"name": "cosine"}],
        "averagers": [{"kind": "ema", "half_life": 0.1}],
        "horizons": {"steps": [100, 300, 1000]},
        "search": {"space": space, **search},
    }
    return parse_spec(data)


class _Asked:
    """A stand-in for optuna.Trial that answers each suggestion from a table (and logs it)."""

    def __init__(self, answers: dict) -> None:
        self.answers, self.asked = answers, []

    def suggest_categorical(self, name, choices):
        self.asked.append((name, tuple(choices)))
        return self.answers[name]

    def suggest_float(self, name, low, high, log=False):
        self.asked.append((name, low, high, log))
        return self.answers[name]

    def suggest_int(self, name, low, high, log=False):
        self.asked.append((name, low, high, log))
        return self.answers[name]


def test_lists_become_grid_points_and_ranges_apply_only_where_they_belong() -> None:
    sweep = _sweep({"lr": {"low": 1e-3, "high": 1e-1, "log": True},
                    "schedules.polynomial.gamma": {"low": 0.0, "high": 1.0}})
    space = SearchSpace(sweep)
    # the lr list collapses (lr is ranged), seeds are replicates: one grid point per schedule
    labels = [p.label for p in space.grid_points]
    assert labels == ["schedule=polynomial t0=10.0", "schedule=wsd cooldown_fraction=0.2 cooldown_shape=1-sqrt final_fraction=0.0",
                      "schedule=cosine final_fraction=0.1"]
    wsd = _Asked({GRID_POINT: labels[1], "lr": 0.02})
    params = space.suggest(wsd)
    assert params == {GRID_POINT: labels[1], "lr": 0.02}  # gamma is not asked for wsd
    assert [a[0] for a in wsd.asked] == [GRID_POINT, "lr"]
    poly = _Asked({GRID_POINT: labels[0], "lr": 0.03, "schedules.polynomial.gamma": 0.25})
    params = space.suggest(poly)
    assert poly.asked[1] == ("lr", 1e-3, 1e-1, True)
    ts = space.settings(params)
    assert [s.trial.seed for s in ts.settings] == [0, 1]
    assert {s.trial.peak_lr for s in ts.settings} == {0.03}
    assert {s.trial.schedule_params["gamma"] for s in ts.settings} == {0.25}
    assert {s.trial.schedule_params["t0"] for s in ts.settings} == {10.0}
    assert ts.horizons == ((100, 300, 1000), (100, 300, 1000))
    # a rung asks each setting only at its first horizons
    assert [s.horizons for s in ts.up_to(1)] == [(100, 300), (100, 300)]


def test_objective_final_trains_only_to_its_horizon_and_averager_axes_replace_the_entry() -> None:
    sweep = _sweep({"averagers.ema.half_life": {"low": 0.01, "high": 0.5, "log": True}},
                   objective="final", horizon=300, weights="ema")
    space = SearchSpace(sweep)
    assert space.n_horizons == 2
    point = space.grid_points[0]
    params = {GRID_POINT: point.label, "averagers.ema.half_life": 0.2} if len(space.grid_points) > 1 else {
        "averagers.ema.half_life": 0.2}
    ts = space.settings(params)
    assert [(a.kind, a.label) for a in ts.config.averagers] == [("ema", "ema@0.2")]
    assert ts.horizons[0] == (100, 300)
    assert space.searched_averager_label(params, "ema") == "ema@0.2"


def test_int_ranges_are_asked_as_ints() -> None:
    sweep = _sweep({"warmup": {"low": 0, "high": 20, "int": True}})
    asked = _Asked({GRID_POINT: SearchSpace(sweep).grid_points[0].label, "warmup": 7})
    params = SearchSpace(sweep).suggest(asked)
    assert asked.asked[1] == ("warmup", 0, 20, False)
    ts = SearchSpace(sweep).settings(params)
    assert {s.trial.warmup for s in ts.settings} == {7}
