"""SF-NorMuon: hand-computed steps for the open options, and the fast class against its twin.

The hand examples use a 1 × 1 matrix in float64 with ``lr_convention="rms_0.2"`` and ``eps=0``:
then the NorMuon direction is exactly ``D = 0.2 · sign(m)`` (Newton–Schulz keeps the sign, the
row normalisation and the RMS rescaling remove the magnitude), so every number below follows
from the schedule-free equations by hand (docs/equations.md §3.2).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from trials.optimizers import ScheduleFreeNorMuon
from trials.optimizers._reference_spectral import ScheduleFreeNorMuonReference

TOL = dict(rtol=1e-4, atol=1e-6)
F64 = torch.float64


def one_by_one(**kwargs) -> tuple[torch.nn.Parameter, ScheduleFreeNorMuon]:
    w = torch.nn.Parameter(torch.ones(1, 1, dtype=F64))
    hyper = dict(lr=0.5, betas=(0.5, 0.95), momentum=0.9, weight_decay=0.1, eps=0.0, ns_dtype=F64)
    opt = ScheduleFreeNorMuon([w], **{**hyper, **kwargs})
    opt.train()
    return w, opt


def step(w, opt, g: float) -> tuple[float, float, float]:
    """One step with gradient ``g``; returns (y, z, x)."""
    w.grad = torch.full((1, 1), g, dtype=F64)
    opt.step()
    z = opt.state[w]["z"].item()
    beta = opt.interpolation(opt.param_groups[0])
    return w.item(), z, (w.item() - (1 - beta) * z) / beta


@pytest.mark.parametrize(
    ("decay_at", "expected"),
    [
        # step A (k=1, c = 0.25/0.5 = 1/2, g = +3: m = 0.3, D = +0.2)
        #   z' = 2 − 0.5·0.1·2 − 0.5·0.2 = 1.8;   x' = 0.9;   y' = 0.5·0.9 + 0.5·1.8 = 1.35
        # step B (k=2, c = 0.25/0.75 = 1/3, g = −10: m = 0.27 − 1 = −0.73, D = −0.2)
        #   z'' = 1.8 − 0.05·1.8 + 0.1 = 1.81;  x'' = (2/3)0.9 + (1/3)1.81;  y'' = (x'' + z'')/2
        ("z", [(1.35, 1.8, 0.9), ((0.6 + 1.81 / 3 + 1.81) / 2, 1.81, 0.6 + 1.81 / 3)]),
        # step A: z' = 2 − 0.5·0.1·y(=1) − 0.1 = 1.85;  x' = 0.925;  y' = 1.3875
        # step B: z'' = 1.85 − 0.05·1.3875 + 0.1 = 1.880625;  x'' = (2/3)0.925 + (1/3)1.880625
        (
            "y",
            [
                (1.3875, 1.85, 0.925),
                (((1.85 / 3 + 1.880625 / 3) + 1.880625) / 2, 1.880625, 1.85 / 3 + 1.880625 / 3),
            ],
        ),
    ],
)
def test_two_steps_by_hand_decay_at_z_vs_y(decay_at, expected):
    """From a loaded state y = 1, z = 2 (so x = (1 − 0.5·2)/0.5 = 0), k = 1, Σw = lr² = 0.25,
    lr_max = 0.5; lr = 0.5, lambda = 0.1, beta1 = 0.5, mu = 0.9, no warmup (decay_lr moot)."""
    w, opt = one_by_one(decay_at=decay_at)
    state = opt.state_dict()
    state["param_groups"][0].update(k=1, weight_sum=0.25, lr_max=0.5, train_mode=True)
    state["state"] = {
        0: {
            "z": torch.full((1, 1), 2.0, dtype=F64),
            "momentum_buffer": torch.zeros(1, 1, dtype=F64),
            "second_momentum_buffer": torch.zeros(1, 1, dtype=F64),
        }
    }
    opt.load_state_dict(state)
    for g, row in zip((3.0, -10.0), expected, strict=True):
        assert step(w, opt, g) == pytest.approx(row, rel=1e-13, abs=1e-15)


@pytest.mark.parametrize(
    ("decay_lr", "z1"),
    [
        # lr_0 = 0.5 · 1/4 = 0.125 (warmup 4): z1 = 1 − 0.5·0.1·1 − 0.125·0.2 = 0.925
        ("peak", 0.925),
        # z1 = 1 − 0.125·0.1·1 − 0.125·0.2 = 0.9625
        ("scheduled", 0.9625),
    ],
)
def test_first_step_by_hand_decay_with_peak_or_warmed_up_lr(decay_lr, z1):
    w, opt = one_by_one(warmup_steps=4, decay_lr=decay_lr)
    y, z, x = step(w, opt, 3.0)
    assert (y, z, x) == pytest.approx((z1, z1, z1), rel=1e-13)  # c = 1 at the first step
    assert opt.param_groups[0]["scheduled_lr"] == 0.125


GRID = list(
    itertools.product(("z", "y"), ("peak", "scheduled"), (False, True), ("rms_0.2", "restore_norm"))
)


@pytest.mark.parametrize(("decay_at", "decay_lr", "nesterov", "convention"), GRID)
def test_fast_matches_the_twin_for_every_option(decay_at, decay_lr, nesterov, convention):
    """Two matrices (NorMuon) and a vector (SF-AdamW fallback, its own lr and decay), warmup 4."""
    gen = torch.Generator().manual_seed(11)
    shapes = [(6, 3), (3, 6), (5,)]
    init = [torch.randn(*s, generator=gen) for s in shapes]
    fast_p = [torch.nn.Parameter(t.clone()) for t in init]
    twin_p = [torch.nn.Parameter(t.clone()) for t in init]
    hyper = dict(
        lr=0.02, betas=(0.9, 0.9), momentum=0.9, weight_decay=0.3, eps=1e-10, nesterov=nesterov,
        ns_steps=5, lr_convention=convention, decay_at=decay_at, decay_lr=decay_lr,
        warmup_steps=4, r=0.5, weight_lr_power=2.0,
    )  # fmt: skip
    fallback = dict(use_muon=False, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    fast = ScheduleFreeNorMuon(
        [{"params": fast_p[:2]}, {"params": fast_p[2:], **fallback}], **hyper
    )
    twin = ScheduleFreeNorMuonReference(
        [{"params": twin_p[:2]}, {"params": twin_p[2:], **fallback}], use_muon=True, **hyper
    )
    fast.train()
    twin.train()
    for _ in range(12):
        for p, q in zip(fast_p, twin_p, strict=True):
            p.grad = torch.randn(p.shape, generator=gen) + 0.1 * p.detach()
            q.grad = p.grad.clone()
        fast.step()
        twin.step()
        for p, q in zip(fast_p, twin_p, strict=True):
            torch.testing.assert_close(p, q, **TOL)
            for key in set(fast.state[p]) & set(twin.state[q]):
                torch.testing.assert_close(fast.state[p][key], twin.state[q][key], **TOL)
    fast.eval()
    for p, q in zip(fast_p, twin_p, strict=True):
        torch.testing.assert_close(p, twin.state[q]["x"], **TOL)


def test_without_gradients_decay_at_z_is_geometric_and_at_y_faster():
    """With zero gradients the only force is the decay: at z, z_k = (1 − lr·lambda)^k z_0 exactly
    as the paper's rule reads; at y it is faster, since y = 0.9 x + 0.1 z sits above z (x
    averages the earlier, larger z's) and the decay removes lr·lambda·y > lr·lambda·z."""
    results = {}
    for decay_at in ("z", "y"):
        w = torch.nn.Parameter(torch.full((2, 2), 3.0, dtype=F64))
        opt = ScheduleFreeNorMuon(
            [{"params": [w], "use_muon": False}], lr=0.1, decay_at=decay_at, adamw_weight_decay=0.5
        )
        opt.train()
        for _ in range(20):
            w.grad = torch.zeros_like(w)
            opt.step()
        results[decay_at] = opt.state[w]["z"][0, 0].item()
    assert results["z"] == pytest.approx(3.0 * 0.95**20, rel=1e-12)
    assert results["y"] < results["z"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(decay_at="x"), r"Invalid decay_at: 'x' \(must be one of 'y', 'z'\)"),
        (dict(decay_lr="warm"), r"Invalid decay_lr: 'warm' \(must be one of 'peak', 'scheduled'\)"),
        (dict(betas=(0.0, 0.95)), r"Invalid beta1: 0\.0"),
        (dict(momentum=1.0), r"Invalid momentum value: 1\.0"),
        (dict(ns_steps=2.0), r"Invalid ns_steps: 2\.0"),
        (dict(adamw_lr=-1.0), r"Invalid adamw_lr: -1\.0"),
        (dict(lr_convention=None), r"Invalid lr_convention: None"),
    ],
)
def test_argument_validation_like_torch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScheduleFreeNorMuon([torch.nn.Parameter(torch.zeros(3, 3))], **kwargs)


def test_matrix_groups_take_only_matrices():
    with pytest.raises(ValueError, match=r"SF-NorMuon group 0 holds a parameter of shape \(3,\)"):
        ScheduleFreeNorMuon([torch.nn.Parameter(torch.zeros(3))])
