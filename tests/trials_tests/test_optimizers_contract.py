"""The optimizer contract: one suite that every registered optimizer runs (optuna's
``BasicSamplerTestCase`` style). A new entry in ``OPTIMIZERS`` fails
``test_every_registered_optimizer_has_a_contract_case`` until it gets a ``CASES`` row.

Per optimizer, on a tiny char-GPT (embedding, hidden matrices, norms, biases, head) built through
``build_optimizer`` with non-default hyperparameters:

- fast equals its slow reference twin (written from the equations, ``trials.optimizers._reference*``)
  step by step, parameters and every shared state tensor, and ``x`` for schedule-free ones;
- ``state_dict()`` round-trips, and resuming from a checkpoint equals the uninterrupted run bit
  for bit;
- schedule-free ones: ``eval()`` puts ``x`` in the parameters (and :mod:`trials.eval_point` computes
  the same ``x``), ``train()`` restores ``y``, stepping in eval mode raises and says to call
  ``train()``; the others have no mode switch;
- bad hyperparameters fail ``build_optimizer`` with a ``ConfigError`` naming the argument.

Tolerances: rtol 1e-5 / atol 1e-6 (the schedule_free repository's own, docs/equations.md §1.3) for
the Adam/SGD family; the Newton–Schulz family's twins run the polar iteration in float64 against
the fast float32 one: rtol 1e-4 / atol 1e-6 there (checked: a twin with the wrong shape factor,
the decay at y instead of z or beta2 of the row moment off by 0.01 falls outside).
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from trials.errors import ConfigError
from trials.eval_point import schedule_free_x
from trials.optimizers import OPTIMIZERS, build_optimizer, is_schedule_free
from trials.optimizers._reference import (
    RefinedScheduleFreeAdamWReference,
    ScheduleFreeAdamWReference,
    ScheduleFreeSGDReference,
)
from trials.optimizers._reference_sf_plus import ScheduleFreePlusReference
from trials.optimizers._reference_spectral import (
    MuonReference,
    NorMuonReference,
    ScheduleFreeNorMuonReference,
)
from trials.optimizers._reference_torch import AdamWReference, SGDReference
from trials.workloads.gpt import GPT, GPTConfig

STEPS = 8
SF_TOL = dict(rtol=1e-5, atol=1e-6)
NS_TOL = dict(rtol=1e-4, atol=1e-6)


@dataclass(frozen=True)
class Case:
    lr: float
    hyper: dict[str, Any]
    twin: type
    tol: dict[str, float]
    bad: list[tuple[dict[str, Any], str]] = field(default_factory=list)


CASES: dict[str, Case] = {
    "adamw": Case(
        3e-3,
        dict(weight_decay=0.1, betas=(0.85, 0.99)),
        AdamWReference,
        SF_TOL,
        [
            (dict(betas=(0.9, 1.0)), r"Invalid beta parameter at index 1: 1\.0"),
            (dict(weight_decay=-0.1), r"Invalid weight_decay value: -0\.1"),
            (dict(eps="1e-8"), r"Invalid epsilon value: '1e-8'"),
            (dict(betas=0.9), r"Invalid betas: 0\.9"),
        ],
    ),
    "sgd": Case(
        0.1,
        dict(momentum=0.9, nesterov=True, weight_decay=0.01),
        SGDReference,
        SF_TOL,
        [
            (dict(momentum=-0.5), r"Invalid momentum value: -0\.5"),
            (dict(weight_decay="0.1"), r"Invalid weight_decay value: '0\.1'"),
            (dict(nesterov=1), r"Invalid nesterov: 1 \(must be True or False\)"),
        ],
    ),
    "sf_adamw": Case(
        0.01,
        dict(weight_decay=0.05, warmup_steps=3, r=0.5, inner_momentum=0.9, betas=(0.9, 0.99)),
        ScheduleFreeAdamWReference,
        SF_TOL,
        [
            (dict(betas=(0.9, 1.0)), r"Invalid beta2: 1\.0"),
            (dict(inner_momentum=1.0), r"Invalid inner_momentum: 1\.0"),
            (dict(warmup_steps=-1), r"Invalid warmup_steps: -1"),
            (dict(weight_decay=-0.1), r"Invalid weight_decay value: -0\.1"),
        ],
    ),
    "sf_adamw_refined": Case(
        0.01,
        dict(C=4.0, weight_decay=0.05, warmup_steps=3, betas=(0.9, 0.99)),
        RefinedScheduleFreeAdamWReference,
        SF_TOL,
        [
            (dict(C=0.0), r"Invalid C: 0\.0"),
            (dict(C="big"), r"Invalid C: 'big'"),
            (dict(C=4.0, betas=(1.0, 0.99)), r"Invalid beta1: 1\.0"),
        ],
    ),
    "sf_sgd": Case(
        0.5,
        dict(momentum=0.8, weight_decay=0.01, warmup_steps=3),
        ScheduleFreeSGDReference,
        SF_TOL,
        [
            (dict(momentum=1.0), r"Invalid momentum value: 1\.0"),
            (dict(r=-1), r"Invalid r: -1"),
        ],
    ),
    "sf_plus": Case(
        0.5,
        dict(
            betas=(0.8, 0.95),
            sf_beta1=0.9,
            weight_decay=5.0,
            r=1.0,
            polyak_beta=0.5,
            c_warmup=2,
            sf_beta1_anneal_steps=5,
            warmup_steps=3,
        ),
        ScheduleFreePlusReference,
        SF_TOL,
        [
            (dict(polyak_beta=1.0), r"Invalid polyak_beta: 1\.0"),
            (dict(sf_beta1=0.0), r"Invalid sf_beta1: 0\.0"),
            (dict(c_warmup=1.5), r"Invalid c_warmup: 1\.5"),
            (dict(eps=0.0), r"Invalid epsilon value: 0\.0"),
        ],
    ),
    "muon": Case(
        0.02,
        dict(weight_decay=0.1, adamw_lr=3e-3, adamw_weight_decay=0.1),
        MuonReference,
        NS_TOL,
        [
            (dict(momentum=1.0), r"Invalid momentum value: 1\.0"),
            (dict(ns_steps=0), r"Invalid ns_steps: 0"),
            (dict(adamw_weight_decay=-1.0), r"Invalid adamw_weight_decay: -1\.0"),
        ],
    ),
    "normuon": Case(
        0.02,
        dict(weight_decay=0.1, beta2=0.9, adamw_lr=3e-3, adamw_weight_decay=0.1),
        NorMuonReference,
        NS_TOL,
        [
            (dict(beta2=1.0), r"Invalid beta2: 1\.0"),
            (dict(lr_convention="rms"), r"Invalid lr_convention: 'rms'"),
            (dict(nesterov="yes"), r"Invalid nesterov: 'yes'"),
        ],
    ),
    "sf_normuon": Case(
        0.01,
        dict(weight_decay=0.1, warmup_steps=3, adamw_weight_decay=0.05, betas=(0.9, 0.9)),
        ScheduleFreeNorMuonReference,
        NS_TOL,
        [
            (dict(decay_at="x"), r"Invalid decay_at: 'x' \(must be one of 'y', 'z'\)"),
            (dict(decay_lr="max"), r"Invalid decay_lr: 'max'"),
            (dict(betas=(0.9, -0.1)), r"Invalid beta2: -0\.1"),
            (dict(ns_dtype="fp8"), r"optimizer\.ns_dtype must be None or one of"),
        ],
    ),
}
_MUTABLE = {
    "k", "train_mode", "weight_sum", "lr_max", "scheduled_lr", "grad_l1_ema", "ip_term",
    "function_value_ema", "sf_beta1_current", "base_lr",
}  # fmt: skip


def tiny_gpt(seed: int) -> GPT:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8))


def build(name: str, seed: int = 0) -> tuple[GPT, torch.optim.Optimizer]:
    case = CASES[name]
    model = tiny_gpt(seed)
    opt = build_optimizer(name, model, lr=case.lr, **case.hyper)
    if is_schedule_free(name):
        opt.train()
    return model, opt


def step(opt: torch.optim.Optimizer, params: list[torch.Tensor], t: int) -> None:
    """Pseudo-random gradients (a function of t and the weights) and, for ScheduleFree+, a loss."""
    gen = torch.Generator().manual_seed(1000 + t)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 0.1 + 0.05 * p.detach()
    if getattr(opt, "needs_loss", False):
        opt.step_func(2.0 / (1.0 + 0.3 * t))
    else:
        opt.step()


def twin_of(opt: torch.optim.Optimizer, twin_cls: type, model: GPT, twin_model: GPT):
    mapping = {id(p): q for p, q in zip(model.parameters(), twin_model.parameters(), strict=True)}
    groups = [
        {
            **{k: v for k, v in g.items() if k not in _MUTABLE and k != "params"},
            "params": [mapping[id(p)] for p in g["params"]],
        }
        for g in opt.param_groups
    ]
    twin = twin_cls(groups)
    if getattr(twin, "schedule_free", False):
        twin.train()
    return twin


def x_of(opt: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
    """x = (y − (1 − beta) z) / beta with the optimizer's own beta for p's group."""
    group = next(g for g in opt.param_groups if any(q is p for q in g["params"]))
    return torch.lerp(p.detach(), opt.state[p]["z"], 1 - 1 / opt.interpolation(group))


def test_every_registered_optimizer_has_a_contract_case():
    assert sorted(CASES) == sorted(OPTIMIZERS)
    assert all(len(case.bad) >= 2 for case in CASES.values())


@pytest.fixture(params=sorted(CASES))
def name(request) -> str:
    return request.param


class TestOptimizerContract:
    def test_fast_equals_reference_twin_step_by_step(self, name):
        model, opt = build(name)
        twin_model = tiny_gpt(0)
        twin = twin_of(opt, CASES[name].twin, model, twin_model)
        fast_params, twin_params = list(model.parameters()), list(twin_model.parameters())
        tol = CASES[name].tol
        for t in range(STEPS):
            step(opt, fast_params, t)
            step(twin, twin_params, t)
            for i, (p, q) in enumerate(zip(fast_params, twin_params, strict=True)):
                torch.testing.assert_close(
                    p, q, **tol, msg=lambda m, i=i, t=t: f"param {i} step {t}: {m}"
                )
                shared = set(opt.state[p]) & set(twin.state[q])
                assert shared, f"param {i}: no state in common"
                for key in sorted(shared):
                    a, b = opt.state[p][key], twin.state[q][key]
                    if torch.is_tensor(a) and a.ndim > 0:
                        torch.testing.assert_close(
                            a, b, **tol, msg=lambda m, key=key: f"{key}: {m}"
                        )
                    else:
                        assert float(a) == float(b), key
                if is_schedule_free(name):
                    torch.testing.assert_close(x_of(opt, p), twin.state[q]["x"], **tol)
        for g, h in zip(opt.param_groups, twin.param_groups, strict=True):
            assert g.get("k") == h.get("k")
            if "weight_sum" in g:
                assert g["weight_sum"] == pytest.approx(h["weight_sum"], rel=1e-6)

    def test_state_dict_round_trip(self, name):
        model, opt = build(name)
        params = list(model.parameters())
        for t in range(3):
            step(opt, params, t)
        saved = copy.deepcopy(opt.state_dict())
        _, fresh = build(name, seed=1)
        fresh.load_state_dict(copy.deepcopy(saved))
        again = fresh.state_dict()
        assert again["param_groups"] == saved["param_groups"]
        assert again["state"].keys() == saved["state"].keys()
        for i, state in saved["state"].items():
            assert state.keys() == again["state"][i].keys()
            for key, value in state.items():
                if torch.is_tensor(value):
                    assert torch.equal(value, again["state"][i][key]), (i, key)
                else:
                    assert value == again["state"][i][key], (i, key)

    def test_resume_from_a_checkpoint_equals_the_uninterrupted_run_bitwise(self, name):
        model_a, a = build(name)
        params_a = list(model_a.parameters())
        for t in range(4):
            step(a, params_a, t)
        buffer = io.BytesIO()
        torch.save({"model": model_a.state_dict(), "optimizer": a.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer)
        model_b, b = build(name, seed=7)  # different weights: everything must come from the file
        model_b.load_state_dict(saved["model"])
        b.load_state_dict(saved["optimizer"])
        params_b = list(model_b.parameters())
        for t in range(4, STEPS):
            step(a, params_a, t)
            step(b, params_b, t)
        assert all(torch.equal(p, q) for p, q in zip(params_a, params_b, strict=True))
        for p, q in zip(params_a, params_b, strict=True):
            for key, value in a.state[p].items():
                other = b.state[q][key]
                assert torch.equal(value, other) if torch.is_tensor(value) else value == other

    def test_train_eval_switching(self, name):
        model, opt = build(name)
        params = list(model.parameters())
        for t in range(5):
            step(opt, params, t)
        if not is_schedule_free(name):
            assert not getattr(opt, "schedule_free", False)
            assert not hasattr(opt, "eval") and not hasattr(opt, "train")
            return
        y = [p.detach().clone() for p in params]
        expected_x = [x_of(opt, p) for p in params]
        opt.eval()
        x = [p.detach().clone() for p in params]
        assert all(torch.equal(a, b) for a, b in zip(x, expected_x, strict=True))
        opt.eval()  # idempotent
        assert all(torch.equal(p, a) for p, a in zip(params, x, strict=True))
        with pytest.raises(RuntimeError, match=r"called in eval mode .* Call optimizer\.train\(\)"):
            step(opt, params, 5)
        opt.train()
        for p, b in zip(params, y, strict=True):
            torch.testing.assert_close(p.detach(), b, rtol=1e-6, atol=1e-7)
        opt.train()  # idempotent
        for p, b in zip(params, y, strict=True):
            torch.testing.assert_close(p.detach(), b, rtol=1e-6, atol=1e-7)

    def test_eval_point_computes_the_same_x(self, name):
        """:func:`trials.eval_point.schedule_free_x` (what the lineage loop evaluates) equals x."""
        if not is_schedule_free(name):
            assert not getattr(build(name)[1], "schedule_free", False)
            return
        model, opt = build(name)
        params = list(model.parameters())
        for t in range(5):
            step(opt, params, t)
        scratch = schedule_free_x(opt, params)
        for s, p in zip(scratch, params, strict=True):
            assert torch.equal(s, x_of(opt, p))

    def test_bad_hyperparameters_name_the_argument(self, name):
        case = CASES[name]
        for bad, match in case.bad:
            with pytest.raises(ConfigError, match=match):
                build_optimizer(name, tiny_gpt(0), lr=case.lr, **{**case.hyper, **bad})
        with pytest.raises(
            ConfigError, match=rf"^optimizer\.not_a_knob must be a hyperparameter of '{name}'"
        ):
            build_optimizer(name, tiny_gpt(0), lr=case.lr, not_a_knob=1)


