"""Schedules against per-step tables of expected values (each row says why)."""

from __future__ import annotations

import math

import pytest

from trials.errors import ConfigError
from trials.schedules import SCHEDULES, WSD, build_schedule

# (name, params, warmup, horizon, step, expected multiplier)
TABLE = [
    # warmup is (t + 1) / W: never zero, reaches 1 at t = W - 1
    ("constant", {}, 4, None, 0, 0.25),  # first warmup step
    ("constant", {}, 4, None, 3, 1.0),  # last warmup step hits the peak
    ("constant", {}, 4, None, 1000, 1.0),  # horizon-free: flat forever
    ("constant", {}, 0, None, 0, 1.0),  # no warmup
    # cosine to f = 0.1 over W = 10, T = 110: p = (t - 10) / 100
    ("cosine", {"final_fraction": 0.1}, 10, 110, 10, 1.0),  # p = 0: peak
    ("cosine", {"final_fraction": 0.1}, 10, 110, 60, 0.55),  # p = 1/2: f + (1 - f)/2
    ("cosine", {"final_fraction": 0.1}, 10, 110, 109, 0.1 + 0.9 * (1 + math.cos(math.pi * 0.99)) / 2),  # last update
    ("cosine", {"final_fraction": 0.0}, 0, 100, 100, 0.0),  # at T: the floor
    ("cosine", {"final_fraction": 0.1}, 10, 110, 500, 0.1),  # past T: stays at the floor
    # linear to zero over W = 0, T = 100
    ("linear", {}, 0, 100, 0, 1.0),
    ("linear", {}, 0, 100, 25, 0.75),
    ("linear", {"final_fraction": 0.2}, 0, 100, 50, 0.6),  # f + (1 - f)(1 - 1/2)
    # WSD, c = 0.2, T = 100: S = 100 - 20 = 80
    ("wsd", {"cooldown_shape": "linear"}, 5, 100, 79, 1.0),  # last trunk step
    ("wsd", {"cooldown_shape": "linear"}, 5, 100, 80, 1.0),  # decay start: q = 0
    ("wsd", {"cooldown_shape": "linear"}, 5, 100, 90, 0.5),  # q = 1/2
    ("wsd", {"cooldown_shape": "cosine"}, 5, 100, 90, 0.5),  # (1 + cos(pi/2))/2
    ("wsd", {"cooldown_shape": "1-sqrt"}, 5, 100, 95, 1 - math.sqrt(0.75)),  # q = 3/4
    ("wsd", {"cooldown_shape": "1-sqrt"}, 5, 100, 99, 1 - math.sqrt(0.95)),  # last update
    ("wsd", {"cooldown_shape": "1-sqrt"}, 5, 100, 100, 0.0),  # at T: zero
    ("wsd", {"cooldown_shape": "linear"}, 5, 100, 2, 0.6),  # still warming up: 3/5
    # inverse_sqrt with tau = W = 4: sqrt(4 / t) after warmup
    ("inverse_sqrt", {}, 4, None, 4, 1.0),
    ("inverse_sqrt", {}, 4, None, 16, 0.5),
    ("inverse_sqrt", {"tau": 100.0}, 0, None, 400, 0.5),
    # polynomial: (1 + (t - W)/t0)^-gamma
    ("polynomial", {"gamma": 0.5, "t0": 10.0}, 2, None, 2, 1.0),  # right after warmup
    ("polynomial", {"gamma": 0.5, "t0": 10.0}, 2, None, 32, 0.5),  # 1 + 30/10 = 4
    ("polynomial", {"gamma": 1.0, "t0": 1.0}, 0, None, 9, 0.1),  # 1/(1 + 9)
    ("polynomial", {"gamma": 0.0, "t0": 1.0}, 0, None, 9, 1.0),  # gamma 0 is constant
]


@pytest.mark.parametrize(("name", "params", "warmup", "horizon", "step", "expected"), TABLE)
def test_per_step_table(name, params, warmup, horizon, step, expected):
    schedule = build_schedule(name, warmup=warmup, **params)
    assert schedule.multiplier(step, horizon) == pytest.approx(expected, abs=1e-12)


def test_wsd_decay_start_rounding_and_warmup_floor():
    wsd = WSD(warmup=0, cooldown_fraction=0.2)
    assert [wsd.decay_start(t) for t in (100, 200, 400, 800, 1600)] == [80, 160, 320, 640, 1280]
    assert WSD(warmup=0, cooldown_fraction=0.25).decay_start(10) == 8  # round(2.5) = 2 (half to even)
    assert WSD(warmup=90, cooldown_fraction=0.5).decay_start(100) == 90  # never before warmup ends
    assert WSD(warmup=0, cooldown_fraction=1.0).decay_start(100) == 0  # all cooldown


def test_wsd_trunk_is_shared_by_every_horizon():
    wsd = WSD(warmup=10, cooldown_fraction=0.2)
    for t in range(0, 160):  # before the earliest decay start of horizons 200 and 400
        assert wsd.multiplier(t, 200) == wsd.multiplier(t, 400)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
class TestScheduleContract:
    """Every schedule: multipliers in [0, 1], warmup as documented, horizon-free flag honest."""

    def test_range_and_warmup(self, name):
        schedule = build_schedule(name, warmup=8)
        horizon = None if schedule.horizon_free else 100
        values = [schedule.multiplier(t, horizon) for t in range(120)]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert values[:8] == pytest.approx([(t + 1) / 8 for t in range(8)])

    def test_horizon_flag(self, name):
        schedule = build_schedule(name, warmup=0)
        if schedule.horizon_free:
            assert schedule.multiplier(50, 60) == schedule.multiplier(50, 1000) == schedule.multiplier(50)
        else:
            assert schedule.multiplier(90, 100) != schedule.multiplier(90, 1000)
            with pytest.raises(ConfigError, match="horizon"):
                schedule.multiplier(5)


@pytest.mark.parametrize(
    ("name", "params", "warmup", "match"),
    [
        ("cosine_typo", {}, 0, r"schedule\.name must be one of \['constant', 'cosine'"),
        ("wsd", {"cooldown_fraction": 0.0}, 0, r"schedule\.cooldown_fraction must be a number in \(0, 1\], got 0\.0"),
        ("wsd", {"cooldown_fraction": 1.5}, 0, r"schedule\.cooldown_fraction must be a number in \(0, 1\], got 1\.5"),
        ("wsd", {"cooldown_shape": "sqrt"}, 0, r"schedule\.cooldown_shape must be one of \['1-sqrt', 'cosine', 'linear'\], got 'sqrt'"),
        ("cosine", {"final_fraction": -0.1}, 0, r"schedule\.final_fraction must be a number in \[0, 1\]"),
        ("polynomial", {"gamma": 2.0}, 0, r"schedule\.gamma must be a number in \[0, 1\], got 2\.0"),
        ("polynomial", {"t0": 0}, 0, r"schedule\.t0 must be a number > 0, got 0"),
        ("constant", {}, -1, r"schedule\.warmup must be an integer >= 0, got -1"),
        ("cosine", {"bogus": 1}, 0, r"schedule\.bogus must be a parameter of 'cosine'"),
    ],
)
def test_bad_input_names_field_and_value(name, params, warmup, match):
    with pytest.raises(ConfigError, match=match):
        build_schedule(name, warmup=warmup, **params)


def test_warmup_longer_than_horizon_is_an_error():
    with pytest.raises(ConfigError, match=r"horizon must be an integer > warmup \(100\), got 50"):
        build_schedule("cosine", warmup=100).multiplier(10, 50)
