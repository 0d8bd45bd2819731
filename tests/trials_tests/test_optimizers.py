"""Optimizers against their references, step by step, with identical gradients.

Schedule-free: the PyPI ``schedulefree`` 1.4.1 package (ALGORITHMS-NOTES §1.9 pins it).
Tolerance: rtol 1e-5, atol 1e-6 in float32, the one the reference repository's own
equivalence tests use (NOTES §1.3) — the in-place update orders differ by rounding only.
"""

from __future__ import annotations

import copy

import pytest
import schedulefree
import torch

from trials.errors import ConfigError
from trials.optimizers import (
    OPTIMIZERS, Muon, ScheduleFreeAdamW, ScheduleFreeSGD, build_optimizer, newton_schulz, split_muon_params,
)

SHAPES = [(16, 8), (8,), (4, 4, 3)]
RTOL, ATOL = 1e-5, 1e-6


def make_params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in SHAPES]


def gradients(step: int, params, seed: int = 0) -> list[torch.Tensor]:
    """The same pseudo-random gradients for both optimizers (plus a pull toward zero)."""
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    return [torch.randn(p.shape, generator=g) * 0.1 + 0.05 * p.detach() for p in params]


SF_CASES = [
    dict(lr=0.01),
    dict(lr=0.02, warmup_steps=50),
    dict(lr=0.01, weight_decay=0.1, warmup_steps=20),
    dict(lr=0.01, r=0.75, weight_lr_power=0.0),
    dict(lr=0.005, r=2.0, weight_lr_power=2.0, warmup_steps=10, weight_decay=0.05),
]


def _drive(ours, ref, p_ours, p_ref, steps, *, start=0, check_every=1, seed=0):
    for t in range(start, start + steps):
        grads = gradients(t, p_ref, seed)
        for p, g in zip(p_ours, grads):
            p.grad = g.clone()
        for p, g in zip(p_ref, grads):
            p.grad = g.clone()
        ours.step()
        ref.step()
        if t % check_every == 0:
            for a, b in zip(p_ours, p_ref):
                torch.testing.assert_close(a.detach(), b.detach(), rtol=RTOL, atol=ATOL)
        if t % 50 == 49:  # the evaluation point x, then back to y
            ours.eval()
            ref.eval()
            for a, b in zip(p_ours, p_ref):
                torch.testing.assert_close(a.detach(), b.detach(), rtol=RTOL, atol=ATOL)
            ours.train()
            ref.train()


@pytest.mark.parametrize("kwargs", SF_CASES)
@pytest.mark.parametrize("foreach", [True, False])
def test_sf_adamw_matches_reference(kwargs, foreach):
    p_ours, p_ref = make_params(1), make_params(1)
    ours = ScheduleFreeAdamW(p_ours, betas=(0.9, 0.999), **kwargs)
    ref = schedulefree.AdamWScheduleFree(p_ref, betas=(0.9, 0.999), foreach=foreach, **kwargs)
    ours.train()
    ref.train()
    _drive(ours, ref, p_ours, p_ref, 300)
    assert ours.param_groups[0]["k"] == 300


@pytest.mark.parametrize("kwargs", [dict(lr=0.5), dict(lr=1.0, warmup_steps=30, weight_decay=0.01),
                                    dict(lr=0.3, momentum=0.95, r=1.0, weight_lr_power=0.0)])
def test_sf_sgd_matches_reference(kwargs):
    p_ours, p_ref = make_params(2), make_params(2)
    ours = ScheduleFreeSGD(p_ours, **kwargs)
    ref = schedulefree.SGDScheduleFree(p_ref, **kwargs)
    ours.train()
    ref.train()
    _drive(ours, ref, p_ours, p_ref, 300)


