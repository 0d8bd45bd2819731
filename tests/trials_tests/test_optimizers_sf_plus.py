"""ScheduleFree+ against the authors' reference class (known-answer fixture), by hand, and its API.

Fixture: ``AdamCScheduleFreePlusPaper`` at facebookresearch/schedule_free git HEAD run on a tiny
least-squares problem (tests/data/README.md); the loss and gradients it saw are fed to
ours, so every step is compared on the same inputs. Tolerance: rtol 1e-5, atol 1e-6 (the
repository's own for in-place vs explicit forms, docs/equations.md §1.3); ours keeps only z and
recovers x from y, the reference stores x, y and z.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from trials.optimizers import ScheduleFreePlus
from trials.optimizers.schedule_free_plus import annealed_sf_beta1

DATA = Path(__file__).resolve().parents[1] / "data" / "optimizers"
TOL = dict(rtol=1e-5, atol=1e-6)
FIXTURE = json.loads((DATA / "sf_plus.json").read_text())
F64 = torch.float64


def x_of(opt: ScheduleFreePlus, p: torch.Tensor) -> torch.Tensor:
    return torch.lerp(p.detach(), opt.state[p]["z"], 1 - 1 / opt.interpolation(opt.param_groups[0]))


@pytest.mark.parametrize("case", ["defaults", "all_options", "two_groups_warmup"])
def test_matches_the_reference_class_step_by_step(case):
    rec = FIXTURE[case]
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in rec["config"].items()}
    params = {n: torch.nn.Parameter(torch.tensor(v)) for n, v in rec["initial"].items()}
    if rec["two_groups"]:  # the reference ran these groups with lr · min(1, (k+1)/4) set outside
        groups = [
            {"params": [params["w"]], "weight_decay": cfg["weight_decay"]},
            {"params": [params["b"]], "weight_decay": 0.0, "lr": 0.5 * cfg["lr"]},
        ]
    else:
        groups = list(params.values())
    opt = ScheduleFreePlus(groups, warmup_steps=rec["warmup"], **cfg)
    opt.train()
    for t, row in enumerate(rec["steps"]):
        for n, p in params.items():
            p.grad = torch.tensor(row["grads"][n])
        assert opt.step_func(row["loss"]) == row["loss"]
        for n, p in params.items():
            torch.testing.assert_close(p.detach(), torch.tensor(row["params"][n]), **TOL)
            for key, value in row["state"][n].items():
                ours = x_of(opt, p) if key == "x" else opt.state[p][key]
                torch.testing.assert_close(
                    ours,
                    torch.tensor(value),
                    **TOL,
                    msg=lambda m, key=key, t=t: f"{key} at {t}: {m}",
                )
        for group, ref in zip(opt.param_groups, row["groups"], strict=True):
            assert group["k"] == ref["k"]
            for key in (
                "lr_max",
                "weight_sum",
                "scheduled_lr",
                "grad_l1_ema",
                "function_value_ema",
            ):
                assert group[key] == pytest.approx(ref[key], rel=1e-6), (t, key)
            assert group["ip_term"] == pytest.approx(ref["ip_term"], rel=1e-3, abs=1e-8)


def test_two_polyak_steps_by_hand():
    """From a loaded state y = 1, z = 2 (x = 0 with beta = 0.5), k = 1, Σw = 10, lr_max = 1,
    ê_0 = 2; lr = 1, Adam betas (0.5, 0.5), polyak_beta = 0.5, lambda = 0.1, eps = 1e-12.
    Every line is docs/equations.md §3.1 with these numbers; ê is fed back bias-corrected, as the reference does."""
    p = torch.nn.Parameter(torch.ones(1, dtype=F64))
    opt = ScheduleFreePlus(
        [p], lr=1.0, betas=(0.5, 0.5), sf_beta1=0.5, eps=1e-12, weight_decay=0.1, polyak_beta=0.5
    )
    state = opt.state_dict()
    state["param_groups"][0].update(
        k=1, weight_sum=10.0, lr_max=1.0, grad_l1_ema=2.0, train_mode=True
    )
    state["state"] = {
        0: {
            "z": torch.full((1,), 2.0, dtype=F64),
            "exp_avg": torch.zeros(1, dtype=F64),
            "exp_avg_sq": torch.zeros(1, dtype=F64),
        }
    }
    opt.load_state_dict(state)
    root = math.sqrt(math.pi / 2)

    # step A (k = 1): f = 3, g = 2
    ip = 0.5 * 2 * (2 - 0)  # beta <g, z − x> = 2
    ema = (0.5 * 2.0 + 0.5 * 2 * root) / (1 - 0.5**2)  # ê_1 = (1 + sqrt(pi/2)) / 0.75
    gamma = (3 + ip) / ema  # alpha · lr
    c = gamma**2 / (10 + gamma**2)  # lr_max = gamma > 1
    step = (1 / 0.75) / (math.sqrt(2 / 0.75) + 1e-12)  # m̂ = 1/0.75, v̂ = 2/0.75
    z = 2 - gamma**2 * 0.1 * 1 - gamma * step
    x = (1 - c) * 0 + c * z
    p.grad = torch.full((1,), 2.0, dtype=F64)
    opt.step_func(3.0)
    assert opt.param_groups[0]["scheduled_lr"] == pytest.approx(gamma, rel=1e-14)
    assert gamma == pytest.approx(5 * 0.75 / (1 + root), rel=1e-15)  # 1.66421536…
    assert (p.item(), opt.state[p]["z"].item(), x_of(opt, p).item()) == pytest.approx(
        (0.5 * x + 0.5 * z, z, x), rel=1e-13
    )

    # step B (k = 2): f = 1, g = −3
    ip_b = 0.5 * (-3) * (z - x)
    ema_b = (0.5 * ema + 0.5 * 3 * root) / (1 - 0.5**3)  # the corrected ê_1 is fed back
    gamma_b = max(0.0, 1 + ip_b) / ema_b
    lr_max = max(gamma, gamma_b)
    c_b = lr_max**2 / (10 + gamma**2 + lr_max**2)
    m_hat = (0.5 * 1 + 0.5 * -3) / (1 - 0.5**3)
    v_hat = (0.5 * 2 + 0.5 * 9) / (1 - 0.5**3)
    y = 0.5 * x + 0.5 * z
    z_b = z - gamma_b**2 * 0.1 * y - gamma_b * m_hat / (math.sqrt(v_hat) + 1e-12)
    x_b = (1 - c_b) * x + c_b * z_b
    p.grad = torch.full((1,), -3.0, dtype=F64)
    opt.step_func(1.0)
    group = opt.param_groups[0]
    assert (group["ip_term"], group["grad_l1_ema"], group["scheduled_lr"]) == pytest.approx(
        (ip_b, ema_b, gamma_b), rel=1e-12
    )
    assert (p.item(), opt.state[p]["z"].item(), x_of(opt, p).item()) == pytest.approx(
        (0.5 * x_b + 0.5 * z_b, z_b, x_b), rel=1e-12
    )


def test_beta_anneal_is_log_linear_in_one_minus_beta():
    """1 − beta_k = (1 − b)^(1 − π) (1 − b_max)^π: b at k = 0, b_max from k = T on, and the
    geometric mean of 1 − b and 1 − b_max halfway."""
    b, b_max, steps = 0.9, 0.99, 10
    assert annealed_sf_beta1(0, b, b_max, steps) == b
    assert annealed_sf_beta1(5, b, b_max, steps) == pytest.approx(
        1 - math.sqrt(0.1 * 0.01), rel=1e-14
    )
    assert annealed_sf_beta1(10, b, b_max, steps) == pytest.approx(b_max, rel=1e-14)
    assert annealed_sf_beta1(50, b, b_max, steps) == pytest.approx(b_max, rel=1e-14)
    assert annealed_sf_beta1(7, b, b_max, 0) == b


def _closure_run(use_closure: bool) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = ScheduleFreePlus(model.parameters(), lr=0.5, polyak_beta=0.9, c_warmup=2)
    opt.train()
    data = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(data).pow(2).mean() + 0.5
        loss.backward()
        return loss

    for _ in range(5):
        if use_closure:
            opt.step(closure)
        else:
            opt.step_func(closure().item())
    return [p.detach().clone() for p in model.parameters()]


def test_step_with_a_closure_equals_step_func_with_its_loss():
    assert all(
        torch.equal(a, b) for a, b in zip(_closure_run(True), _closure_run(False), strict=True)
    )


def test_needs_the_loss_and_train_mode():
    p = torch.nn.Parameter(torch.ones(3))
    opt = ScheduleFreePlus([p])
    assert ScheduleFreePlus.needs_loss is True and opt.schedule_free is True
    p.grad = torch.ones(3)
    with pytest.raises(
        RuntimeError,
        match=r"ScheduleFreePlus\.step_func\(\)|called in eval mode .* Call optimizer\.train\(\)",
    ):
        opt.step_func(1.0)
    opt.train()
    with pytest.raises(
        RuntimeError,
        match=r"needs the loss at y for its Polyak step: call step\(closure\) or step_func\(loss\)",
    ):
        opt.step()
    for bad in (float("nan"), None, "low"):
        with pytest.raises(
            ValueError, match=r"step_func needs the loss at y as a finite number, got"
        ):
            opt.step_func(bad)


def test_zero_gradients_take_no_step():
    """ê = 0: the reference divides by zero; here alpha = 0 and nothing moves (module doc)."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = ScheduleFreePlus([p], weight_decay=10.0)
    opt.train()
    p.grad = torch.zeros(3)
    opt.step_func(2.0)
    assert torch.equal(p.detach(), torch.ones(3)) and opt.param_groups[0]["scheduled_lr"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lr=-1.0), r"Invalid learning rate: -1\.0"),
        (dict(betas=(0.9, 1.0)), r"Invalid beta2: 1\.0"),
        (dict(sf_beta1=1.0), r"Invalid sf_beta1: 1\.0 \(must be in \(0, 1\)\)"),
        (dict(eps=0.0), r"Invalid epsilon value: 0\.0 \(must be a number > 0\)"),
        (dict(weight_decay=-20.0), r"Invalid weight_decay value: -20\.0"),
        (dict(polyak_beta=-0.1), r"Invalid polyak_beta: -0\.1"),
        (dict(c_warmup=-1), r"Invalid c_warmup: -1"),
        (dict(sf_beta1_anneal_steps=True), r"Invalid sf_beta1_anneal_steps: True"),
        (dict(sf_beta1_max=1.5), r"Invalid sf_beta1_max: 1\.5"),
        (dict(warmup_steps="10"), r"Invalid warmup_steps: '10'"),
    ],
)
def test_argument_validation_like_torch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScheduleFreePlus([torch.nn.Parameter(torch.zeros(3))], **kwargs)
