"""Averagers against closed forms, and the contract every averager kind keeps inside an AveragerSet.

Convention (trials/averaging/_base.py): ``update(step)`` is called with step = 1, 2, ... after each
optimizer update; ``theta[s - 1]`` below is the iterate after ``s`` updates.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import re
from typing import ClassVar

import pytest
import torch

from trials.averaging import (
    AVERAGERS,
    EMA,
    AveragerSet,
    AveragerSpec,
    build_averager,
    default_label,
)
from trials.errors import ConfigError

SHAPES = [(4, 3), (5,), (2, 3, 2)]


def make_params(dtype: torch.dtype = torch.float32, device: str = "cpu") -> list[torch.Tensor]:
    return [torch.nn.Parameter(torch.zeros(s, dtype=dtype, device=device)) for s in SHAPES]


def make_iterates(n: int, seed: int = 0) -> list[list[torch.Tensor]]:
    """A float32 random walk, like SGD iterates: theta_s = theta_{s-1} + noise."""
    g = torch.Generator().manual_seed(seed)
    current = [torch.randn(s, generator=g) for s in SHAPES]
    out = []
    for _ in range(n):
        current = [c + 0.1 * torch.randn(s, generator=g) for c, s in zip(current, SHAPES, strict=True)]
        out.append([c.clone() for c in current])
    return out


def drive(aset: AveragerSet, params: list[torch.Tensor], iterates: list[list[torch.Tensor]], first_step: int = 1) -> None:
    """Load each iterate into the live params, then call update as a training loop would."""
    for i, theta in enumerate(iterates):
        with torch.no_grad():
            for p, t in zip(params, theta, strict=True):
                p.copy_(t)
        aset.update(first_step + i)


def weighted(iterates: list[list[torch.Tensor]], weights: list[float]) -> list[torch.Tensor]:
    """sum_s w_s theta_s in float64."""
    assert math.isclose(sum(weights), 1.0, rel_tol=1e-12)
    return [
        sum(w * theta[i].double() for w, theta in zip(weights, iterates, strict=True))  # type: ignore[misc]
        for i in range(len(SHAPES))
    ]


def stack_mean(iterates: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.stack([theta[i].double() for theta in iterates]).mean(0) for i in range(len(SHAPES))]


def assert_close(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a.double(), e.double(), rtol=1e-5, atol=1e-6)


def assert_equal(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == e.dtype and torch.equal(a, e)


def run_one(spec: AveragerSpec, iterates: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    params = make_params()
    aset = AveragerSet(params, [spec])
    drive(aset, params, iterates)
    return aset.weights(aset.labels[0])


# ---------------------------------------------------------------------------------------------
# Contract: every averager kind, inside an AveragerSet.


class AveragerContract:
    """Claims every averager kind must satisfy; subclasses set ``spec`` (optuna-style suite)."""

    spec: ClassVar[AveragerSpec]
    steps: ClassVar[int] = 100

    def test_resume_equals_uninterrupted_bit_for_bit(self) -> None:
        iterates = make_iterates(self.steps, seed=1)
        params = make_params()
        whole = AveragerSet(params, [self.spec])
        drive(whole, params, iterates)

        params_a = make_params()
        first = AveragerSet(params_a, [self.spec])
        drive(first, params_a, iterates[:40])
        buf = io.BytesIO()
        torch.save(first.state_dict(), buf)
        buf.seek(0)
        params_b = make_params()
        resumed = AveragerSet(params_b, [self.spec])
        resumed.load_state_dict(torch.load(buf, weights_only=True))
        drive(resumed, params_b, iterates[40:], first_step=41)

        label = whole.labels[0]
        assert resumed.last_step == whole.last_step == self.steps
        assert resumed.averager(label).count == whole.averager(label).count
        assert_equal(resumed.weights(label), whole.weights(label))

    def test_swapped_loads_the_average_and_restores_exactly(self) -> None:
        iterates = make_iterates(30, seed=2)
        params = make_params()
        aset = AveragerSet(params, [self.spec])
        drive(aset, params, iterates)
        label = aset.labels[0]
        before = [p.detach().clone() for p in params]
        with aset.swapped(label):
            assert_equal([p.detach() for p in params], aset.weights(label))
            assert not torch.equal(params[0], before[0])  # the average differs from the last iterate
        assert_equal([p.detach() for p in params], before)

    def test_swapped_restores_when_the_body_raises(self) -> None:
        iterates = make_iterates(30, seed=3)
        params = make_params()
        aset = AveragerSet(params, [self.spec])
        drive(aset, params, iterates)
        before = [p.detach().clone() for p in params]
        with pytest.raises(ZeroDivisionError):
            with aset.swapped(aset.labels[0]):
                with torch.no_grad():
                    params[1].mul_(7.0)  # the body may even scribble on the weights
                1 / 0  # noqa: B018  (the body raises)
        assert_equal([p.detach() for p in params], before)

    def test_float64_cpu_storage_equals_averaging_float64_params(self) -> None:
        """Storage apart from the params goes through the staging copy; the result must be exactly
        what averaging params of the storage dtype gives (float32 -> float64 is exact)."""
        iterates = make_iterates(50, seed=4)
        params32 = make_params(torch.float32)
        staged = AveragerSet(params32, [self.spec], device="cpu", dtype=torch.float64)
        drive(staged, params32, iterates)
        params64 = make_params(torch.float64)
        direct = AveragerSet(params64, [self.spec], dtype=torch.float64)
        drive(direct, params64, iterates)
        label = staged.labels[0]
        assert all(t.dtype == torch.float64 and t.device.type == "cpu" for t in staged.weights(label))
        assert_equal(staged.weights(label), direct.weights(label))
        with staged.swapped(label):  # swapping converts back to the params' dtype
            assert all(p.dtype == torch.float32 for p in params32)
            assert_equal([p.detach() for p in params32], [w.float() for w in staged.weights(label)])

    def test_clone_forks_exactly_and_independently(self) -> None:
        iterates = make_iterates(60, seed=5)
        params = make_params()
        trunk = AveragerSet(params, [self.spec])
        drive(trunk, params, iterates[:30])
        label = trunk.labels[0]
        at_fork = [t.clone() for t in trunk.weights(label)]

        branch_params = make_params()
        branch = trunk.clone(branch_params)
        drive(branch, branch_params, make_iterates(30, seed=99), first_step=31)  # a different branch
        assert_equal(trunk.weights(label), at_fork)  # the trunk did not move

        drive(trunk, params, iterates[30:], first_step=31)
        twin = copy.deepcopy(trunk)
        drive(twin, twin._params, make_iterates(5, seed=7), first_step=61)
        replay_params = make_params()
        replay = AveragerSet(replay_params, [self.spec])
        drive(replay, replay_params, iterates)
        assert_equal(trunk.weights(label), replay.weights(label))  # deepcopy left it alone too

    def test_constant_iterates_average_to_that_constant(self) -> None:
        theta = make_iterates(1, seed=6)[0]
        assert_close(run_one(self.spec, [theta] * 40), theta)

    def test_eval_at_gates_readiness_and_freezes_the_average(self) -> None:
        spec = dataclasses.replace(self.spec, eval_at=50)
        iterates = make_iterates(80, seed=8)
        params = make_params()
        aset = AveragerSet(params, [spec])
        label = aset.labels[0]
        drive(aset, params, iterates[:49])
        assert not aset.is_ready(label, 49)
        drive(aset, params, iterates[49:50], first_step=50)
        assert aset.is_ready(label, 50) and aset.ready_labels(50) == [label]
        at_eval = [t.clone() for t in aset.weights(label)]
        drive(aset, params, iterates[50:], first_step=51)
        assert not aset.is_ready(label, 80)
        assert_equal(aset.weights(label), at_eval)

    def test_not_ready_and_not_swappable_before_any_update(self) -> None:
        aset = AveragerSet(make_params(), [self.spec])
        label = aset.labels[0]
        assert label == default_label(self.spec.kind, self.spec.params)
        assert not aset.is_ready(label, 0)
        with pytest.raises(RuntimeError, match="has no data yet"):
            with aset.swapped(label):
                pass


class TestEMAStepsContract(AveragerContract):
    spec = AveragerSpec(kind="ema", params={"half_life": 7})


class TestEMAFractionContract(AveragerContract):
    spec = AveragerSpec(kind="ema", params={"half_life": 0.1})


class TestSWAContract(AveragerContract):
    spec = AveragerSpec(kind="swa", params={"start": 10, "every": 3})


class TestLAWAContract(AveragerContract):
    spec = AveragerSpec(kind="lawa", params={"k": 4, "every": 5})


class TestPolyContract(AveragerContract):
    spec = AveragerSpec(kind="poly", params={"q": 1.5})


def test_every_registered_kind_runs_the_contract() -> None:
    covered = {cls.spec.kind for cls in AveragerContract.__subclasses__()}
    assert covered == set(AVERAGERS)


# ---------------------------------------------------------------------------------------------
# Known answers, kind by kind.


def test_ema_fixed_half_life_equals_closed_form() -> None:
    h, T = 7, 50
    delta = 2.0 ** (-1.0 / h)
    assert EMA(half_life=h).decay(123) == delta
    assert math.isclose(delta**h, 0.5)  # half the weight is older than h steps
    iterates = make_iterates(T, seed=10)
    # warm start a_1 = theta_1:  a_T = delta^(T-1) theta_1 + (1 - delta) sum_{s=2..T} delta^(T-s) theta_s
    w = [delta ** (T - 1)] + [(1 - delta) * delta ** (T - s) for s in range(2, T + 1)]
    assert_close(run_one(AveragerSpec(kind="ema", params={"half_life": h}), iterates), weighted(iterates, w))
    # the first update copies the iterate exactly
    assert_equal(run_one(AveragerSpec(kind="ema", params={"half_life": h}), iterates[:1]), iterates[0])


def test_ema_fraction_of_time_equals_product_form() -> None:
    f, T = 0.1, 60
    ema = EMA(half_life=f)
    for s in (1, 10, 37):
        # delta_s = 0.5^(G/s), G = 1/f: the half-life after s updates is f * s steps
        assert math.isclose(ema.decay(s) ** (f * s), 0.5)
    iterates = make_iterates(T, seed=11)
    d = [0.5 ** (1.0 / (f * s)) for s in range(1, T + 1)]  # d[s-1] = delta_s

    def tail(s: int) -> float:  # prod_{r=s+1..T} delta_r
        return math.prod(d[r - 1] for r in range(s + 1, T + 1))

    w = [tail(1)] + [(1 - d[s - 1]) * tail(s) for s in range(2, T + 1)]
    assert_close(run_one(AveragerSpec(kind="ema", params={"half_life": f}), iterates), weighted(iterates, w))


def test_swa_is_the_mean_of_the_iterates_after_start() -> None:
    iterates = make_iterates(30, seed=12)
    spec = AveragerSpec(kind="swa", params={"start": 7})
    assert_close(run_one(spec, iterates), stack_mean(iterates[7:]))  # steps 8..30
    params = make_params()
    aset = AveragerSet(params, [spec])
    drive(aset, params, iterates[:7])
    assert not aset.is_ready("swa@7", 7)  # nothing yet at the start step itself
    drive(aset, params, iterates[7:8], first_step=8)
    assert aset.is_ready("swa@7", 8)
    assert_equal(aset.weights("swa@7"), iterates[7])


def test_swa_every_m_averages_steps_start_plus_multiples_of_m() -> None:
    iterates = make_iterates(30, seed=13)
    spec = AveragerSpec(kind="swa", params={"start": 7, "every": 3})
    taken = [iterates[s - 1] for s in range(10, 31, 3)]  # steps 10, 13, ..., 28
    assert_close(run_one(spec, iterates), stack_mean(taken))


def test_swa_from_zero_is_poly_zero() -> None:
    iterates = make_iterates(25, seed=14)
    swa = run_one(AveragerSpec(kind="swa", params={"start": 0}), iterates)
    assert_equal(swa, run_one(AveragerSpec(kind="poly", params={"q": 0}), iterates))


def test_lawa_is_the_mean_of_the_last_k_snapshots_every_m() -> None:
    iterates = make_iterates(29, seed=15)
    spec = AveragerSpec(kind="lawa", params={"k": 4, "every": 3})
    # snapshots at steps 3, 6, ..., 27; the last four are 18, 21, 24, 27
    assert_close(run_one(spec, iterates), stack_mean([iterates[s - 1] for s in (18, 21, 24, 27)]))
    # with fewer than k snapshots (steps 3 and 6) it is the mean of those
    assert_close(run_one(spec, iterates[:8]), stack_mean([iterates[2], iterates[5]]))


def test_poly_zero_is_the_uniform_mean() -> None:
    iterates = make_iterates(40, seed=16)
    assert_close(run_one(AveragerSpec(kind="poly", params={"q": 0}), iterates), stack_mean(iterates))


@pytest.mark.parametrize(
    "q, weight",
    [
        (1, lambda j: j + 1),  # iterate j = 0, 1, ... (the j-th absorbed, step j + 1)
        (2, lambda j: (j + 1) * (j + 2)),
        (0.5, lambda j: math.exp(math.lgamma(j + 1.5) - math.lgamma(j + 1))),  # Gamma(j+q+1)/Gamma(j+1)
    ],
)
def test_poly_weights_iterate_j_by_gamma_ratio(q: float, weight) -> None:  # type: ignore[no-untyped-def]
    T = 40
    iterates = make_iterates(T, seed=17)
    raw = [weight(j) for j in range(T)]
    w = [x / sum(raw) for x in raw]
    assert_close(run_one(AveragerSpec(kind="poly", params={"q": q}), iterates), weighted(iterates, w))


# ---------------------------------------------------------------------------------------------
# The set: labels, steps, fused updates, state checks.


def test_labels_in_spec_order_custom_label_wins() -> None:
    specs = [
        AveragerSpec(kind="ema", params={"half_life": 0.05}),
        AveragerSpec(kind="ema", params={"half_life": 200}),
        AveragerSpec(kind="swa", params={"start": 500}),
        AveragerSpec(kind="swa", params={"start": 500, "every": 5}),
        AveragerSpec(kind="lawa", params={"k": 5, "every": 10}),
        AveragerSpec(kind="poly", params={"q": 1.0}),
        AveragerSpec(kind="swa", params={"start": 800}, label="tail@0.2", eval_at=1000),
    ]
    aset = AveragerSet(make_params(), specs)
    assert aset.labels == ["ema@0.05", "ema@200", "swa@500", "swa@500/5", "lawa@5x10", "poly@1", "tail@0.2#1000"]
    assert aset.weights_label("tail@0.2#1000") == "tail@0.2"
    with pytest.raises(KeyError, match="no averager labelled 'ema@1'"):
        aset.is_ready("ema@1", 1)


def test_one_fused_call_per_active_averager_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_lerp, real_copy = torch._foreach_lerp_, torch._foreach_copy_
    monkeypatch.setattr(torch, "_foreach_lerp_", lambda *a, **k: calls.append(1) or real_lerp(*a, **k))
    monkeypatch.setattr(torch, "_foreach_copy_", lambda *a, **k: calls.append(1) or real_copy(*a, **k))
    specs = [
        AveragerSpec(kind="ema", params={"half_life": 10}),
        AveragerSpec(kind="ema", params={"half_life": 0.05}),
        AveragerSpec(kind="swa", params={"start": 4}),
        AveragerSpec(kind="lawa", params={"k": 2, "every": 3}),
    ]
    params = make_params()
    aset = AveragerSet(params, specs)
    drive(aset, params, make_iterates(6))  # first touch allocates; no foreach calls counted yet for some
    calls.clear()
    aset.update(7)  # ema, ema, swa active; lawa not (7 % 3)
    assert len(calls) == 3
    calls.clear()
    aset.update(9)  # all four
    assert len(calls) == 4


def test_step_must_increase() -> None:
    aset = AveragerSet(make_params(), [AveragerSpec(kind="poly", params={"q": 0})])
    aset.update(3)
    with pytest.raises(ValueError, match="step must increase: got 3 after 3"):
        aset.update(3)


def test_load_state_dict_rejects_a_different_set() -> None:
    a = AveragerSet(make_params(), [AveragerSpec(kind="ema", params={"half_life": 10}, label="x")])
    b = AveragerSet(make_params(), [AveragerSpec(kind="ema", params={"half_life": 20}, label="x")])
    with pytest.raises(ValueError, match="averager 'x': state is"):
        b.load_state_dict(a.state_dict())
    c = AveragerSet(make_params(), [AveragerSpec(kind="ema", params={"half_life": 10}, label="y")])
    with pytest.raises(ValueError, match=re.escape("state has averagers ['x'], this set has ['y']")):
        c.load_state_dict(a.state_dict())


def test_build_averager_returns_the_registered_class() -> None:
    for kind, params in [("ema", {"half_life": 3}), ("swa", {}), ("lawa", {"k": 2}), ("poly", {"q": 1})]:
        averager = build_averager(AveragerSpec(kind=kind, params=params))
        assert type(averager) is AVERAGERS[kind] and averager.count == 0


# ---------------------------------------------------------------------------------------------
# Bad input: ConfigError naming the field, the value and what was expected.

_HALF_LIFE = "a number > 0 (< 1: a fraction of the steps so far; >= 1: a number of steps)"


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("emma", {}, "averagers.kind must be one of ['ema', 'lawa', 'poly', 'swa'], got 'emma'"),
        ("ema", {"half_life": 0}, f"averagers.half_life must be {_HALF_LIFE}, got 0"),
        ("ema", {"half_life": -5}, f"averagers.half_life must be {_HALF_LIFE}, got -5"),
        ("ema", {"half_life": float("nan")}, f"averagers.half_life must be {_HALF_LIFE}, got nan"),
        ("ema", {"half_life": "200"}, f"averagers.half_life must be {_HALF_LIFE}, got '200'"),
        ("ema", {"half_life": True}, f"averagers.half_life must be {_HALF_LIFE}, got True"),
        ("ema", {}, "averagers.half_life must be given for kind 'ema', got None"),
        ("ema", {"half_life": 5, "decay": 0.9}, "averagers.decay must be a parameter of 'ema': one of ['half_life'], got 0.9"),
        ("swa", {"start": -1}, "averagers.start must be an integer >= 0, got -1"),
        ("swa", {"start": 0.2}, "averagers.start must be an integer >= 0, got 0.2"),
        ("swa", {"every": 0}, "averagers.every must be an integer >= 1, got 0"),
        ("lawa", {"k": 0, "every": 5}, "averagers.k must be an integer >= 1, got 0"),
        ("lawa", {"every": 5}, "averagers.k must be given for kind 'lawa', got None"),
        ("poly", {"q": -0.5}, "averagers.q must be a number >= 0, got -0.5"),
    ],
)
def test_bad_specs_raise_config_error(kind: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_averager(AveragerSpec(kind=kind, params=params))
    with pytest.raises(ConfigError, match=re.escape(message)):
        default_label(kind, params)
    with pytest.raises(ConfigError, match=re.escape(message)):
        AveragerSet(make_params(), [AveragerSpec(kind=kind, params=params)])


def test_duplicate_labels_and_bad_eval_at_raise() -> None:
    ema = AveragerSpec(kind="ema", params={"half_life": 200})
    with pytest.raises(ConfigError, match=re.escape("averagers.label must be unique within a lineage (per eval_at), got 'ema@200'")):
        AveragerSet(make_params(), [ema, ema])
    # one label per horizon is fine when each copy is read at its own horizon
    per_horizon = [dataclasses.replace(ema, eval_at=h) for h in (100, 200)]
    assert AveragerSet(make_params(), per_horizon).labels == ["ema@200#100", "ema@200#200"]
    with pytest.raises(ConfigError, match=re.escape("averagers.eval_at must be an integer >= 1 or None, got 0")):
        AveragerSet(make_params(), [dataclasses.replace(ema, eval_at=0)])


# ---------------------------------------------------------------------------------------------
# Devices and speed.


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_params_with_cpu_averages_equal_an_all_cpu_run() -> None:
    specs = [
        AveragerSpec(kind="ema", params={"half_life": 0.05}),
        AveragerSpec(kind="swa", params={"start": 5}),
        AveragerSpec(kind="lawa", params={"k": 3, "every": 2}),
        AveragerSpec(kind="poly", params={"q": 1}),
    ]
    iterates = make_iterates(30, seed=20)
    gpu_params = make_params(device="cuda")
    on_cpu = AveragerSet(gpu_params, specs, device="cpu")
    drive(on_cpu, gpu_params, [[t.cuda() for t in theta] for theta in iterates])
    cpu_params = make_params()
    reference = AveragerSet(cpu_params, specs)
    drive(reference, cpu_params, iterates)
    before = [p.detach().clone() for p in gpu_params]
    for label in on_cpu.labels:
        assert all(t.device.type == "cpu" for t in on_cpu.weights(label))
        assert_equal(on_cpu.weights(label), reference.weights(label))
        with on_cpu.swapped(label):
            assert_equal([p.detach().cpu() for p in gpu_params], reference.weights(label))
        assert_equal([p.detach() for p in gpu_params], before)
