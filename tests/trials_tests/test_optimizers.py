"""Schedule-free AdamW/SGD against their references, step by step.

References: the PyPI ``schedulefree`` 1.4.1 package (pinned in pyproject, docs/equations.md §1.7)
and our own three-sequence twins in ``trials.optimizers._reference``. Both are driven with
identical gradients. Against 1.4.1 the match is bit for bit (same operations in the same order;
inner momentum and refined SF: test_optimizers_sf_adamw_variants.py); against the
three-sequence twins the tolerance is rtol 1e-5, atol 1e-6 in float32, the one the reference
repository's own equivalence tests use (docs/equations.md §1.3). Resuming from a state dict is
bit-exact.
"""

from __future__ import annotations

import io

import pytest
import schedulefree
import torch

from trials.optimizers import RefinedScheduleFreeAdamW, ScheduleFreeAdamW, ScheduleFreeSGD
from trials.optimizers._reference import ScheduleFreeAdamWReference, ScheduleFreeSGDReference

SHAPES = [(16, 8), (8,), (4, 4, 3), (5, 7)]
RTOL, ATOL = 1e-5, 1e-6
STEPS = 300


def make_params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in SHAPES]


def gradients(step: int, params, seed: int = 0) -> list[torch.Tensor]:
    """Pseudo-random gradients, a function of (seed, step) alone, plus a pull toward zero."""
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    return [torch.randn(p.shape, generator=g) * 0.1 + 0.05 * p.detach() for p in params]


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()


def as_groups(params, group_kwargs):
    """One group (``group_kwargs`` None) or two groups with their own hyperparameters."""
    if group_kwargs is None:
        return params
    return [{"params": params[:2], **group_kwargs[0]}, {"params": params[2:], **group_kwargs[1]}]


def assert_params_close(a_params, b_params, what: str) -> None:
    for i, (a, b) in enumerate(zip(a_params, b_params, strict=True)):
        torch.testing.assert_close(
            a.detach(), b.detach(), rtol=RTOL, atol=ATOL, msg=lambda m, i=i: f"{what}[{i}]: {m}"
        )


def drive(
    ours, ref, p_ours, p_ref, steps, *, start=0, eval_every=50, state_keys=("z",), lr_cut=None
):
    """Step both with identical gradients; compare y every step, x and the state every ``eval_every``.

    ``lr_cut=(step, factor)`` multiplies every group's lr from that step on, as an external
    schedule would: the averaging weights must keep using the running max lr
    (docs/equations.md §1.2).
    """
    for t in range(start, start + steps):
        if lr_cut is not None and t == lr_cut[0]:
            for opt in (ours, ref):
                for group in opt.param_groups:
                    group["lr"] *= lr_cut[1]
        grads = gradients(t, p_ref)
        set_grads(p_ours, grads)
        set_grads(p_ref, grads)
        ours.step()
        ref.step()
        assert_params_close(p_ours, p_ref, f"y at step {t}")
        if t % eval_every == eval_every - 1:
            for key in state_keys:
                assert_params_close(
                    [ours.state[p][key] for p in p_ours],
                    [ref.state[p][key] for p in p_ref],
                    f"{key} at step {t}",
                )
            ours.eval()
            ref.eval()
            assert_params_close(p_ours, p_ref, f"x at step {t}")
            ours.train()
            ref.train()


