"""NorMuon against the authors' class (known-answer fixtures), its slow twin and closed forms.

- bfloat16 Newton–Schulz: bit for bit against ``zichongli5/NorMuon``'s
  ``SingleDeviceNorMuonWithAuxAdam`` in the two configurations it runs in (float32 parameters at
  commit 5320abe, bfloat16 parameters at HEAD d45c9a4; tests/data/README.md). Its
  AdamW groups agree to float32 rounding (theirs lerps the second moment, ours multiplies and
  adds, as torch's AdamW does): atol 1e-8 on O(1) weights.
- float32 Newton–Schulz: against the twin in ``trials.optimizers._reference_spectral`` (float64
  polar iteration): rtol 1e-4, atol 1e-6 — a beta2 off by 0.01, a missing shape factor or the
  other lr convention fall outside.
- the row normalisation on a hand-worked 3 × 2 matrix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trials.optimizers import NorMuon
from trials.optimizers._reference_spectral import NorMuonReference
from trials.optimizers.normuon import row_normalize

DATA = Path(__file__).resolve().parents[1] / "data" / "optimizers"
TOL = dict(rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("fixture", "dtype"),
    [("normuon_5320abe_fp32", torch.float32), ("normuon_d45c9a4_bf16", torch.bfloat16)],
)
def test_bf16_newton_schulz_matches_the_authors_class_step_for_step(fixture, dtype):
    rec = json.loads((DATA / f"{fixture}.json").read_text())
    params = {
        n: torch.nn.Parameter(torch.tensor(v, dtype=dtype)) for n, v in rec["initial"].items()
    }
    mg = rec["muon_group"]
    groups = [{"params": [params[n] for n in rec["muon_params"]], "use_muon": True, **mg}]
    if rec["adamw_params"]:
        ag = {**rec["adamw_group"], "betas": tuple(rec["adamw_group"]["betas"])}
        groups.append({"params": [params[n] for n in rec["adamw_params"]], "use_muon": False, **ag})
    opt = NorMuon(groups, ns_dtype=torch.bfloat16)
    for t, row in enumerate(rec["steps"]):
        for n, p in params.items():
            p.grad = torch.tensor(row["grads"][n], dtype=dtype)
        opt.step()
        for n in rec["muon_params"]:
            p = params[n]
            assert torch.equal(p.detach(), torch.tensor(row["params"][n], dtype=dtype)), (t, n)
            for key in ("momentum_buffer", "second_momentum_buffer"):
                expected = torch.tensor(row["state"][n][key], dtype=dtype)
                assert torch.equal(opt.state[p][key], expected), (t, n, key)
        for n in rec["adamw_params"]:
            p = params[n]
            torch.testing.assert_close(
                p.detach(), torch.tensor(row["params"][n]), rtol=0, atol=1e-8
            )
            assert opt.state[p]["step"] == t + 1
            for key in ("exp_avg", "exp_avg_sq"):
                expected = torch.tensor(row["state"][n][key])
                torch.testing.assert_close(opt.state[p][key], expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("convention", ["restore_norm", "rms_0.2"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_fp32_matches_the_reference_twin(convention, nesterov):
    gen = torch.Generator().manual_seed(3)
    shapes = [(12, 5), (5, 12), (7, 7)]
    fast_p = [torch.nn.Parameter(torch.randn(*s, generator=gen)) for s in shapes]
    twin_p = [torch.nn.Parameter(p.detach().clone()) for p in fast_p]
    hyper = dict(lr=0.02, weight_decay=0.1, momentum=0.9, nesterov=nesterov, ns_steps=5)
    fast = NorMuon(fast_p, beta2=0.9, lr_convention=convention, **hyper)
    twin = NorMuonReference(
        twin_p, beta2=0.9, eps=1e-10, lr_convention=convention, use_muon=True, **hyper
    )
    for t in range(10):
        for p, q in zip(fast_p, twin_p, strict=True):
            p.grad = torch.randn(p.shape, generator=gen) * (1 + t % 3)
            q.grad = p.grad.clone()
        fast.step()
        twin.step()
        for p, q in zip(fast_p, twin_p, strict=True):
            torch.testing.assert_close(p, q, **TOL)
            for key in ("momentum_buffer", "second_momentum_buffer"):
                torch.testing.assert_close(fast.state[p][key], twin.state[q][key], **TOL)


def test_row_normalisation_by_hand():
    """O (3 × 2, tall) = [[3, 4], [0, 1], [1, 1]], beta2 = 0.95, v_0 = 0, eps = 0.

    v = 0.05 · mean_cols(O²) = 0.05 · [12.5, 0.5, 1] = [0.625, 0.025, 0.05]; every row of
    Ô = O / sqrt(v) then has norm sqrt(2 / 0.05) = sqrt(40) (v has no bias correction: the
    first step equalises the rows). restore_norm: D = Ô · ||O|| / ||Ô|| · sqrt(3/2) with
    ||O|| = sqrt(28), ||Ô|| = sqrt(120); rms_0.2: D = 0.2 · sqrt(6) · Ô / sqrt(120).
    """
    o = torch.tensor([[3.0, 4.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    v_expected = torch.tensor([[0.625], [0.025], [0.05]], dtype=torch.float64)
    o_hat = o / v_expected.sqrt()
    torch.testing.assert_close(
        o_hat.norm(dim=1), torch.full((3,), math.sqrt(40), dtype=torch.float64)
    )
    for convention, scale in [
        ("restore_norm", math.sqrt(28 / 120) * math.sqrt(1.5)),
        ("rms_0.2", 0.2 * math.sqrt(6) / math.sqrt(120)),
    ]:
        v = torch.zeros(3, 1, dtype=torch.float64)
        d = row_normalize(o.clone(), v, beta2=0.95, eps=0.0, lr_convention=convention)
        torch.testing.assert_close(v, v_expected, rtol=1e-15, atol=0)
        torch.testing.assert_close(d, o_hat * scale, rtol=1e-14, atol=0)
    # second call: v ← 0.95 v + 0.05 mean_cols(O2²)
    o2 = torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, 3.0]], dtype=torch.float64)
    v = v_expected.clone()
    row_normalize(o2.clone(), v, beta2=0.95, eps=0.0, lr_convention="rms_0.2")
    torch.testing.assert_close(
        v, 0.95 * v_expected + 0.05 * torch.tensor([[0.5], [4.0], [4.5]], dtype=torch.float64)
    )


@pytest.mark.parametrize("shape", [(16, 4), (4, 16), (9, 9)])
def test_rms_convention_moves_every_matrix_by_rms_point_two_lr(shape):
    w = torch.nn.Parameter(torch.randn(*shape, generator=torch.Generator().manual_seed(5)))
    opt = NorMuon([w], lr=0.01, lr_convention="rms_0.2")
    before = w.detach().clone()
    w.grad = torch.randn(shape)
    opt.step()
    rms = (w.detach() - before).pow(2).mean().sqrt().item()
    assert rms == pytest.approx(0.2 * 0.01, rel=1e-5)
    assert (
        opt.defaults["lr_convention"] == "rms_0.2"
        and opt.param_groups[0]["lr_convention"] == "rms_0.2"
    )


def test_parameters_without_gradients_are_skipped_and_the_raw_gradient_is_kept():
    """Deviation from the authors' class (module doc): no zero-gradient step, p.grad untouched."""
    a, b = torch.nn.Parameter(torch.ones(4, 3)), torch.nn.Parameter(torch.ones(3, 4))
    opt = NorMuon([a, b], weight_decay=0.5)
    g = torch.randn(4, 3)
    a.grad = g.clone()
    opt.step()
    assert torch.equal(b, torch.ones(3, 4)) and b not in opt.state
    assert torch.equal(a.grad, g)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(beta2=1.0), r"Invalid beta2: 1\.0 \(must be in \[0, 1\)\)"),
        (dict(eps=-1.0), r"Invalid epsilon value: -1\.0"),
        (
            dict(lr_convention="adamw"),
            r"Invalid lr_convention: 'adamw' \(must be one of 'restore_norm', 'rms_0\.2'\)",
        ),
        (dict(momentum="0.9"), r"Invalid momentum value: '0\.9'"),
        (dict(lr=-0.1), r"Invalid learning rate: -0\.1"),
    ],
)
def test_argument_validation_like_torch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NorMuon([torch.nn.Parameter(torch.zeros(3, 3))], **kwargs)
