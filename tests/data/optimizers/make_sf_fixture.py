"""Known answers from facebookresearch/schedule_free at git HEAD 70785b5 (not the PyPI 1.4.1 wheel).

1. AdamWScheduleFree(inner_momentum=0.9), foreach and per-tensor paths, pseudo-random gradients;
2. AdamCScheduleFreePlusPaper on a tiny least-squares problem (loss and gradient taken at y), three
   configurations; the third sets group['lr'] = lr * min(1, (k+1)/W) before each step (an external
   linear warmup, the way the reference expects warmup to be applied).
Run OUTSIDE the repository with the reference package's ``schedulefree/`` directory (git HEAD)
in SF_HEAD_DIR (the fetched code is never committed here).

usage: python make_sf_fixture.py SF_HEAD_DIR OUT_DIR
"""

import json
import sys

sys.path.insert(0, sys.argv[1])
import schedulefree  # noqa: E402  (the reference checkout given on the command line)
import torch  # noqa: E402

assert hasattr(schedulefree, "AdamCScheduleFreePlusPaper"), schedulefree.__file__
torch.set_num_threads(1)
out = sys.argv[2]


def L(t):  # noqa: N802 - exact float lists
    return t.detach().float().tolist()


# ---------------------------------------------------------------- 1. inner momentum
def inner_momentum(foreach):
    gen = torch.Generator().manual_seed(1905)
    shapes = {"w": (4, 3), "b": (3,)}
    params = {n: torch.nn.Parameter(torch.randn(*s, generator=gen)) for n, s in shapes.items()}
    cfg = dict(
        lr=0.01,
        betas=(0.9, 0.99),
        weight_decay=0.05,
        warmup_steps=5,
        r=0.5,
        weight_lr_power=2.0,
        inner_momentum=0.9,
    )
    rec = {
        "initial": {n: L(p) for n, p in params.items()},
        "steps": [],
        "config": {**cfg, "betas": list(cfg["betas"]), "foreach": foreach},
    }
    opt = schedulefree.AdamWScheduleFree(list(params.values()), foreach=foreach, **cfg)
    opt.train()
    for _ in range(12):
        grads = {
            n: torch.randn(p.shape, generator=gen) * 0.1 + 0.05 * p.detach()
            for n, p in params.items()
        }
        for n, p in params.items():
            p.grad = grads[n].clone()
        opt.step()
        g = opt.param_groups[0]
        rec["steps"].append(
            {
                "grads": {n: L(v) for n, v in grads.items()},
                "params": {n: L(p) for n, p in params.items()},
                "state": {n: {k: L(v) for k, v in opt.state[p].items()} for n, p in params.items()},
                "group": {k: g[k] for k in ("k", "lr_max", "weight_sum", "scheduled_lr")},
            }
        )
    opt.eval()
    rec["x"] = {n: L(p) for n, p in params.items()}
    return rec


# ---------------------------------------------------------------- 2. ScheduleFree+
def sf_plus(cfg, two_groups=False, warmup=0, steps=12):
    gen = torch.Generator().manual_seed(2605)
    X = torch.randn(8, 4, generator=gen)
    Y = torch.randn(8, 3, generator=gen)
    params = {
        "w": torch.nn.Parameter(torch.randn(3, 4, generator=gen) * 0.5),
        "b": torch.nn.Parameter(torch.zeros(3)),
    }
    if two_groups:
        groups = [
            dict(params=[params["w"]], weight_decay=cfg.get("weight_decay", 0.0)),
            dict(params=[params["b"]], weight_decay=0.0, lr=0.5 * cfg.get("lr", 1.0)),
        ]
    else:
        groups = list(params.values())
    opt = schedulefree.AdamCScheduleFreePlusPaper(groups, **cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]
    opt.train()
    rec = {
        "initial": {n: L(p) for n, p in params.items()},
        "steps": [],
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "two_groups": two_groups,
        "warmup": warmup,
        "X": L(X),
        "Y": Y.tolist(),
    }
    for t in range(steps):
        if warmup:
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * min(1.0, (t + 1) / warmup)
        for p in params.values():
            p.grad = None
        loss = 0.5 * ((X @ params["w"].T + params["b"] - Y) ** 2).mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in params.items()}
        opt.step_func(loss.item())
        rec["steps"].append(
            {
                "loss": loss.item(),
                "grads": {n: L(v) for n, v in grads.items()},
                "params": {n: L(p) for n, p in params.items()},
                "state": {
                    n: {k: L(v) for k, v in opt.state[p].items() if k != "y"}
                    for n, p in params.items()
                },
                "groups": [
                    {
                        k: g[k]
                        for k in (
                            "k",
                            "lr_max",
                            "weight_sum",
                            "scheduled_lr",
                            "grad_l1_ema",
                            "ip_term",
                            "function_value_ema",
                        )
                    }
                    for g in opt.param_groups
                ],
            }
        )
    return rec


cases = {
    "sf_adamw_inner_momentum": {
        "foreach": inner_momentum(True),
        "per_tensor": inner_momentum(False),
    },
    "sf_plus": {
        "defaults": sf_plus({}),
        "all_options": sf_plus(
            dict(
                lr=0.5,
                betas=(0.85, 0.9),
                sf_beta1=0.8,
                weight_decay=20.0,
                r=2.0,
                polyak_beta=0.9,
                c_warmup=3,
                sf_beta1_anneal_steps=6,
                sf_beta1_max=0.965,
                weight_lr_power=1.5,
            )
        ),
        "two_groups_warmup": sf_plus(
            dict(lr=0.8, weight_decay=5.0, polyak_beta=0.5, c_warmup=2), two_groups=True, warmup=4
        ),
    },
}
for name, rec in cases.items():
    rec["source"] = "facebookresearch/schedule_free git HEAD 70785b5 (2026-07-28)"
    rec["torch"] = torch.__version__
    json.dump(rec, open(f"{out}/{name}.json", "w"))
    print(name, "ok")