def test_reference_tracks_x_as_the_weighted_average_of_z():
    """With W = 0, r = 0, x is the uniform average of z_1..z_t (ALGORITHMS-NOTES §1.2)."""
    params = make_params(3)
    opt = ScheduleFreeSGD(params, lr=0.1, momentum=0.9)
    opt.train()
    zs = []
    for t in range(40):
        for p, g in zip(params, gradients(t, params)):
            p.grad = g
        opt.step()
        zs.append([opt.state[p]["z"].clone() for p in params])
    opt.eval()
    for i, p in enumerate(params):
        mean_z = torch.stack([z[i] for z in zs]).mean(0)
        torch.testing.assert_close(p.detach(), mean_z, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_mid_run_is_exact():
    p_a, p_b = make_params(4), make_params(4)
    a = ScheduleFreeAdamW(p_a, lr=0.01, warmup_steps=20, weight_decay=0.1)
    a.train()
    for t in range(150):
        for p, g in zip(p_a, gradients(t, p_a)):
            p.grad = g
        a.step()
    # a fresh optimizer from the checkpoint (model weights and optimizer state), then continue both
    with torch.no_grad():
        for pb, pa in zip(p_b, p_a):
            pb.copy_(pa)
    b = ScheduleFreeAdamW(p_b, lr=0.01, warmup_steps=20, weight_decay=0.1)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert b.param_groups[0]["train_mode"] and b.param_groups[0]["k"] == 150
    for t in range(150, 300):
        grads = gradients(t, p_a)
        for p, g in zip(p_a, grads):
            p.grad = g.clone()
        for p, g in zip(p_b, grads):
            p.grad = g.clone()
        a.step()
        b.step()
    for x, y in zip(p_a, p_b):
        assert torch.equal(x, y)


def test_step_in_eval_mode_is_an_error():
    params = make_params(5)
    opt = ScheduleFreeAdamW(params)
    with pytest.raises(RuntimeError, match=r"call optimizer\.train\(\)"):
        opt.step()


@pytest.mark.parametrize(("factory", "kwargs", "match"), [
    (ScheduleFreeAdamW, dict(lr=-1.0), "Invalid learning rate"),
    (ScheduleFreeAdamW, dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1"),
    (ScheduleFreeAdamW, dict(betas=(0.0, 0.999)), "Invalid beta parameter at index 0"),
    (ScheduleFreeSGD, dict(momentum=1.0), "Invalid momentum"),
])
def test_argument_validation_like_torch(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(make_params(0), **kwargs)


# ------------------------------------------------------------------------------------ Muon
def reference_muon_step(w, g, m, lr, mu, wd):
    """Muon from the equations, float64, one matrix: returns (w, m)."""
    w, g, m = w.double(), g.double(), m.double()
    m = mu * m + (1 - mu) * g
    u = (1 - mu) * g + mu * m
    x = u.T if u.shape[0] > u.shape[1] else u
    x = x / (x.norm() + 1e-7)
    a, b, c = 3.4445, -4.7750, 2.0315
    for _ in range(5):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    o = x.T if u.shape[0] > u.shape[1] else x
    o = o * max(1.0, w.shape[0] / w.shape[1]) ** 0.5
    w = w * (1 - lr * wd) - lr * o
    return w, m


@pytest.mark.parametrize("shape", [(12, 20), (20, 12)])
def test_muon_matches_equations(shape):
    g0 = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(*shape, generator=g0))
    opt = Muon([{"params": [w], "use_muon": True}], lr=0.02, momentum=0.95, weight_decay=0.1)
    w_ref, m_ref = w.detach().double().clone(), torch.zeros(shape, dtype=torch.float64)
    for t in range(10):
        g = torch.randn(shape, generator=g0)
        w.grad = g.clone()
        opt.step()
        w_ref, m_ref = reference_muon_step(w_ref, g, m_ref, 0.02, 0.95, 0.1)
        torch.testing.assert_close(w.detach().double(), w_ref, rtol=1e-4, atol=1e-5)


def test_muon_bf16_path_matches_torch_muon():
    g0 = torch.Generator().manual_seed(1)
    shape = (16, 24)
    w_ours = torch.nn.Parameter(torch.randn(*shape, generator=g0))
    w_torch = torch.nn.Parameter(w_ours.detach().clone())
    ours = Muon([{"params": [w_ours], "use_muon": True}], lr=0.02, weight_decay=0.1, ns_dtype=torch.bfloat16)
    theirs = torch.optim.Muon([w_torch], lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True)
    for _ in range(5):
        g = torch.randn(shape, generator=g0)
        w_ours.grad, w_torch.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    # bf16 Newton-Schulz: agreement to bf16 precision of the update (lr * O ~ 0.02)
    torch.testing.assert_close(w_ours.detach(), w_torch.detach(), rtol=0, atol=2e-3)


def test_newton_schulz_singular_values_land_near_one():
    g = torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
    s = torch.linalg.svdvals(newton_schulz(g))
    assert 0.5 < s.min() and s.max() < 1.5


def test_muon_param_split():
    named = [("tok_emb.weight", torch.nn.Parameter(torch.zeros(84, 8))),
             ("pos_emb.weight", torch.nn.Parameter(torch.zeros(16, 8))),
             ("blocks.0.attn.qkv.weight", torch.nn.Parameter(torch.zeros(24, 8))),
             ("blocks.0.attn.qkv.bias", torch.nn.Parameter(torch.zeros(24))),
             ("blocks.0.ln1.weight", torch.nn.Parameter(torch.zeros(8))),
             ("blocks.0.mlp.fc.weight", torch.nn.Parameter(torch.zeros(32, 8))),
             ("lm_head.weight", torch.nn.Parameter(torch.zeros(84, 8)))]
    muon, adamw = split_muon_params(named)
    assert [id(p) for p in muon] == [id(named[2][1]), id(named[5][1])]
    assert len(adamw) == 5


# ------------------------------------------------------------------------------------ registry
def test_build_optimizer_errors_name_field_and_value():
    named = [("w", torch.nn.Parameter(torch.zeros(3, 3)))]
    with pytest.raises(ConfigError, match=r"optimizer\.name must be one of \['adamw', 'muon', 'sf_adamw', 'sf_sgd', 'sgd'\], got 'adam'"):
        build_optimizer("adam", named, lr=1e-3)
    with pytest.raises(ConfigError, match=r"optimizer\.lr must be a number > 0, got -0\.001"):
        build_optimizer("adamw", named, lr=-1e-3)
    with pytest.raises(ConfigError, match=r"optimizer\.momentun must be a hyperparameter of 'sgd'"):
        build_optimizer("sgd", named, lr=1e-3, momentun=0.9)
    assert sorted(OPTIMIZERS) == ["adamw", "muon", "sf_adamw", "sf_sgd", "sgd"]


def test_build_optimizer_records_base_lr_and_decays_only_matrices():
    named = [("w", torch.nn.Parameter(torch.zeros(3, 3))), ("b", torch.nn.Parameter(torch.zeros(3)))]
    opt = build_optimizer("adamw", named, lr=2e-3, weight_decay=0.1)
    assert [(g["base_lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups] == [(2e-3, 0.1, 1), (2e-3, 0.0, 1)]
    muon = build_optimizer("muon", named, lr=0.02, adamw_lr=1e-3)
    assert [(g["use_muon"], g["base_lr"]) for g in muon.param_groups] == [(True, 0.02), (False, 1e-3)]
