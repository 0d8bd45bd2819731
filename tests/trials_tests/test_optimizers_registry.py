"""The optimizer registry: names, schedule-free and needs-loss flags, hyperparameter pass-through
and the errors ``build_optimizer`` raises (field, value, expectation)."""

from __future__ import annotations

import copy

import pytest
import torch

from trials.errors import ConfigError
from trials.optimizers import OPTIMIZERS, ScheduleFreeAdamW, build_optimizer, is_schedule_free
from trials.workloads.gpt import GPT, GPTConfig


def tiny_gpt() -> GPT:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return GPT(GPTConfig(vocab_size=11, block_size=4, n_layer=1, n_head=2, n_embd=8))


def named_model_params():
    return [
        ("tok_emb.weight", torch.nn.Parameter(torch.randn(20, 8))),
        ("blocks.0.attn.qkv.weight", torch.nn.Parameter(torch.randn(24, 8))),
        ("blocks.0.attn.qkv.bias", torch.nn.Parameter(torch.zeros(24))),
        ("blocks.0.ln1.weight", torch.nn.Parameter(torch.ones(8))),
        ("lm_head.weight", torch.nn.Parameter(torch.randn(20, 8))),
    ]


def test_build_optimizer_errors_name_field_value_and_expectation():
    named = named_model_params()
    with pytest.raises(
        ConfigError,
        match=r"^optimizer\.name must be one of \['adamw', 'muon', 'normuon', 'sf_adamw', "
        r"'sf_adamw_refined', 'sf_normuon', 'sf_plus', 'sf_sgd', 'sgd'\], got 'adam'$",
    ):
        build_optimizer("adam", named, lr=1e-3)
    with pytest.raises(ConfigError, match=r"^optimizer\.lr must be a number > 0, got -0\.001$"):
        build_optimizer("adamw", named, lr=-1e-3)
    with pytest.raises(ConfigError, match=r"^optimizer\.lr must be a number > 0, got nan$"):
        build_optimizer("adamw", named, lr=float("nan"))
    with pytest.raises(
        ConfigError,
        match=r"^optimizer\.momentun must be a hyperparameter of 'sgd': one of "
        r"\['momentum', 'nesterov', 'weight_decay'\], got 0\.9$",
    ):
        build_optimizer("sgd", named, lr=1e-3, momentun=0.9)
    with pytest.raises(
        ConfigError, match=r"^optimizer must be a valid 'sf_adamw' configuration \(Invalid beta2: "
    ):
        build_optimizer("sf_adamw", named, lr=1e-3, betas=(0.9, 1.0))
    with pytest.raises(
        ConfigError,
        match=r"^optimizer\.ns_dtype must be None or one of \['bfloat16', 'float32', "
        r"'float64'\], got 'fp8'$",
    ):
        build_optimizer("muon", tiny_gpt(), lr=0.02, ns_dtype="fp8")
    with pytest.raises(
        ConfigError, match=r"^optimizer\.C must be set: 'sf_adamw_refined' has no default"
    ):
        build_optimizer("sf_adamw_refined", named, lr=1e-3)
    with pytest.raises(
        ConfigError,
        match=r"^optimizer must be a valid 'sf_adamw' configuration \(Invalid weight_decay value: -0\.1",
    ):
        build_optimizer("sf_adamw", named, lr=1e-3, weight_decay=-0.1)


def test_registry_names_and_schedule_free_flags():
    assert sorted(OPTIMIZERS) == [
        "adamw", "muon", "normuon", "sf_adamw", "sf_adamw_refined", "sf_normuon", "sf_plus",
        "sf_sgd", "sgd",
    ]  # fmt: skip
    assert [n for n in sorted(OPTIMIZERS) if is_schedule_free(n)] == [
        "sf_adamw", "sf_adamw_refined", "sf_normuon", "sf_plus", "sf_sgd",
    ]  # fmt: skip
    for name in OPTIMIZERS:
        opt = build_optimizer(
            name, tiny_gpt(), lr=1e-3, **({"C": 10.0} if name == "sf_adamw_refined" else {})
        )
        assert bool(getattr(opt, "schedule_free", False)) == is_schedule_free(name), name
        assert bool(getattr(opt, "needs_loss", False)) == (name == "sf_plus"), name


def test_the_muon_family_needs_the_model_not_names():
    """Which tensors are hidden matrices is a module role: named parameters alone are refused."""
    for name in ("muon", "normuon", "sf_normuon"):
        with pytest.raises(
            TypeError,
            match=rf"build_optimizer\('{name}', \.\.\.\) routes tensors .* pass the model",
        ):
            build_optimizer(name, named_model_params(), lr=0.02)


