"""The planner: lineage counts and compute against hand computation and an independent brute-force
minimum, trunk/branch identity, eval points, JSON."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.plan_view import format_count, plan_json, render_plan
from orchestrator.planner import Plan, plan
from orchestrator.spec import gpt_param_count, load_spec, parse_spec
from tests.orchestrator_tests.brute_force import brute_force_minimum
from trials.lineage_plan import eval_grid
from trials.lineage_spec import LineageSpec

NANO_N = gpt_param_count(2, 64, 64)  # 100,096 non-embedding parameters
NANO_TPS = 16 * 64  # batch 16 x context 64 tokens per step
U = 100  # one horizon "unit" in steps
ROOT = Path(__file__).resolve().parents[2]


def make(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "warmup": 10,
        "batch_size": 16,
        "workload": {"name": "char_gpt", "sizes": ["nano"]},
        "optimizers": [{"name": "adamw", "lr": [1e-3]}],
        "schedules": [{"name": "cosine"}],
        "horizons": {"steps": [1 * U, 2 * U, 4 * U, 8 * U, 16 * U]},
        "eval": {"points_per_decade": 0},
    }
    data.update(overrides)
    return data


def planned(**overrides: Any) -> Plan:
    return plan(parse_spec(make(**overrides)))


WSD20 = [{"name": "wsd", "cooldown_fraction": 0.2}]


def branches(lineage: LineageSpec) -> list[tuple]:
    return [("trunk", None, lineage.trunk_end)] + [(b.name, b.fork_step, b.steps) for b in lineage.branches]


# ---------------------------------------------------------------------------------- counts and totals
def test_wsd_20_percent_at_1_2_4_8_16_units_trains_19_units_instead_of_31() -> None:
    p = planned(schedules=WSD20)
    assert len(p.lineages) == 1
    # trunk to the last decay start 0.8 * 16 = 12.8 units, then 0.2 * (1 + 2 + 4 + 8 + 16) = 6.2 units of cooldowns
    assert p.planned_steps == 19 * U
    assert p.naive_steps == 31 * U
    assert p.planned_tokens == 19 * U * NANO_TPS
    assert p.saving == pytest.approx(1 - 19 / 31)
    assert branches(p.lineages[0]) == [
        ("trunk", None, 1280), ("h=100/1-sqrt@80", 80, 20), ("h=200/1-sqrt@160", 160, 40),
        ("h=400/1-sqrt@320", 320, 80), ("h=800/1-sqrt@640", 640, 160), ("h=1600/1-sqrt@1280", 1280, 320)]


def test_wsd_forks_at_the_schedules_own_decay_start() -> None:
    p = planned(warmup=30, horizons={"steps": [37, 150, 333, 1001]},
                schedules=[{"name": "wsd", "cooldown_fraction": [0.25, 0.9]}])
    assert len(p.lineages) == 1  # both cooldown fractions hang off one constant trunk
    forks = {(b.end, b.fork_step) for b in p.lineages[0].branches}
    # S = max(W, T - round(c T)); at c = 0.9, T = 37: 37 - round(33.3) = 4 is before the warmup: 30
    expected = {(t, max(30, t - round(c * t))) for t in (37, 150, 333, 1001) for c in (0.25, 0.9)}
    assert forks == expected and (37, 30) in forks
    assert p.lineages[0].trunk_end == max(s for _, s in expected)
    assert all(b.steps == b.end - b.fork_step for b in p.lineages[0].branches)


def test_constant_and_every_wsd_variant_share_one_trunk() -> None:
    p = planned(horizons={"steps": [100, 200, 400]}, schedules=[
        {"name": "constant"}, {"name": "wsd", "cooldown_fraction": [0.1, 0.2], "cooldown_shape": ["linear", "1-sqrt"]}])
    assert len(p.lineages) == 1
    lineage = p.lineages[0]
    assert lineage.trunk_horizons == (100, 200, 400) and lineage.trunk_end == 400
    # four WSD variants x three horizons, each a cooldown off the trunk
    assert len(lineage.branches) == 12
    assert p.planned_steps == 400 + 2 * (10 + 20 + 40) + 2 * (20 + 40 + 80)
    assert {c.family for c in p.compute} == {"constant+wsd"}


def test_cosine_at_k_horizons_is_k_lineages_and_the_sum_of_horizons() -> None:
    p = planned()
    assert len(p.lineages) == 5
    assert [lin.horizons for lin in p.lineages] == [(100,), (200,), (400,), (800,), (1600,)]
    assert p.planned_steps == p.naive_steps == 3100
    assert p.saving == 0
    assert len({a.setting.setting_id for a in p.answers}) == 1
    assert len({lin.lineage_id for lin in p.lineages}) == 5


@pytest.mark.parametrize("schedule", [{"name": "constant"}, {"name": "polynomial", "gamma": 0.5, "t0": 50.0},
                                      {"name": "inverse_sqrt"}])
def test_horizon_free_schedule_is_one_lineage_to_the_longest_horizon(schedule: dict) -> None:
    p = planned(schedules=[schedule])
    assert len(p.lineages) == 1
    assert p.lineages[0].trunk_horizons == (100, 200, 400, 800, 1600) and not p.lineages[0].branches
    assert p.planned_steps == 1600
    assert p.naive_steps == 3100


def test_schedule_free_optimizer_is_one_lineage_without_a_schedule() -> None:
    data = make(optimizers=[{"name": "sf_adamw", "lr": [1e-3, 3e-3], "params": {"weight_decay": 0.1}}])
    del data["schedules"]
    p = plan(parse_spec(data))
    assert len(p.lineages) == 2
    assert all(lin.rule == "schedule_free" and lin.schedule_free for lin in p.lineages)
    assert all(lin.warmup == 10 and lin.optimizer_params == {"weight_decay": 0.1} for lin in p.lineages)
    assert p.planned_steps == 2 * 1600
    assert {c.family for c in p.compute} == {"sf_adamw"}


def test_averagers_never_change_lineage_count_or_compute() -> None:
    plain = planned(schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}])
    averaged = planned(schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}], averagers=[
        {"kind": "ema", "half_life": [0.05, 0.1, 200]}, {"kind": "swa", "start_fraction": [0.5, 0.8]},
        {"kind": "lawa", "k": 4, "every": 10}, {"kind": "poly", "q": 1.0}])
    assert len(averaged.lineages) == len(plain.lineages) == 6  # 5 cosine + one constant/WSD trunk
    assert averaged.planned_tokens == plain.planned_tokens
    assert averaged.lineages[-1].lineage_id == plain.lineages[-1].lineage_id
    labels = {a.label for a in averaged.lineages[0].averagers}
    assert labels == {"ema@0.05", "ema@0.1", "ema@200", "swa@0.5", "swa@0.8", "lawa@4x10", "poly@1"}


def test_mixed_grid_counts_and_totals() -> None:
    p = planned(
        horizons={"steps": [100, 200, 400]},
        optimizers=[{"name": "adamw", "lr": [1e-3, 3e-3]}, {"name": "sf_adamw", "lr": 3e-3}],
        schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}],
    )
    families = [c.family for c in p.compute]
    assert families.count("cosine") == 2 * 3
    assert families.count("constant+wsd") == 2
    assert families.count("sf_adamw") == 1
    # per LR: cosine 100 + 200 + 400, the shared trunk to 400 + cooldowns 20 + 40 + 80; SF-AdamW 400 once
    assert p.planned_steps == 2 * (700 + 400 + 140) + 400 == 2880
    assert p.naive_steps == 7 * 700
    assert p.planned_flops == pytest.approx(6 * NANO_N * 2880 * NANO_TPS)
    assert p.naive_flops == pytest.approx(6 * NANO_N * 4900 * NANO_TPS)


def test_the_quickstart_plans_exactly_6560_steps() -> None:
    p = plan(load_spec(ROOT / "examples" / "quickstart.toml"))
    # per LR: cosine 200 + 400 + 800, constant/WSD trunk 800 + cooldowns 40 + 80 + 160, SF-AdamW 800
    assert p.planned_steps == 2 * (1400 + 800 + 280 + 800) == 6560
    assert p.naive_steps == 11200


# ---------------------------------------------------------------------------------- brute force
def _random_grid(rng: random.Random) -> dict[str, Any]:
    schedules: list[dict] = []
    if rng.random() < 0.8:
        schedules.append({"name": "wsd", "cooldown_fraction": rng.sample([0.1, 0.2, 0.25, 0.5, 0.9], rng.randint(1, 3)),
                          "cooldown_shape": rng.sample(["linear", "cosine", "1-sqrt"], rng.randint(1, 2)),
                          **({"final_fraction": [0.0, 0.1]} if rng.random() < 0.3 else {})})
    for name in ("constant", "cosine", "linear", "polynomial", "inverse_sqrt"):
        if rng.random() < 0.4:
            schedules.append({"name": name})
    schedules = schedules or [{"name": "constant"}]
    optimizers = [{"name": "sgd", "lr": rng.sample([0.01, 0.03, 0.1], rng.randint(1, 2))}]
    if rng.random() < 0.4:
        optimizers.append({"name": "sf_sgd", "lr": [0.5]})
    warmup = rng.choice([0, 3, [0, 5]])
    horizons = sorted(rng.sample(range(8, 120), rng.randint(1, 4)))
    return {"name": "g", "warmup": warmup, "batch_size": 4, "seeds": rng.sample([0, 1, 2], rng.randint(1, 2)),
            "workload": {"name": "linreg", "sizes": [{"dim": 10}]}, "optimizers": optimizers,
            "schedules": schedules, "horizons": {"steps": horizons}}


def test_planned_steps_equal_an_independent_brute_force_minimum_on_random_grids() -> None:
    rng = random.Random(20261130)
    checked = 0
    for _ in range(250):
        data = _random_grid(rng)
        try:
            spec = parse_spec(data)
        except Exception:  # a random grid the spec refuses (e.g. a horizon within the warmup)
            continue
        assert plan(spec).planned_steps == brute_force_minimum(spec), data
        checked += 1
    assert checked >= 150


def test_the_brute_force_counts_sharing_it_should() -> None:
    """Sanity of the oracle itself on a hand-computed case: constant + WSD 20% at (50, 100)."""
    spec = parse_spec({"name": "b", "workload": {"name": "linreg", "sizes": [{"dim": 10}]},
                       "optimizers": [{"name": "sgd", "lr": 0.1}], "horizons": {"steps": [50, 100]},
                       "schedules": [{"name": "constant"}, {"name": "wsd", "cooldown_fraction": 0.2}]})
    assert brute_force_minimum(spec) == 100 + 10 + 20


# ---------------------------------------------------------------------------------- horizon units
def test_token_horizons_convert_exactly() -> None:
    p = planned(horizons={"tokens": [102_400, 204_800, 300_000]})
    # 300,000 / 1,024 = 292.97 -> 293 steps
    assert [lin.horizons[0] for lin in p.lineages] == [100, 200, 293]
    assert p.planned_tokens == (100 + 200 + 293) * NANO_TPS


def test_chinchilla_horizons_convert_exactly_per_size() -> None:
    micro_n, micro_tps = gpt_param_count(4, 128, 128), 16 * 128
    p = planned(workload={"name": "char_gpt", "sizes": ["nano", "micro"]}, horizons={"chinchilla": [1, 2.5]},
                schedules=[{"name": "constant"}])
    nano, micro = p.lineages
    assert nano.horizons == (round(20 * NANO_N / NANO_TPS), round(2.5 * 20 * NANO_N / NANO_TPS)) == (1955, 4888)
    assert micro.horizons == (round(20 * micro_n / micro_tps), round(2.5 * 20 * micro_n / micro_tps))
    assert p.compute[1].n_params == micro_n == 793_344
    assert p.planned_flops == pytest.approx(6 * NANO_N * 4888 * NANO_TPS + 6 * micro_n * micro.horizons[-1] * micro_tps)


def test_linreg_counts_samples_and_dim_parameters() -> None:
    p = planned(workload={"name": "linreg", "sizes": [{"dim": 500}, {"dim": 2000}]}, batch_size=4,
                schedules=[{"name": "constant"}], horizons={"steps": [1000, 4000]})
    assert [c.n_params for c in p.compute] == [500, 2000]
    assert [c.tokens(c.planned_steps) for c in p.compute] == [4000 * 4, 4000 * 4]
    assert p.lineages[1].workload_params == {"dim": 2000}


# ---------------------------------------------------------------------------------- eval points
def test_eval_grid_is_4_per_decade_and_never_moves_when_a_horizon_is_added() -> None:
    assert eval_grid(1000, points_per_decade=4) == [1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000]
    assert eval_grid(40, points_per_decade=0, every=15) == [15, 30]
    short = planned(eval={"points_per_decade": 4, "every": 250}, horizons={"steps": [100, 800]}, schedules=WSD20)
    long = planned(eval={"points_per_decade": 4, "every": 250}, horizons={"steps": [100, 800, 3000]},
                   schedules=WSD20)
    a, b = short.lineages[0], long.lineages[0]
    assert set(a.eval_steps) <= set(b.eval_steps)  # extending only adds points
    assert a.eval_steps == (1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 250, 316, 500, 562)  # to the last fork, 640
    cooldown = a.branch("h=800/1-sqrt@640")
    assert cooldown.eval_steps == (750, 800)  # (640, 800]: every 250, and the horizon


def test_swa_start_fraction_is_one_instance_per_horizon() -> None:
    p = planned(horizons={"steps": [100, 250]}, schedules=[{"name": "cosine"}, {"name": "constant"}],
                averagers=[{"kind": "swa", "start_fraction": 0.5, "every": 2}, {"kind": "ema", "half_life": 0.05}])
    cos_100, cos_250, const = p.lineages
    swa = [a for a in const.averagers if a.kind == "swa"]
    assert [(a.key, a.params, a.eval_at) for a in swa] == [
        ("swa@0.5/2#100", {"every": 2, "start": 50}, 100), ("swa@0.5/2#250", {"every": 2, "start": 125}, 250)]
    assert [(a.params["start"], a.eval_at) for a in cos_250.averagers if a.kind == "swa"] == [(125, 250)]
    assert [(a.params, a.eval_at) for a in cos_100.averagers if a.kind == "ema"] == [({"half_life": 0.05}, None)]


# ---------------------------------------------------------------------------------- identity
def test_trunk_ids_ignore_horizons_cooldowns_eval_and_averagers() -> None:
    a = planned(schedules=WSD20, horizons={"steps": [100, 200]})
    b = planned(schedules=[{"name": "constant"}, {"name": "wsd", "cooldown_fraction": [0.2, 0.5]}],
                horizons={"steps": [100, 300, 900]}, eval={"points_per_decade": 8},
                averagers=[{"kind": "ema", "half_life": 0.1}], resources={"cpu": 4, "retries": 0})
    assert [lin.lineage_id for lin in a.lineages] == [lin.lineage_id for lin in b.lineages]
    shared = {br.name: br.branch_id for br in a.lineages[0].branches if br.end == 100}
    assert {br.name: br.branch_id for br in b.lineages[0].branches if br.name in shared} == shared
    c = planned(schedules=WSD20, horizons={"steps": [100, 200]}, optimizers=[{"name": "adamw", "lr": 2e-3}])
    d = planned(schedules=[{"name": "polynomial", "gamma": 0.5}], horizons={"steps": [100, 200]})
    assert len({lin.lineage_id for lin in (*a.lineages, *c.lineages, *d.lineages)}) == 3


def test_lineage_ids_are_stable_and_distinct() -> None:
    grid = dict(optimizers=[{"name": "adamw", "lr": [1e-3, 3e-3]}, {"name": "sf_adamw", "lr": 1e-3}],
                schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}], seeds=[0, 1])
    a, b = planned(**grid), planned(**grid)
    ids = [lin.lineage_id for lin in a.lineages]
    assert ids == [lin.lineage_id for lin in b.lineages]
    assert len(set(ids)) == len(ids) == 2 * (2 * 6 + 1)
    assert all(len(i) == 12 for i in ids)


def test_schedule_params_carry_the_class_defaults() -> None:
    p = planned(schedules=[{"name": "wsd"}, {"name": "cosine", "final_fraction": 0.0}])
    wsd = next(a for a in p.answers if a.setting.schedule == "wsd").setting
    assert wsd.schedule_params == {"cooldown_fraction": 0.2, "cooldown_shape": "1-sqrt", "final_fraction": 0.0}
    same = planned(schedules=[{"name": "wsd", "cooldown_fraction": 0.2}])  # a default spelt out: same setting
    assert next(a for a in same.answers).setting.setting_id == wsd.setting_id


def test_lineage_carries_the_run_settings() -> None:
    p = planned(resources={"gpu": 0.5, "checkpoint_every": 50, "checkpoint_grid": 4}, divergence_factor=3.0,
                eval={"log_every": 10, "points_per_decade": 0})
    lin = p.lineages[0]
    assert (lin.device, lin.checkpoint_every, lin.divergence_factor, lin.log_every) == ("cuda", 50, 3.0, 10)
    assert (lin.workload, lin.workload_params, lin.batch_size, lin.warmup) == ("char_gpt", {"size": "nano"}, 16, 10)
    assert planned(resources={"checkpoint_grid": 4}).lineages[-1].checkpoint_steps == (64, 256, 1024, 1600)


def test_planner_and_python_m_trials_give_the_same_ids(tmp_path) -> None:
    spec = planned(horizons={"steps": [30, 60]}, workload={"name": "linreg", "sizes": [{"dim": 8}]}, batch_size=4,
                   schedules=[{"name": "wsd", "cooldown_fraction": 0.25}], optimizers=[{"name": "sgd", "lr": 0.05}],
                   averagers=[{"kind": "ema", "half_life": 0.1}])
    lineage = spec.lineages[0]
    setting = tmp_path / "setting.toml"
    setting.write_text(
        'workload = "linreg"\nworkload_params = { dim = 8 }\noptimizer = "sgd"\npeak_lr = 0.05\nschedule = "wsd"\n'
        'schedule_params = { cooldown_fraction = 0.25 }\nwarmup = 10\nbatch_size = 4\nseed = 0\nhorizons = [30, 60]\n'
        'points_per_decade = 0\ndivergence_factor = 1e6\n[[averagers]]\nkind = "ema"\nhalf_life = 0.1\n')
    out = subprocess.run([sys.executable, "-m", "trials", str(setting), "-o", str(tmp_path / "c.csv")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"lineage {lineage.lineage_id} completed" in out.stdout
    import pandas as pd

    curve = pd.read_csv(tmp_path / "c.csv")
    assert set(curve["lineage_id"]) == {lineage.lineage_id}
    assert set(curve["branch"]) == {"trunk", *(b.name for b in lineage.branches)} == {
        "trunk", "h=30/1-sqrt@22", "h=60/1-sqrt@45"}


# ---------------------------------------------------------------------------------- views
def test_plan_json_has_the_documented_fields_and_round_trips() -> None:
    p = planned(schedules=[{"name": "cosine"}, *WSD20], averagers=[{"kind": "swa", "start_fraction": 0.5}])
    data = json.loads(plan_json(p))
    assert data == json.loads(p.to_json())
    for key in ("lineages", "planned_steps", "planned_tokens", "naive_tokens", "planned_flops", "naive_flops",
                "saving", "stored_steps", "run_steps"):
        assert key in data
    assert data["planned_tokens"] == p.planned_tokens and data["saving"] == pytest.approx(p.saving)
    assert data["stored_steps"] == 0 and data["run_steps"] == data["planned_steps"]  # nothing stored yet
    wsd = data["lineages"][-1]
    for key in ("lineage_id", "setting_id", "family", "schedule", "optimizer", "peak_lr", "seed", "horizons",
                "branches", "tokens", "flops", "stored_steps", "run_steps"):
        assert key in wsd
    assert wsd["family"] == "wsd"
    assert wsd["branches"][0] == {"name": "trunk", "fork_step": None, "steps": 1280, "horizons": []}
    assert wsd["branches"][1] == {"name": "h=100/1-sqrt@80", "fork_step": 80, "steps": 20, "horizons": [100]}
    for row, lineage in zip(data["lineages"], p.lineages, strict=True):
        assert LineageSpec.from_dict(row["spec"]) == lineage


def test_render_plan_has_a_row_per_lineage_and_a_saving_footer() -> None:
    from rich.console import Console

    p = planned(schedules=WSD20, seeds=[0, 1])
    table = render_plan(p, wide=True)  # full ids and branches (the default fits 100 columns)
    assert table.row_count == 2
    console = Console(width=250, record=True)
    console.print(table)
    text = console.export_text()
    assert p.lineages[0].lineage_id in text
    assert "trunk 1280 + cooldowns 20, 40, 80, 160, 320" in text
    assert "saving 38.7%" in text  # 1 - 19/31
    assert f"planned {format_count(p.planned_tokens)} tokens" in text


def test_format_count() -> None:
    assert format_count(1_234_567) == "1.23M"
    assert format_count(3.1e15, "FLOP") == "3.1 PFLOP"
    assert format_count(12) == "12"