# ------------------------------------------------------------------------ vs schedulefree 1.4.1
SF_ADAMW_CASES = {
    "plain": (dict(lr=0.01), None),
    "warmup": (dict(lr=0.02, warmup_steps=50), None),
    "decay+warmup": (dict(lr=0.01, weight_decay=0.1, warmup_steps=20), None),
    "r,p=0": (dict(lr=0.01, r=0.75, weight_lr_power=0.0), None),
    "r=2,p=2,all": (
        dict(lr=0.005, r=2.0, weight_lr_power=2.0, warmup_steps=10, weight_decay=0.05),
        None,
    ),
    "betas": (dict(lr=0.01, betas=(0.95, 0.99)), None),
    "external lr cut": (dict(lr=0.02, warmup_steps=20, weight_decay=0.1), "cut"),
    "two groups": (
        dict(lr=0.01, warmup_steps=15),
        [dict(weight_decay=0.1), dict(lr=0.003, weight_decay=0.0, betas=(0.8, 0.99))],
    ),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per-tensor"])
@pytest.mark.parametrize("case", list(SF_ADAMW_CASES))
def test_sf_adamw_matches_schedulefree(case, foreach):
    kwargs, groups = SF_ADAMW_CASES[case]
    lr_cut = (120, 0.25) if groups == "cut" else None
    groups = None if groups == "cut" else groups
    p_ours, p_ref = make_params(1), make_params(1)
    ours = ScheduleFreeAdamW(as_groups(p_ours, groups), foreach=foreach, **kwargs)
    ref = schedulefree.AdamWScheduleFree(as_groups(p_ref, groups), **kwargs)
    ours.train()
    ref.train()
    drive(ours, ref, p_ours, p_ref, STEPS, state_keys=("z", "exp_avg_sq"), lr_cut=lr_cut)
    assert [g["k"] for g in ours.param_groups] == [STEPS] * len(ours.param_groups)
    for key in ("weight_sum", "lr_max", "scheduled_lr"):
        assert [g[key] for g in ours.param_groups] == pytest.approx(
            [g[key] for g in ref.param_groups], rel=1e-12
        )


SF_SGD_CASES = {
    "plain": (dict(lr=0.5), None),
    "warmup+decay": (dict(lr=1.0, warmup_steps=30, weight_decay=0.01), None),
    "r,p=0": (dict(lr=0.3, momentum=0.95, r=1.0, weight_lr_power=0.0), None),
    "two groups": (
        dict(lr=0.5, warmup_steps=10),
        [dict(weight_decay=0.02), dict(lr=0.2, momentum=0.8)],
    ),
}


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per-tensor"])
@pytest.mark.parametrize("case", list(SF_SGD_CASES))
def test_sf_sgd_matches_schedulefree(case, foreach):
    kwargs, groups = SF_SGD_CASES[case]
    p_ours, p_ref = make_params(2), make_params(2)
    ours = ScheduleFreeSGD(as_groups(p_ours, groups), foreach=foreach, **kwargs)
    ref = schedulefree.SGDScheduleFree(as_groups(p_ref, groups), **kwargs)
    ours.train()
    ref.train()
    drive(ours, ref, p_ours, p_ref, STEPS)


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "per-tensor"])
@pytest.mark.parametrize(
    ("cls", "ref_cls", "case"),
    [(ScheduleFreeAdamW, schedulefree.AdamWScheduleFree, c) for c in SF_ADAMW_CASES]
    + [(ScheduleFreeSGD, schedulefree.SGDScheduleFree, c) for c in SF_SGD_CASES],
)
def test_bit_identical_to_schedulefree_1_4_1(cls, ref_cls, case, foreach):
    """With the package's own path (foreach or not) and ``inner_momentum=0`` the two agree bit for
    bit: the same float operations in the same order, and p.grad kept intact changes nothing."""
    kwargs, groups = (SF_ADAMW_CASES if cls is ScheduleFreeAdamW else SF_SGD_CASES)[case]
    if cls is ScheduleFreeAdamW:
        kwargs = {**kwargs, "inner_momentum": 0.0}
    lr_cut = (60, 0.25) if groups == "cut" else None
    groups = None if groups == "cut" else groups
    p_ours, p_ref = make_params(1), make_params(1)
    ours = cls(as_groups(p_ours, groups), foreach=foreach, **kwargs)
    ref = ref_cls(
        as_groups(p_ref, groups),
        foreach=foreach,
        **{k: v for k, v in kwargs.items() if k != "inner_momentum"},
    )
    ours.train()
    ref.train()
    for t in range(120):
        if lr_cut is not None and t == lr_cut[0]:
            for group in (*ours.param_groups, *ref.param_groups):
                group["lr"] *= lr_cut[1]
        grads = gradients(t, p_ref)
        set_grads(p_ours, grads)
        set_grads(p_ref, grads)
        ours.step()
        ref.step()
        assert all(torch.equal(a, b) for a, b in zip(p_ours, p_ref, strict=True)), t
    for p, q in zip(p_ours, p_ref, strict=True):
        assert torch.equal(ours.state[p]["z"], ref.state[q]["z"])
        assert "exp_avg" not in ours.state[p]  # no first moment allocated at inner_momentum=0


