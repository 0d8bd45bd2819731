"""SF-AdamW's variants: ``inner_momentum`` (reference git HEAD) and refined Schedule-Free.

- inner momentum: bit for bit against ``AdamWScheduleFree(inner_momentum=0.9)`` at the reference's
  git HEAD (a known-answer fixture, tests/data/README.md; PyPI 1.4.1 lacks the option),
  and a two-step closed form;
- refined SF (Song et al. 2025): ``C = 1/(1 - beta1)`` is vanilla SF bit for bit, also in float64;
  a huge ``C`` clamps the averaging weight at 1 (x = z).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trials.optimizers import RefinedScheduleFreeAdamW, ScheduleFreeAdamW

DATA = Path(__file__).resolve().parents[1] / "data" / "optimizers"
SHAPES = [(16, 8), (8,), (4, 4, 3), (5, 7)]


def make_params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in SHAPES]


def gradients(step: int, params) -> list[torch.Tensor]:
    """Pseudo-random gradients, a function of the step alone, plus a pull toward zero."""
    g = torch.Generator().manual_seed(step)
    return [torch.randn(p.shape, generator=g) * 0.1 + 0.05 * p.detach() for p in params]


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()


def load_fixture(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per-tensor"])
@pytest.mark.parametrize("path", ["foreach", "per_tensor"])
def test_inner_momentum_matches_the_reference_head_known_answers(path, foreach):
    """``AdamWScheduleFree(inner_momentum=0.9)`` at the reference's git HEAD (fixture), both of its
    paths, against both of ours: parameters, z, exp_avg, exp_avg_sq, the group scalars every step
    and x at the end, bit for bit."""
    rec = load_fixture("sf_adamw_inner_momentum")[path]
    cfg = {k: v for k, v in rec["config"].items() if k != "foreach"}
    cfg["betas"] = tuple(cfg["betas"])
    params = {n: torch.nn.Parameter(torch.tensor(v)) for n, v in rec["initial"].items()}
    opt = ScheduleFreeAdamW(list(params.values()), foreach=foreach, **cfg)
    opt.train()
    for t, row in enumerate(rec["steps"]):
        for n, p in params.items():
            p.grad = torch.tensor(row["grads"][n])
        opt.step()
        for n, p in params.items():
            assert torch.equal(p.detach(), torch.tensor(row["params"][n])), (t, n)
            assert sorted(opt.state[p]) == sorted(row["state"][n])
            for key, value in row["state"][n].items():
                assert torch.equal(opt.state[p][key], torch.tensor(value)), (t, n, key)
        group = opt.param_groups[0]
        assert {k: group[k] for k in row["group"]} == row["group"]
    opt.eval()
    for n, p in params.items():
        assert torch.equal(p.detach(), torch.tensor(rec["x"][n]))


def test_inner_momentum_is_a_bias_corrected_first_moment():
    """Known answer at step 0: m = (1 - mu) g, m̂ = g, v̂ = g², so z_1 = z_0 - lr g/(|g| + eps)
    whatever mu is; at step 1 the numerator is (mu (1-mu) g0 + (1-mu) g1) / (1 - mu²)."""
    mu, lr, eps = 0.9, 0.1, 1e-8
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = ScheduleFreeAdamW([p], lr=lr, betas=(0.5, 0.999), eps=eps, inner_momentum=mu)
    opt.train()
    g0, g1 = (
        torch.tensor([3.0, -1.0], dtype=torch.float64),
        torch.tensor([1.0, 2.0], dtype=torch.float64),
    )
    p.grad = g0.clone()
    opt.step()
    z1 = torch.tensor([1.0, -2.0], dtype=torch.float64) - lr * g0 / (g0.abs() + eps)
    torch.testing.assert_close(opt.state[p]["z"], z1, rtol=1e-12, atol=0)
    p.grad = g1.clone()
    opt.step()
    m_hat = (mu * (1 - mu) * g0 + (1 - mu) * g1) / (1 - mu**2)
    v_hat = (0.999 * 0.001 * g0**2 + 0.001 * g1**2) / (1 - 0.999**2)
    z2 = z1 - lr * m_hat / (v_hat.sqrt() + eps)
    torch.testing.assert_close(opt.state[p]["z"], z2, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------ refined SF
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta1", [0.9, 0.95])
def test_refined_sf_with_c_equal_inverse_one_minus_beta1_is_vanilla_bit_for_bit(beta1, dtype):
    """Bitwise in float64 too, where a 1-ulp change of the averaging weight c would show (a
    float32 lerp rounds the weight to float32 and hides it): the factor (1 - beta1)·C is formed
    first and is exactly 1.0 (RefinedScheduleFreeAdamW's docstring)."""
    kwargs = dict(lr=0.01, betas=(beta1, 0.999), warmup_steps=10, weight_decay=0.05)
    p_v = [torch.nn.Parameter(p.detach().to(dtype)) for p in make_params(11)]
    p_r = [torch.nn.Parameter(p.detach().to(dtype)) for p in make_params(11)]
    vanilla = ScheduleFreeAdamW(p_v, **kwargs)
    refined = RefinedScheduleFreeAdamW(p_r, C=1 / (1 - beta1), **kwargs)
    vanilla.train()
    refined.train()
    for t in range(100):
        grads = [g.to(dtype) for g in gradients(t, p_v)]
        set_grads(p_v, grads)
        set_grads(p_r, grads)
        vanilla.step()
        refined.step()
    assert all(torch.equal(a, b) for a, b in zip(p_v, p_r, strict=True))
    vanilla.eval()
    refined.eval()
    assert all(torch.equal(a, b) for a, b in zip(p_v, p_r, strict=True))


def test_refined_sf_clamps_the_averaging_weight_at_one():
    """c = min(1, c_SF (1 - beta1) C): with C huge, c = 1 every step, so x = z (no averaging)."""
    params = make_params(12)
    opt = RefinedScheduleFreeAdamW(params, lr=0.01, C=1e9)
    opt.train()
    for t in range(10):
        set_grads(params, gradients(t, params))
        opt.step()
    opt.eval()
    for p in params:
        torch.testing.assert_close(p.detach(), opt.state[p]["z"], rtol=1e-5, atol=1e-6)
    assert opt.state_dict()["param_groups"][0]["C"] == 1e9
