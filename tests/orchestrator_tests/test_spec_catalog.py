"""The sweep-file models are generated from the catalogs: every optimizer hyperparameter is checked
against its card when the spec loads, and a catalog entry is all a new optimizer needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.spec import SpecError, SweepSpec, optimizer_entry_models, parse_spec, sweep_model
from orchestrator.spec.errors import describe_error
from trials import catalog
from trials.catalog import Bounds, OptimizerCard, Param

MINIMAL: dict[str, Any] = {
    "name": "t", "warmup": 10, "batch_size": 16,
    "workload": {"name": "char_gpt", "sizes": ["nano"]},
    "optimizers": [{"name": "adamw", "lr": [1e-3]}],
    "schedules": [{"name": "cosine"}],
    "horizons": {"steps": [100, 200]},
}


def with_optimizer(name: str, params: dict[str, Any] | None = None, **entry: Any) -> dict[str, Any]:
    card = catalog.OPTIMIZERS.get(name)
    spec = {**MINIMAL, "optimizers": [{"name": name, "lr": 1e-3, **({"params": params} if params is not None else {}),
                                       **entry}]}
    if card is not None and card.schedule_free:
        spec.pop("schedules")
    return spec


MALFORMED = [  # optimizer, params, the one line
    ("adamw", {"betas": [0.9, 1.5]}, "optimizers[0].params.betas must be two numbers in [0, 1), got [0.9, 1.5]"),
    ("adamw", {"betas": [[0.9, 0.95], [0.9, 1.0]]},
     "optimizers[0].params.betas[1] must be two numbers in [0, 1), got [0.9, 1.0]"),
    ("adamw", {"betas": [0.9]}, "optimizers[0].params.betas must be two numbers in [0, 1), got [0.9]"),
    ("adamw", {"betas": 0.9}, "optimizers[0].params.betas must be two numbers in [0, 1), got 0.9"),
    ("adamw", {"weight_decay": "0.1"}, "optimizers[0].params.weight_decay must be a number >= 0, got '0.1'"),
    ("adamw", {"weight_decay": -0.1}, "optimizers[0].params.weight_decay must be a number >= 0, got -0.1"),
    ("adamw", {"weight_decay": True}, "optimizers[0].params.weight_decay must be a number >= 0, got True"),
    ("adamw", {"weight_decay": [0.0, float("inf")]},
     "optimizers[0].params.weight_decay[1] must be a number >= 0, got inf"),
    ("adamw", {"eps": float("nan")}, "optimizers[0].params.eps must be a number > 0, got nan"),
    ("adamw", {"eps": 0.0}, "optimizers[0].params.eps must be a number > 0, got 0.0"),
    ("adamw", {"grad_clip": -1.0}, "optimizers[0].params.grad_clip must be a number > 0, got -1.0"),
    ("adamw", {"wieght_decay": 0.1}, "optimizers[0].params.wieght_decay must be a hyperparameter of 'adamw': "
                                     "one of ['betas', 'eps', 'grad_clip', 'weight_decay'], got 0.1"),
    ("sgd", {"momentum": 1.0}, "optimizers[0].params.momentum must be a number in [0, 1), got 1.0"),
    ("sgd", {"nesterov": True, "momentum": [0.0, 0.9]},
     "optimizers[0].params.nesterov must be false when momentum is 0 (Nesterov needs momentum > 0), got True"),
    ("sf_adamw", {"betas": [0.0, 0.999]},
     "optimizers[0].params.betas must be two numbers, the first in (0, 1) and the second in [0, 1), got [0.0, 0.999]"),
    ("sf_adamw", {"warmup_steps": 5}, "optimizers[0].params.warmup_steps: set the warmup with the top-level `warmup` key"),
    ("sf_adamw_refined", None, "optimizers[0].params.C: 'sf_adamw_refined' has no default for it: give a number > 0"),
    ("sf_adamw_refined", {"C": -1.0}, "optimizers[0].params.C must be a number > 0, got -1.0"),
    ("sf_sgd", {"momentum": 0.0}, "optimizers[0].params.momentum must be a number in (0, 1), got 0.0"),
    ("sf_plus", {"polyak_beta": 1.0}, "optimizers[0].params.polyak_beta must be a number in [0, 1), got 1.0"),
    ("sf_plus", {"c_warmup": 2.5}, "optimizers[0].params.c_warmup must be an integer >= 0, got 2.5"),
    ("muon", {"ns_dtype": "fp8"},
     "optimizers[0].params.ns_dtype must be one of ['bfloat16', 'float32', 'float64'], got 'fp8'"),
    ("muon", {"ns_steps": 100}, "optimizers[0].params.ns_steps must be an integer in [1, 100), got 100"),
    ("normuon", {"beta2": 1.0}, "optimizers[0].params.beta2 must be a number in [0, 1), got 1.0"),
    ("normuon", {"lr_convention": "rms"},
     "optimizers[0].params.lr_convention must be one of ['restore_norm', 'rms_0.2'], got 'rms'"),
    ("sf_normuon", {"decay_at": "x"}, "optimizers[0].params.decay_at must be one of ['y', 'z'], got 'x'"),
    ("sf_normuon", {"adamw_lr": -3e-4}, "optimizers[0].params.adamw_lr must be a number >= 0, got -0.0003"),
]


@pytest.mark.parametrize(("name", "params", "line"), MALFORMED, ids=[f"{m[0]}-{m[2].split()[0]}" for m in MALFORMED])
def test_malformed_hyperparameters_fail_at_load_with_one_line(name: str, params: Any, line: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(with_optimizer(name, params))
    assert str(info.value) == line


@pytest.mark.parametrize(("name", "params"), [
    ("normuon", {"lr_convention": "rms_0.2", "beta2": [0.9, 0.95], "ns_dtype": "float32"}),
    ("sf_normuon", {"decay_at": ["z", "y"], "weight_decay": 0.1, "betas": [0.9, 0.95]}),
    ("sf_adamw_refined", {"C": [10.0, 20.0], "betas": [0.9, 0.95]}),
    ("sf_plus", {"weight_decay": 20.0, "c_warmup": 10, "r": 2.0}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "grad_clip": 1.0}),
])
def test_the_seed_optimizers_load_and_expand_to_their_grid(name: str, params: dict[str, Any]) -> None:
    spec = parse_spec(with_optimizer(name, params))
    entry = spec.optimizers[0]
    axes = {k: (v if isinstance(v, list) and (k != "betas" or isinstance(v[0], list)) else [v]) for k, v in params.items()}
    n = 1
    for axis in axes.values():
        n *= len(axis)
    assert entry.schedule_free == catalog.OPTIMIZERS[name].schedule_free
    assert len(entry.settings()) == n
    assert {k for _, hyper in entry.settings() for k in hyper} == set(params)
    assert spec.model_dump()["optimizers"][0]["params"] == entry.params.axes()  # only what the file says


# ---------------------------------------------------------------------------------- a new card
@pytest.fixture
def dummy_optimizer() -> Iterator[OptimizerCard]:
    """A schedule-free optimizer that exists only in the catalog, for the duration of a test."""
    card = OptimizerCard(
        name="dummy_sf", summary="a test double", schedule_free=True, state_per_param=1,
        params=(Param(name="beta", kind="float", default=0.5, bounds=Bounds(0, 1, low_open=True, high_open=True)),
                Param(name="steps", kind="int", default=3, bounds=Bounds(1))),
    )
    catalog.OPTIMIZERS[card.name] = card
    try:
        yield card
    finally:
        del catalog.OPTIMIZERS[card.name]


def test_a_catalog_entry_is_all_a_sweep_file_needs(dummy_optimizer: OptimizerCard) -> None:
    assert "dummy_sf" in optimizer_entry_models()
    model = sweep_model()
    assert model is not SweepSpec and issubclass(model, SweepSpec)
    assert "dummy_sf" in str(model.model_json_schema())
    spec = parse_spec(with_optimizer("dummy_sf", {"beta": [0.25, 0.75]}))
    assert spec.schedules == [] and spec.optimizers[0].schedule_free  # schedule-free: no schedules wanted
    assert [hyper for _, hyper in spec.optimizers[0].settings()] == [{"beta": 0.25}, {"beta": 0.75}]
    with pytest.raises(SpecError, match=r"^optimizers\[0\]\.params\.beta\[1\] must be a number in \(0, 1\), got 1\.0$"):
        parse_spec(with_optimizer("dummy_sf", {"beta": [0.5, 1.0]}))
    with pytest.raises(SpecError, match=r"one of \['beta', 'grad_clip', 'steps'\], got 2"):
        parse_spec(with_optimizer("dummy_sf", {"stepz": 2}))
    with pytest.raises(SpecError, match=r"^optimizers\[0\]\.name must be one of \[.*'dummy_sf'.*\], got 'dummy'$"):
        parse_spec(with_optimizer("dummy"))


def test_without_its_entry_the_name_is_refused() -> None:
    assert sweep_model() is SweepSpec
    with pytest.raises(SpecError, match=r"^optimizers\[0\]\.name must be one of \['adamw', .*\], got 'dummy_sf'$"):
        parse_spec(with_optimizer("dummy_sf"))


def test_error_values_are_cut_short() -> None:
    line = describe_error({"type": "spec", "loc": ("name",), "ctx": {"field": "", "expected": "x", "got": "y"}})
    assert line == "name must be x, got y"
    with pytest.raises(SpecError) as info:
        parse_spec({**MINIMAL, "name": "n" * 100_000})
    assert len(str(info.value)) < 200 and "nnnn…nnnn" in str(info.value)  # the middle of the value cut
