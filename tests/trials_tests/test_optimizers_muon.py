"""Muon (+ its AdamW fallback) and the param-group policy, against known answers.

- the fp32 path against Muon written from the equations in float64 (tolerance rtol 1e-4,
  atol 1e-5: fp32 Newton–Schulz rounding, amplified by the cubic/quintic terms);
- the bf16 path against ``torch.optim.Muon`` (same algorithm, same bf16 iteration: identical
  in torch 2.13; atol 1e-6 so any change in the arithmetic shows);
- Newton–Schulz acts on singular values through the scalar polynomial and leaves them in
  ~[0.5, 1.5] (Keller Jordan's docstring);
- the AdamW groups against ``torch.optim.AdamW`` (fp32, rtol 1e-5, atol 1e-6).

The param-group policy (which tensors Muon gets) is tested in test_optimizers_param_groups.py.
"""

from __future__ import annotations

import io

import pytest
import torch

from trials.optimizers import NS_COEFFICIENTS, Muon, newton_schulz


def reference_muon_step(w, g, m, *, lr, mu, wd, nesterov=True):
    """Muon from the equations (docs/equations.md §4.1), float64, one matrix: returns (w, m)."""
    w, g, m = w.double(), g.double(), m.double()
    m = mu * m + (1 - mu) * g
    u = (1 - mu) * g + mu * m if nesterov else m
    tall = u.shape[0] > u.shape[1]
    x = u.T if tall else u
    x = x / x.norm()
    a, b, c = NS_COEFFICIENTS
    for _ in range(5):
        A = x @ x.T
        x = a * x + b * A @ x + c * A @ A @ x
    o = x.T if tall else x
    w = w * (1 - lr * wd) - lr * max(1.0, w.shape[0] / w.shape[1]) ** 0.5 * o
    return w, m


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("shape", [(12, 20), (20, 12), (16, 16)])
def test_muon_fp32_matches_the_equations(shape, nesterov):
    gen = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(*shape, generator=gen))
    opt = Muon([w], lr=0.02, momentum=0.95, nesterov=nesterov, weight_decay=0.1)
    w_ref, m_ref = w.detach().double().clone(), torch.zeros(shape, dtype=torch.float64)
    for _ in range(10):
        g = torch.randn(shape, generator=gen)
        w.grad = g.clone()
        opt.step()
        w_ref, m_ref = reference_muon_step(
            w_ref, g, m_ref, lr=0.02, mu=0.95, wd=0.1, nesterov=nesterov
        )
        torch.testing.assert_close(w.detach().double(), w_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        opt.state[w]["momentum_buffer"].double(), m_ref, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("shape", [(16, 24), (24, 16)])
def test_muon_bf16_path_matches_torch_muon(shape):
    gen = torch.Generator().manual_seed(1)
    w_ours = torch.nn.Parameter(torch.randn(*shape, generator=gen))
    w_torch = torch.nn.Parameter(w_ours.detach().clone())
    ours = Muon([w_ours], lr=0.02, weight_decay=0.1, ns_dtype=torch.bfloat16)
    theirs = torch.optim.Muon(
        [w_torch], lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True, adjust_lr_fn="original"
    )
    for _ in range(5):
        g = torch.randn(shape, generator=gen)
        w_ours.grad, w_torch.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
        torch.testing.assert_close(w_ours.detach(), w_torch.detach(), rtol=0, atol=1e-6)


def test_default_ns_dtype_is_float32_on_cpu():
    """bf16 on CPU would differ from fp32 by ~1e-2 relative: the fp32 path is what ran."""
    g = torch.randn(24, 16, generator=torch.Generator().manual_seed(2))
    fp32 = newton_schulz(g, dtype=torch.float32)
    assert torch.equal(newton_schulz(g), fp32)
    assert (newton_schulz(g, dtype=torch.bfloat16) - fp32).abs().max() > 1e-3


def test_newton_schulz_applies_the_quintic_to_the_singular_values():
    """NS(U diag(s) Vᵀ) = U diag(f⁵(s / ||s||)) Vᵀ with f(x) = a x + b x³ + c x⁵ (known answer)."""
    gen = torch.Generator().manual_seed(3)
    u, _ = torch.linalg.qr(torch.randn(32, 32, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen, dtype=torch.float64))
    s = torch.logspace(-2, 0, 16, dtype=torch.float64)
    g = u[:, :16] @ torch.diag(s) @ v.T  # 32 × 16, tall: exercises the transpose
    x = s / s.norm()
    a, b, c = NS_COEFFICIENTS
    for _ in range(5):
        x = a * x + b * x**3 + c * x**5
    expected = u[:, :16] @ torch.diag(x) @ v.T
    torch.testing.assert_close(
        newton_schulz(g, dtype=torch.float64), expected, rtol=1e-9, atol=1e-12
    )
    torch.testing.assert_close(newton_schulz(g.float()).double(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (128, 512), (48, 48)])
def test_newton_schulz_singular_values_land_in_half_to_three_halves(shape):
    """For a well-conditioned input (a Gaussian matrix with aspect ratio >= 2) every singular
    value lands in [0.5, 1.5]; a square Gaussian has singular values near 0 that 5 steps cannot
    lift, so there only the upper bound is claimed."""
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(4))
    s = torch.linalg.svdvals(newton_schulz(g))
    assert s.max() < 1.5
    if max(shape) >= 2 * min(shape):
        assert s.min() > 0.5
    # the iteration runs on the wide orientation: transposing the input transposes the output
    torch.testing.assert_close(newton_schulz(g.T), newton_schulz(g).T, rtol=1e-5, atol=1e-6)