def test_refined_sf_registered_with_c_equal_inverse_one_minus_beta1_is_sf_adamw_bitwise():
    """Through the registry on a real model and real gradients: ``sf_adamw_refined`` with
    C = 1/(1 - beta1) trains exactly like ``sf_adamw`` (the refined weight is min(1, c·1.0) = c,
    see RefinedScheduleFreeAdamW); C = 2/(1 - beta1) does not."""
    hyper = dict(betas=(0.95, 0.99), weight_decay=0.1, warmup_steps=3)
    runs = {}
    for label, name, extra in [
        ("vanilla", "sf_adamw", {}),
        ("refined", "sf_adamw_refined", {"C": 1 / (1 - 0.95)}),
        ("wider", "sf_adamw_refined", {"C": 2 / (1 - 0.95)}),
    ]:
        model = tiny_gpt()
        opt = build_optimizer(name, model, lr=0.01, **hyper, **extra)
        opt.train()
        gen = torch.Generator().manual_seed(0)
        for _ in range(6):
            idx = torch.randint(0, 11, (3, 4), generator=gen)
            opt.zero_grad()
            model(idx, idx.roll(1, dims=1))[1].backward()
            opt.step()
        runs[label] = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(runs["vanilla"], runs["refined"], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs["vanilla"], runs["wider"], strict=True))


def test_build_adamw_is_fused_on_cpu_and_decays_only_matrices():
    named = named_model_params()
    opt = build_optimizer("adamw", named, lr=2e-3, weight_decay=0.1, betas=(0.9, 0.95))
    assert opt.defaults["fused"] is True
    groups = [
        (g["base_lr"], g["lr"], g["weight_decay"], [p.ndim for p in g["params"]])
        for g in opt.param_groups
    ]
    assert groups == [(2e-3, 2e-3, 0.1, [2, 2, 2]), (2e-3, 2e-3, 0.0, [1, 1])]
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)


def test_build_passes_hyperparameters_through():
    sgd = build_optimizer(
        "sgd", named_model_params(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    assert [(g["momentum"], g["nesterov"], g["weight_decay"]) for g in sgd.param_groups] == [
        (0.9, True, 1e-4),
        (0.9, True, 0.0),
    ]
    sf = build_optimizer(
        "sf_adamw", named_model_params(), lr=0.01, warmup_steps=7, r=0.5, betas=(0.95, 0.99)
    )
    assert isinstance(sf, ScheduleFreeAdamW)
    assert {(g["warmup_steps"], g["r"], g["betas"], g["base_lr"]) for g in sf.param_groups} == {
        (7, 0.5, (0.95, 0.99), 0.01)
    }
    sf_adamw = build_optimizer("sf_adamw", named_model_params(), lr=0.01, inner_momentum=0.9)
    assert {g["inner_momentum"] for g in sf_adamw.param_groups} == {0.9}
    normuon = build_optimizer("normuon", tiny_gpt(), lr=0.02, lr_convention="rms_0.2", beta2=0.9)
    assert normuon.defaults["lr_convention"] == "rms_0.2"
    assert [(g["use_muon"], g.get("lr_convention"), g.get("beta2")) for g in normuon.param_groups] == [
        (True, "rms_0.2", 0.9), (False, None, None), (False, None, None),
    ]  # fmt: skip
    sf_plus = build_optimizer(
        "sf_plus", named_model_params(), lr=0.5, c_warmup=4, weight_decay=20.0
    )
    assert [(g["lr"], g["c_warmup"], g["weight_decay"]) for g in sf_plus.param_groups] == [
        (0.5, 4, 20.0), (0.5, 4, 0.0),
    ]  # fmt: skip
    sf_sgd = build_optimizer("sf_sgd", named_model_params(), lr=1.0, momentum=0.8, weight_decay=0.1)
    assert [(g["momentum"], g["weight_decay"]) for g in sf_sgd.param_groups] == [
        (0.8, 0.1),
        (0.8, 0.0),
    ]


def test_base_lr_drives_a_schedule_and_frozen_parameters_are_left_out():
    named = named_model_params()
    named[3][1].requires_grad_(False)
    opt = build_optimizer("adamw", named, lr=1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == 4
    for group in opt.param_groups:
        group["lr"] = group["base_lr"] * 0.5  # what the lineage loop does
    assert [g["lr"] for g in opt.param_groups] == [5e-4, 5e-4]
    assert copy.deepcopy(opt.state_dict())["param_groups"][0]["base_lr"] == 1e-3
