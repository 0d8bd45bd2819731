"""Slow twins of Muon, NorMuon and SF-NorMuon, written straight from the equations (tests only).

They share no code with the fast classes: the polar factor is the plain quintic iteration in
float64 (``X ← a X + b A X + c A² X`` on ``U / ||U||_F``), everything else is written out with
out-of-place tensor algebra, and SF-NorMuon stores ``x``, ``y`` and ``z`` explicitly
(docs/equations.md §3.2, §4.1, §4.3). Group keys and state names are the fast
classes', so a test can build a twin from a fast optimizer's ``param_groups``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from trials.optimizers._reference import StoredXYModes

__all__ = ["MuonReference", "NorMuonReference", "ScheduleFreeNorMuonReference", "polar_factor"]

_A, _B, _C = 3.4445, -4.7750, 2.0315


def polar_factor(u: Tensor, steps: int = 5) -> Tensor:
    """Quintic Newton–Schulz on ``u / ||u||_F`` in float64, on the wide orientation."""
    x = u.double()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / x.norm()
    for _ in range(steps):
        a = x @ x.T
        x = _A * x + _B * (a @ x) + _C * (a @ a @ x)
    return (x.T if tall else x).to(u.dtype)


def normuon_direction(
    o: Tensor, v: Tensor, beta2: float, eps: float, convention: str
) -> tuple[Tensor, Tensor]:
    """``(D, v')``: per-row second moment, row normalisation and the lr convention."""
    rows, cols = o.shape
    v = beta2 * v + (1 - beta2) * (o * o).mean(dim=1, keepdim=True)
    o_hat = o / (v.sqrt() + eps)
    if convention == "restore_norm":
        d = o_hat * (o.norm() / (o_hat.norm() + eps)) * math.sqrt(max(1.0, rows / cols))
    else:  # "rms_0.2"
        d = 0.2 * math.sqrt(rows * cols) * o_hat / (o_hat.norm() + eps)
    return d, v


def _adam(group: dict[str, Any], g: Tensor, state: dict[str, Any]) -> Tensor:
    """Bias-corrected Adam direction m̂ / (sqrt(v̂) + eps); advances ``state``."""
    beta1, beta2 = group["betas"]
    t = state["step"] = state.get("step", 0) + 1
    m = state["exp_avg"] = beta1 * state.get("exp_avg", torch.zeros_like(g)) + (1 - beta1) * g
    v = state["exp_avg_sq"] = (
        beta2 * state.get("exp_avg_sq", torch.zeros_like(g)) + (1 - beta2) * g * g
    )
    return (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + group["eps"])


class MuonReference(torch.optim.Optimizer):
    """Muon on ``use_muon`` groups, AdamW (decoupled decay) on the others."""

    def __init__(self, params: Any, **defaults: Any) -> None:
        super().__init__(params, defaults)

    def _muon_direction(self, group: dict[str, Any], g: Tensor, state: dict[str, Any]) -> Tensor:
        mu = group["momentum"]
        m = state["momentum_buffer"] = (
            mu * state.get("momentum_buffer", torch.zeros_like(g)) + (1 - mu) * g
        )
        u = (1 - mu) * g + mu * m if group["nesterov"] else m
        rows, cols = g.shape
        return polar_factor(u, group["ns_steps"]) * math.sqrt(max(1.0, rows / cols))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            lr, decay = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if group["use_muon"]:
                    d = self._muon_direction(group, p.grad, state)
                else:
                    d = _adam(group, p.grad, state)
                # W ← W (1 − lr λ) − lr D
                p.copy_(p * (1 - lr * decay) - lr * d)
        return None


class NorMuonReference(MuonReference):
    """NorMuon: Muon's polar factor with per-row second-moment normalisation."""

    def _muon_direction(self, group: dict[str, Any], g: Tensor, state: dict[str, Any]) -> Tensor:
        mu = group["momentum"]
        m = state["momentum_buffer"] = (
            mu * state.get("momentum_buffer", torch.zeros_like(g)) + (1 - mu) * g
        )
        u = (1 - mu) * g + mu * m if group["nesterov"] else m
        v = state.get("second_momentum_buffer", torch.zeros(g.shape[0], 1, dtype=g.dtype))
        d, state["second_momentum_buffer"] = normuon_direction(
            polar_factor(u, group["ns_steps"]),
            v,
            group["beta2"],
            group["eps"],
            group["lr_convention"],
        )
        return d


class ScheduleFreeNorMuonReference(StoredXYModes):
    """SF-NorMuon with explicit x, y, z (module doc of :mod:`trials.optimizers.schedule_free_normuon`)."""

    schedule_free = True

    def __init__(self, params: Any, **defaults: Any) -> None:
        defaults.update(k=0, train_mode=False, weight_sum=0.0, lr_max=-1.0)
        super().__init__(params, defaults)

    def interpolation(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def _direction(self, group: dict[str, Any], g: Tensor, state: dict[str, Any], k: int) -> Tensor:
        if group["use_muon"]:
            mu = group["momentum"]
            m = mu * state.get("momentum_buffer", torch.zeros_like(g)) + (1 - mu) * g
            state["momentum_buffer"] = m
            u = (1 - mu) * g + mu * m if group["nesterov"] else m
            v = state.get("second_momentum_buffer", torch.zeros(g.shape[0], 1, dtype=g.dtype))
            d, state["second_momentum_buffer"] = normuon_direction(
                polar_factor(u, group["ns_steps"]),
                v,
                group["betas"][1],
                group["eps"],
                group["lr_convention"],
            )
            return d
        beta2 = group["betas"][1]
        v = beta2 * state.get("exp_avg_sq", torch.zeros_like(g)) + (1 - beta2) * g * g
        state["exp_avg_sq"] = v
        return g / ((v / (1 - beta2 ** (k + 1))).sqrt() + group["eps"])

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            if not group["train_mode"]:
                raise RuntimeError("reference step() in eval mode: call optimizer.train()")
            k, warmup, beta = group["k"], group["warmup_steps"], group["betas"][0]
            lr = group["lr"]
            lr_k = lr * min(1.0, (k + 1) / warmup) if warmup > 0 else lr
            group["lr_max"] = max(group["lr_max"], lr_k)
            w = (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
            group["weight_sum"] += w
            c = w / group["weight_sum"] if group["weight_sum"] > 0 else 0.0
            lr_decay = lr if group["decay_lr"] == "peak" else lr_k
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "z" not in state:
                    state["x"], state["y"], state["z"] = p.clone(), p.clone(), p.clone()
                x, y, z = state["x"], state["y"], state["z"]
                d = self._direction(group, p.grad, state, k)
                point = z if group["decay_at"] == "z" else y
                # z ← z − lr_d λ P − lr_k D;  x ← (1 − c) x + c z;  y = β x + (1 − β) z
                z_new = z - lr_decay * group["weight_decay"] * point - lr_k * d
                x_new = (1 - c) * x + c * z_new
                y_new = beta * x_new + (1 - beta) * z_new
                state["x"], state["y"], state["z"] = x_new, y_new, z_new
                p.copy_(y_new)
            group["k"] = k + 1
        return None
