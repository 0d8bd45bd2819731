"""The planner: lineage counts and compute against hand computation, ids, eval points, JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.plan_view import format_count, plan_json, render_plan
from orchestrator.planner import Plan, eval_points, expand_settings, plan
from orchestrator.spec import gpt_param_count, parse_spec
from trials.lineage_spec import LineageSpec
from trials.schedules import build_schedule

NANO_N = gpt_param_count(2, 64, 64)  # 100,096 non-embedding parameters
NANO_TPS = 16 * 64  # batch 16 x context 64 tokens per step
U = 100  # one horizon "unit" in steps


def make(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "warmup": 10,
        "batch_size": 16,
        "workload": {"name": "char_gpt", "sizes": ["nano"]},
        "optimizers": [{"name": "adamw", "lr": [1e-3]}],
        "schedules": [{"name": "cosine"}],
        "horizons": {"steps": [1 * U, 2 * U, 4 * U, 8 * U, 16 * U]},
        "eval": {"log_points": 0},
    }
    data.update(overrides)
    return data


def planned(**overrides: Any) -> Plan:
    return plan(parse_spec(make(**overrides)))


WSD20 = [{"name": "wsd", "cooldown_fraction": 0.2}]


# ---------------------------------------------------------------------------------- counts and totals
def test_wsd_20_percent_at_1_2_4_8_16_units_trains_19_units_instead_of_31() -> None:
    p = planned(schedules=WSD20)
    assert len(p.lineages) == 1
    # trunk to the last decay start 0.8 * 16 = 12.8 units, then 0.2 * (1 + 2 + 4 + 8 + 16) = 6.2 units of cooldowns
    assert p.planned_steps == 19 * U
    assert p.naive_steps == 31 * U
    assert p.planned_tokens == 19 * U * NANO_TPS
    assert p.saving == pytest.approx(1 - 19 / 31)
    branches = [(b.name, b.fork_step, b.steps) for b in p.compute[0].branches]
    assert branches == [("trunk", None, 1280), ("h=100", 80, 20), ("h=200", 160, 40), ("h=400", 320, 80),
                        ("h=800", 640, 160), ("h=1600", 1280, 320)]


def test_wsd_forks_at_the_schedules_own_decay_start() -> None:
    p = planned(warmup=30, horizons={"steps": [37, 150, 333, 1001]},
                schedules=[{"name": "wsd", "cooldown_fraction": [0.25, 0.9]}])
    assert len(p.lineages) == 2
    for lineage, c in zip(p.lineages, p.compute, strict=True):
        schedule = build_schedule("wsd", warmup=lineage.warmup, **lineage.schedule_params)
        forks = {b.horizons[0]: b.fork_step for b in c.branches[1:]}
        assert forks == {h: schedule.decay_start(h) for h in lineage.horizons}
        assert c.branches[0].steps == max(forks.values())
        assert all(b.steps == b.horizons[0] - b.fork_step for b in c.branches[1:])
    # c = 0.9 at T = 37: 37 - round(33.3) = 4 is before the warmup, so the fork is at 30
    assert {b.horizons[0]: b.fork_step for b in p.compute[1].branches[1:]}[37] == 30


def test_wsd_branches_agree_with_the_trial_side_branch_plan() -> None:
    from trials.branches import plan_branches

    p = planned(schedules=WSD20)
    lineage = p.lineages[0]
    trunk, forks = plan_branches(lineage, build_schedule("wsd", warmup=lineage.warmup, **lineage.schedule_params))
    ours = p.compute[0].branches
    assert (trunk.name, trunk.steps) == (ours[0].name, ours[0].steps)
    assert [(f.name, f.start, f.steps) for f in forks] == [(b.name, b.fork_step, b.steps) for b in ours[1:]]


def test_cosine_at_k_horizons_is_k_lineages_and_the_sum_of_horizons() -> None:
    p = planned()
    assert len(p.lineages) == 5
    assert [lin.horizons for lin in p.lineages] == [(100,), (200,), (400,), (800,), (1600,)]
    assert p.planned_steps == p.naive_steps == 3100
    assert p.planned_tokens == 3100 * NANO_TPS
    assert p.saving == 0
    assert len({lin.setting_id for lin in p.lineages}) == 1
    assert len({lin.lineage_id for lin in p.lineages}) == 5


@pytest.mark.parametrize("schedule", [{"name": "constant"}, {"name": "polynomial", "gamma": 0.5, "t0": 50.0},
                                      {"name": "inverse_sqrt"}])
def test_horizon_free_schedule_is_one_lineage_to_the_longest_horizon(schedule: dict) -> None:
    p = planned(schedules=[schedule])
    assert len(p.lineages) == 1
    assert p.lineages[0].horizons == (100, 200, 400, 800, 1600)
    assert p.planned_steps == 1600
    assert p.naive_steps == 3100
    assert [b.name for b in p.compute[0].branches] == ["main"]


def test_schedule_free_optimizer_is_one_lineage_without_a_schedule() -> None:
    data = make(optimizers=[{"name": "sf_adamw", "lr": [1e-3, 3e-3], "params": {"weight_decay": 0.1}}])
    del data["schedules"]
    p = plan(parse_spec(data))
    assert len(p.lineages) == 2
    assert all(lin.schedule is None and lin.schedule_params == {} for lin in p.lineages)
    assert all(lin.warmup == 10 and lin.optimizer_params == {"weight_decay": 0.1} for lin in p.lineages)
    assert p.planned_steps == 2 * 1600
    assert {c.family for c in p.compute} == {"schedule-free"}


def test_averagers_never_change_lineage_count_or_compute() -> None:
    plain = planned(schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}])
    averaged = planned(schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}], averagers=[
        {"kind": "ema", "half_life": [0.05, 0.1, 200]}, {"kind": "swa", "start_fraction": [0.5, 0.8]},
        {"kind": "lawa", "k": 4, "every": 10}, {"kind": "poly", "q": 1.0}])
    assert len(averaged.lineages) == len(plain.lineages) == 7
    assert averaged.planned_tokens == plain.planned_tokens
    labels = {a.label for a in averaged.lineages[0].averagers}
    assert labels == {"ema@0.05", "ema@0.1", "ema@200", "swa@0.5", "swa@0.8", "lawa@4x10", "poly@1"}


def test_mixed_grid_counts_and_totals() -> None:
    p = planned(
        horizons={"steps": [100, 200, 400]},
        optimizers=[{"name": "adamw", "lr": [1e-3, 3e-3]}, {"name": "sf_adamw", "lr": 3e-3}],
        schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}],
    )
    families = [c.family for c in p.compute]
    assert families.count("per-horizon") == 2 * 3
    assert families.count("wsd") == 2
    assert families.count("horizon-free") == 2
    assert families.count("schedule-free") == 1
    # per LR: cosine 100 + 200 + 400, WSD 320 + 20 + 40 + 80, constant 400; SF-AdamW 400 once
    assert p.planned_steps == 2 * (700 + 460 + 400) + 400 == 3520
    assert p.naive_steps == 7 * 700
    assert p.planned_flops == pytest.approx(6 * NANO_N * 3520 * NANO_TPS)
    assert p.naive_flops == pytest.approx(6 * NANO_N * 4900 * NANO_TPS)


def test_planned_total_is_the_per_setting_minimum() -> None:
    spec = parse_spec(make(
        warmup=[5, 20], seeds=[0, 1], horizons={"steps": [60, 130, 250]},
        optimizers=[{"name": "adamw", "lr": [1e-3, 3e-3], "params": {"weight_decay": [0.0, 0.1]}},
                    {"name": "sf_sgd", "lr": 0.1}],
        schedules=[{"name": "cosine"}, {"name": "linear"}, {"name": "wsd", "cooldown_fraction": [0.1, 0.3]},
                   {"name": "polynomial"}],
    ))
    expected = 0
    for s in expand_settings(spec):
        hs = s.horizons
        if s.schedule is None or s.schedule.horizon_free:
            expected += max(hs)
        elif s.schedule.name == "wsd":
            starts = [s.schedule.decay_start(h) for h in hs]
            expected += max(starts) + sum(h - st for h, st in zip(hs, starts, strict=True))
        else:
            expected += sum(hs)
    p = plan(spec)
    assert p.planned_steps == expected
    # settings: 2 warmups x 2 seeds x (AdamW: 2 LRs x 2 weight decays x 5 schedule points + SF-SGD: 1)
    assert len(expand_settings(spec)) == 2 * 2 * (2 * 2 * 5 + 1)
    # lineages: cosine and linear 3 each, each WSD point 1, polynomial 1
    assert len(p.lineages) == 2 * 2 * (2 * 2 * (3 + 3 + 1 + 1 + 1) + 1)


def test_seeds_multiply_lineages_and_compute() -> None:
    one = planned(schedules=WSD20)
    three = planned(schedules=WSD20, seeds=[0, 1, 2])
    assert len(three.lineages) == 3 * len(one.lineages)
    assert three.planned_tokens == 3 * one.planned_tokens
    assert len({lin.setting_id for lin in three.lineages}) == 3
    assert [lin.seed for lin in three.lineages] == [0, 1, 2]


def test_optimizer_schedule_restriction() -> None:
    p = planned(horizons={"steps": [100, 200]},
                optimizers=[{"name": "adamw", "lr": 1e-3, "schedules": ["wsd"]}, {"name": "sgd", "lr": 0.1}],
                schedules=[{"name": "cosine"}, *WSD20])
    assert [(lin.optimizer, lin.schedule) for lin in p.lineages] == [
        ("adamw", "wsd"), ("sgd", "cosine"), ("sgd", "cosine"), ("sgd", "wsd")]


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
    assert p.compute[1].flops == pytest.approx(6 * micro_n * micro.horizons[-1] * micro_tps)


def test_linreg_counts_samples_and_dim_parameters() -> None:
    p = planned(workload={"name": "linreg", "sizes": [{"dim": 500}, {"dim": 2000}]}, batch_size=4,
                schedules=[{"name": "constant"}], horizons={"steps": [1000, 4000]})
    assert [c.n_params for c in p.compute] == [500, 2000]
    assert [c.tokens for c in p.compute] == [4000 * 4, 4000 * 4]
    assert p.lineages[1].workload_params == {"dim": 2000}


# ---------------------------------------------------------------------------------- eval points
def test_eval_steps_include_every_horizon_up_to_the_lineage_max() -> None:
    p = planned(eval={"every": 250, "log_points": 5}, schedules=[{"name": "cosine"}, *WSD20])
    for lineage in p.lineages:
        longest = lineage.max_horizon
        assert set(h for h in (100, 200, 400, 800, 1600) if h <= longest) <= set(lineage.eval_steps)
        assert max(lineage.eval_steps) == longest
        assert set(range(250, longest + 1, 250)) <= set(lineage.eval_steps)
        assert list(lineage.eval_steps) == sorted(set(lineage.eval_steps))
    cos_100 = p.lineages[0]
    assert cos_100.eval_steps == (1, 3, 10, 32, 100)  # 5 log points in [1, 100], nothing beyond 100


def test_log_points_are_unique_ints_in_range() -> None:
    points = eval_points(1000, (), every=0, log_points=50)
    assert points[0] == 1 and points[-1] == 1000
    assert len(points) == len(set(points)) <= 50
    assert eval_points(400, (100, 200, 400, 800), every=0, log_points=0) == (100, 200, 400)
    assert eval_points(7, (7,), every=3, log_points=1) == (3, 6, 7)


def test_swa_start_fraction_is_one_instance_per_horizon() -> None:
    p = planned(horizons={"steps": [100, 250]}, schedules=[{"name": "cosine"}, {"name": "constant"}],
                averagers=[{"kind": "swa", "start_fraction": 0.5, "every": 2}, {"kind": "ema", "half_life": 0.05}])
    cos_100, cos_250, const = p.lineages
    swa = [a for a in const.averagers if a.kind == "swa"]
    assert [(a.label, a.params, a.eval_at) for a in swa] == [
        ("swa@0.5/2", {"every": 2, "start": 50}, 100), ("swa@0.5/2", {"every": 2, "start": 125}, 250)]
    assert [(a.params["start"], a.eval_at) for a in cos_250.averagers if a.kind == "swa"] == [(125, 250)]
    assert [(a.params, a.eval_at) for a in cos_100.averagers if a.kind == "ema"] == [({"half_life": 0.05}, None)]


# ---------------------------------------------------------------------------------- identity
def test_lineage_ids_are_stable_and_distinct() -> None:
    grid = dict(optimizers=[{"name": "adamw", "lr": [1e-3, 3e-3]}, {"name": "sf_adamw", "lr": 1e-3}],
                schedules=[{"name": "cosine"}, *WSD20, {"name": "constant"}], seeds=[0, 1])
    a, b = planned(**grid), planned(**grid)
    ids = [lin.lineage_id for lin in a.lineages]
    assert ids == [lin.lineage_id for lin in b.lineages]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 12 for i in ids)
    # changing an unrelated resource does not change ids; changing the LR does
    c = planned(**grid, resources={"cpu": 4, "retries": 0})
    assert [lin.lineage_id for lin in c.lineages] == ids
    d = planned(**{**grid, "optimizers": [{"name": "adamw", "lr": [1e-3, 2e-3]}, {"name": "sf_adamw", "lr": 1e-3}]})
    # per seed: 7 lineages at lr 1e-3 (5 cosine, 1 WSD, 1 constant) and 1 SF lineage are unchanged
    assert len(set(ids) & {lin.lineage_id for lin in d.lineages}) == 2 * (7 + 1)


def test_setting_id_ignores_the_horizon_and_the_averagers() -> None:
    p = planned()
    q = planned(horizons={"steps": [300]}, averagers=[{"kind": "ema", "half_life": 0.1}])
    assert p.lineages[0].setting_id == q.lineages[0].setting_id
    assert p.lineages[0].lineage_id != q.lineages[0].lineage_id


def test_schedule_params_carry_the_class_defaults() -> None:
    p = planned(schedules=[{"name": "wsd"}, {"name": "cosine", "final_fraction": 0.0}])
    assert p.lineages[0].schedule_params == {"cooldown_fraction": 0.2, "cooldown_shape": "1-sqrt", "final_fraction": 0.0}
    assert p.lineages[1].schedule_params == {"final_fraction": 0.0}
    # spelling out a default is the same setting
    same = planned(schedules=[{"name": "wsd", "cooldown_fraction": 0.2}])
    assert same.lineages[0].lineage_id == p.lineages[0].lineage_id


def test_lineage_carries_the_run_settings() -> None:
    p = planned(resources={"gpu": 0.5, "checkpoint_every": 50}, divergence_factor=3.0,
                eval={"log_every": 10, "log_points": 0})
    lin = p.lineages[0]
    assert (lin.device, lin.checkpoint_every, lin.divergence_factor, lin.log_every) == ("cuda", 50, 3.0, 10)
    assert (lin.workload, lin.workload_params, lin.batch_size, lin.warmup) == ("char_gpt", {"size": "nano"}, 16, 10)


# ---------------------------------------------------------------------------------- views
def test_plan_json_has_the_documented_fields_and_round_trips() -> None:
    p = planned(schedules=[{"name": "cosine"}, *WSD20], averagers=[{"kind": "swa", "start_fraction": 0.5}])
    data = json.loads(plan_json(p))
    assert data == json.loads(p.to_json())
    for key in ("lineages", "planned_tokens", "naive_tokens", "planned_flops", "naive_flops", "saving"):
        assert key in data
    assert data["planned_tokens"] == p.planned_tokens and data["saving"] == pytest.approx(p.saving)
    wsd = data["lineages"][-1]
    for key in ("lineage_id", "setting_id", "family", "schedule", "optimizer", "peak_lr", "seed", "horizons",
                "branches", "tokens", "flops"):
        assert key in wsd
    assert wsd["family"] == "wsd"
    assert wsd["branches"][0] == {"name": "trunk", "fork_step": None, "steps": 1280, "horizons": []}
    assert wsd["branches"][1] == {"name": "h=100", "fork_step": 80, "steps": 20, "horizons": [100]}
    for row, lineage in zip(data["lineages"], p.lineages, strict=True):
        assert LineageSpec.from_dict(row["spec"]) == lineage


def test_render_plan_has_a_row_per_lineage_and_a_saving_footer() -> None:
    from rich.console import Console

    p = planned(schedules=WSD20, seeds=[0, 1])
    table = render_plan(p)
    assert table.row_count == 2
    console = Console(width=200, record=True)
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