# ------------------------------------------------------------------------ vs our 3-sequence twin
@pytest.mark.parametrize(
    ("fast_cls", "ref_cls", "kwargs"),
    [
        (
            ScheduleFreeAdamW,
            ScheduleFreeAdamWReference,
            dict(lr=0.01, weight_decay=0.1, warmup_steps=20, r=0.5),
        ),
        (
            ScheduleFreeAdamW,
            ScheduleFreeAdamWReference,
            dict(lr=0.01, weight_decay=0.1, warmup_steps=20, r=0.5, inner_momentum=0.9),
        ),
        (
            ScheduleFreeSGD,
            ScheduleFreeSGDReference,
            dict(lr=0.5, weight_decay=0.02, warmup_steps=20, weight_lr_power=0.0),
        ),
    ],
    ids=["adamw", "adamw-inner-momentum", "sgd"],
)
def test_fast_matches_three_sequence_reference(fast_cls, ref_cls, kwargs):
    p_fast, p_ref = make_params(3), make_params(3)
    fast, ref = fast_cls(p_fast, **kwargs), ref_cls(p_ref, **kwargs)
    fast.train()
    ref.train()
    keys = ("z", "exp_avg_sq", "exp_avg") if kwargs.get("inner_momentum") else ("z",)
    drive(fast, ref, p_fast, p_ref, 200, state_keys=keys)


def test_three_sequence_reference_matches_the_package_reference():
    """Our twin and ``AdamWScheduleFreeReference`` both store x, y, z: two independent readings."""
    kwargs = dict(lr=0.01, weight_decay=0.1, warmup_steps=20, r=0.5)
    p_ours, p_ref = make_params(3), make_params(3)
    ours = ScheduleFreeAdamWReference(p_ours, **kwargs)
    ref = schedulefree.AdamWScheduleFreeReference(p_ref, **kwargs)
    ours.train()
    ref.train()
    drive(ours, ref, p_ours, p_ref, 100, state_keys=("x", "z"))


# ------------------------------------------------------------------------ known answers
@pytest.mark.parametrize(
    ("warmup", "r", "power"), [(0, 0.0, 2.0), (8, 0.0, 2.0), (5, 1.5, 2.0), (5, 0.0, 0.0)]
)
def test_x_is_the_weighted_average_of_z(warmup, r, power):
    """x_t = sum_k w_k z_{k+1} / sum_k w_k with w_k = (k+1)^r lr_max,k^p (docs/equations.md §1.2), computed here."""
    params = make_params(4)
    lr = 0.2
    opt = ScheduleFreeSGD(
        params, lr=lr, momentum=0.9, warmup_steps=warmup, r=r, weight_lr_power=power
    )
    opt.train()
    weights, zs = [], []
    for k in range(40):
        set_grads(params, gradients(k, params))
        opt.step()
        lr_max = lr * min(1.0, (k + 1) / warmup) if warmup else lr  # warmup only increases the lr
        weights.append((k + 1) ** r * lr_max**power)
        zs.append([opt.state[p]["z"].double() for p in params])
    opt.eval()
    total = sum(weights)
    for i, p in enumerate(params):
        expected = sum(w * z[i] for w, z in zip(weights, zs, strict=True)) / total
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-5, atol=1e-6)


def test_first_step_puts_x_y_z_at_the_same_point():
    """c = 1 at the first step, so x_1 = z_1 and y_1 = z_1 (docs/equations.md §1.2)."""
    params = make_params(5)
    opt = ScheduleFreeAdamW(params, lr=0.1, warmup_steps=3)
    opt.train()
    grads = gradients(0, params)
    set_grads(params, grads)
    opt.step()
    for p in params:
        assert torch.equal(p, opt.state[p]["z"])
    # z_1 = z_0 - (lr/3) g / (|g| + eps) (v̂ = g² at step 0): a sign step of length lr/3
    z0 = make_params(5)
    for p, p0, g in zip(params, z0, grads, strict=True):
        torch.testing.assert_close(
            p.detach(), p0.detach() - 0.1 / 3 * g / (g.abs() + 1e-8), rtol=RTOL, atol=ATOL
        )


def test_raw_gradient_is_left_untouched():
    params = make_params(6)
    opt = ScheduleFreeAdamW(params, lr=0.01, weight_decay=0.1)
    opt.train()
    grads = gradients(0, params)
    set_grads(params, grads)
    opt.step()
    for p, g in zip(params, grads, strict=True):
        assert torch.equal(p.grad, g)


def test_parameters_without_gradients_are_skipped_and_untouched():
    params = make_params(7)
    frozen = params[1].detach().clone()
    opt = ScheduleFreeAdamW(params, lr=0.01)
    opt.train()
    for t in range(3):
        set_grads(params, gradients(t, params))
        params[1].grad = None
        opt.step()
    assert "z" not in opt.state[params[1]]
    opt.eval()
    assert torch.equal(params[1].detach(), frozen)


