"""Slow twin of ScheduleFree+ with explicit x, y, z, from docs/equations.md §3.1 (tests only).

Written as the equations read, out of place, with no code shared with
:class:`trials.optimizers.ScheduleFreePlus` (which keeps only z and recovers x from y)::

    beta_k = 1 − exp((1 − π) ln(1 − b_sf) + π ln(1 − b_max)),   π = min(k / T_a, 1)
    I = beta_k Σ <g, z − x>;   e = p_b ê + (1 − p_b) sqrt(pi/2) Σ ||g||_1;   ê = e / (1 − p_b^(k+1))
    alpha = max(0, f + I) / ê;   gamma = max(lr s_k, eps) alpha;   lr_max = max(lr_max, gamma)
    c = 1 (k < c_warmup)  or  w_k / Σ w,  w_k = (k + 1)^r lr_max^p
    z ← z − gamma² λ y − gamma m̂ / (sqrt(v̂) + eps);   x ← (1 − c) x + c z;   y = beta_k x + (1 − beta_k) z
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trials.optimizers._reference import StoredXYModes

__all__ = ["ScheduleFreePlusReference"]


class ScheduleFreePlusReference(StoredXYModes):
    schedule_free = True
    needs_loss = True

    def __init__(self, params: Any, **defaults: Any) -> None:
        defaults.update(k=0, train_mode=False, weight_sum=0.0, grad_l1_ema=0.0)
        defaults.setdefault("lr_max", defaults.get("eps", 1e-8))
        super().__init__(params, defaults)
        for group in self.param_groups:
            group["lr_max"] = group["eps"]
            group["sf_beta1_current"] = group["sf_beta1"]

    def interpolation(self, group: dict[str, Any]) -> float:
        return group["sf_beta1_current"]

    @torch.no_grad()
    def step_func(self, f: float) -> float:
        g0 = self.param_groups[0]
        if not g0["train_mode"]:
            raise RuntimeError("reference step in eval mode: call optimizer.train()")
        k = g0["k"]
        if g0["sf_beta1_anneal_steps"] > 0:
            pi = min(k / g0["sf_beta1_anneal_steps"], 1.0)
            beta = 1 - math.exp(
                (1 - pi) * math.log(1 - g0["sf_beta1"]) + pi * math.log(1 - g0["sf_beta1_max"])
            )
        else:
            beta = g0["sf_beta1"]
        active = [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]
        l1 = sum(float(p.grad.double().abs().sum()) for _, p in active)
        ip = sum(
            beta
            * float((p.grad.double() * (self.state[p]["z"] - self.state[p]["x"]).double()).sum())
            for _, p in active
            if "z" in self.state[p]
        )
        pb = g0["polyak_beta"]
        ema = pb * g0["grad_l1_ema"] + (1 - pb) * l1 * math.sqrt(math.pi / 2)
        ema_hat = ema / (1 - pb ** (k + 1))
        alpha = max(0.0, f + ip) / ema_hat if ema_hat > 0 else 0.0
        for group in self.param_groups:
            group["grad_l1_ema"] = ema_hat
            w_steps = group["warmup_steps"]
            s_k = min(1.0, (k + 1) / w_steps) if w_steps > 0 else 1.0
            gamma = group["scheduled_lr"] = max(group["lr"] * s_k, group["eps"]) * alpha
            group["lr_max"] = max(group["lr_max"], gamma)
            if k < group["c_warmup"]:
                c = 1.0
            else:
                w = (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
                group["weight_sum"] += w
                c = w / group["weight_sum"]
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if "z" not in state:
                    state["x"], state["y"], state["z"] = p.clone(), p.clone(), p.clone()
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
                m = state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
                v = state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
                step = (m / (1 - b1 ** (k + 1))) / ((v / (1 - b2 ** (k + 1))).sqrt() + group["eps"])
                z = state["z"] - gamma**2 * group["weight_decay"] * state["y"] - gamma * step
                x = (1 - c) * state["x"] + c * z
                y = beta * x + (1 - beta) * z
                state["x"], state["y"], state["z"] = x, y, z
                p.copy_(y)
            group["sf_beta1_current"] = beta
            group["k"] = k + 1
        return f