def test_adamw_groups_match_torch_adamw():
    gen = torch.Generator().manual_seed(5)
    shapes = [(20, 8), (8,)]
    ours_p = [torch.nn.Parameter(torch.randn(*s, generator=gen)) for s in shapes]
    ref_p = [torch.nn.Parameter(p.detach().clone()) for p in ours_p]
    ours = Muon(
        [
            {"params": ours_p[:1], "use_muon": False, "weight_decay": 0.1},
            {"params": ours_p[1:], "use_muon": False},
        ],
        adamw_lr=3e-3,
    )
    ref = torch.optim.AdamW(
        [{"params": ref_p[:1], "weight_decay": 0.1}, {"params": ref_p[1:], "weight_decay": 0.0}],
        lr=3e-3,
        betas=(0.9, 0.95),
        eps=1e-10,
        foreach=False,
    )
    assert [(g["lr"], g["betas"], g["eps"], g["weight_decay"]) for g in ours.param_groups] == [
        (3e-3, (0.9, 0.95), 1e-10, 0.1),
        (3e-3, (0.9, 0.95), 1e-10, 0.0),
    ]
    for _ in range(50):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, q, g in zip(ours_p, ref_p, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
        for p, q in zip(ours_p, ref_p, strict=True):
            torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)


def test_muon_state_dict_round_trip_is_bit_exact():
    gen = torch.Generator().manual_seed(6)
    shapes = [(12, 8), (8,)]

    def fresh():
        ps = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        return ps, Muon(
            [{"params": ps[:1]}, {"params": ps[1:], "use_muon": False}], weight_decay=0.01
        )

    p_a, a = fresh()
    with torch.no_grad():
        for p in p_a:
            p.copy_(torch.randn(p.shape, generator=gen))
    all_grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(10)]
    for grads in all_grads[:5]:
        for p, g in zip(p_a, grads, strict=True):
            p.grad = g.clone()
        a.step()
    buffer = io.BytesIO()
    torch.save({"w": [p.detach() for p in p_a], "opt": a.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    p_b, b = fresh()
    with torch.no_grad():
        for p, w in zip(p_b, saved["w"], strict=True):
            p.copy_(w)
    b.load_state_dict(saved["opt"])
    for grads in all_grads[5:]:
        for p, q, g in zip(p_a, p_b, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert all(torch.equal(p, q) for p, q in zip(p_a, p_b, strict=True))


def test_muon_rejects_non_matrices_and_bad_arguments():
    with pytest.raises(
        ValueError, match=r"Muon group 0 holds a parameter of shape \(8,\): Muon takes only 2-D"
    ):
        Muon([torch.nn.Parameter(torch.zeros(8))])
    w = [torch.nn.Parameter(torch.zeros(4, 4))]
    with pytest.raises(ValueError, match=r"Invalid momentum value: 1\.0"):
        Muon(w, momentum=1.0)
    with pytest.raises(ValueError, match=r"Invalid ns_steps: 0"):
        Muon(w, ns_steps=0)
    with pytest.raises(ValueError, match=r"Invalid ns_dtype: torch\.int32"):
        Muon(w, ns_dtype=torch.int32)


def test_parameters_without_gradients_are_skipped():
    w = torch.nn.Parameter(torch.ones(4, 6))
    b = torch.nn.Parameter(torch.ones(6))
    opt = Muon([{"params": [w]}, {"params": [b], "use_muon": False}], weight_decay=0.5)
    opt.step()
    assert torch.equal(w, torch.ones(4, 6)) and torch.equal(b, torch.ones(6)) and not opt.state