# ------------------------------------------------------------------------ modes and state
def test_step_in_eval_mode_is_an_error():
    params = make_params(8)
    opt = ScheduleFreeAdamW(params)
    with pytest.raises(RuntimeError, match=r"eval mode .* Call optimizer\.train\(\)"):
        opt.step()  # the constructor leaves the optimizer in eval mode
    opt.train()
    set_grads(params, gradients(0, params))
    opt.step()
    opt.train(False)  # nn.Module-style: train(False) is eval()
    with pytest.raises(RuntimeError, match=r"ScheduleFreeAdamW\.step\(\) called in eval mode"):
        opt.step()


def test_mode_switches_are_idempotent_and_invert_each_other():
    params = make_params(9)
    opt = ScheduleFreeAdamW(params, lr=0.01)
    opt.train()
    for t in range(20):
        set_grads(params, gradients(t, params))
        opt.step()
    y = [p.detach().clone() for p in params]
    opt.eval()
    x = [p.detach().clone() for p in params]
    opt.eval()  # no second shift
    assert all(torch.equal(p, xi) for p, xi in zip(params, x, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(x, y, strict=True))
    opt.train()
    opt.train()
    assert_params_close(params, y, "y after eval/train")


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (ScheduleFreeAdamW, dict(lr=0.01, warmup_steps=20, weight_decay=0.1, r=0.5)),
        (ScheduleFreeSGD, dict(lr=0.5, warmup_steps=20, weight_decay=0.01)),
    ],
    ids=["adamw", "sgd"],
)
def test_state_dict_round_trip_mid_run_is_bit_exact(cls, kwargs):
    """Stop at step 150, checkpoint weights + optimizer through torch.save, resume in a fresh
    optimizer: steps 150..299 equal the uninterrupted run bit for bit."""
    p_a = make_params(10)
    a = cls(p_a, **kwargs)
    a.train()
    for t in range(150):
        set_grads(p_a, gradients(t, p_a))
        a.step()
    buffer = io.BytesIO()
    torch.save({"weights": [p.detach() for p in p_a], "optimizer": a.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    p_b = make_params(99)  # different initial values: everything must come from the checkpoint
    with torch.no_grad():
        for pb, w in zip(p_b, saved["weights"], strict=True):
            pb.copy_(w)
    b = cls(p_b, **kwargs)
    b.load_state_dict(saved["optimizer"])
    group = b.param_groups[0]
    assert group["train_mode"] is True and group["k"] == 150
    assert group["weight_sum"] == a.param_groups[0]["weight_sum"]
    for t in range(150, 300):
        grads = gradients(t, p_a)
        set_grads(p_a, grads)
        set_grads(p_b, grads)
        a.step()
        b.step()
    assert all(torch.equal(x, y) for x, y in zip(p_a, p_b, strict=True))
    a.eval()
    b.eval()
    assert all(torch.equal(x, y) for x, y in zip(p_a, p_b, strict=True))


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (ScheduleFreeAdamW, dict(lr=-1.0), r"Invalid learning rate: -1\.0"),
        (ScheduleFreeAdamW, dict(betas=(0.9, 1.0)), r"Invalid beta2: 1\.0"),
        (ScheduleFreeAdamW, dict(betas=(0.0, 0.999)), r"Invalid beta1: 0\.0"),
        (ScheduleFreeAdamW, dict(eps=-1e-8), r"Invalid epsilon value"),
        (ScheduleFreeAdamW, dict(weight_decay=-0.1), r"Invalid weight_decay value: -0\.1"),
        (ScheduleFreeAdamW, dict(warmup_steps=2.5), r"Invalid warmup_steps: 2\.5"),
        (ScheduleFreeAdamW, dict(r=-1.0), r"Invalid r: -1\.0"),
        (ScheduleFreeAdamW, dict(weight_lr_power=float("nan")), r"Invalid weight_lr_power"),
        (ScheduleFreeAdamW, dict(inner_momentum=-0.1), r"Invalid inner_momentum: -0\.1"),
        (ScheduleFreeAdamW, dict(betas=0.9), r"Invalid betas: 0\.9"),
        (ScheduleFreeAdamW, dict(lr="0.01"), r"Invalid learning rate: '0\.01'"),
        (ScheduleFreeSGD, dict(momentum=1.0), r"Invalid momentum value: 1\.0"),
        (ScheduleFreeSGD, dict(momentum=0.0), r"Invalid momentum value: 0\.0"),
        (RefinedScheduleFreeAdamW, dict(C=0.0), r"Invalid C: 0\.0"),
    ],
)
def test_argument_validation_like_torch(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(make_params(0), **kwargs)
