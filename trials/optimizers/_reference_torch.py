"""Slow twins of torch's AdamW and SGD, from the equations, so the optimizer contract suite can
hold every registered optimizer to the same step-by-step check (tests only)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["AdamWReference", "SGDReference"]


class AdamWReference(torch.optim.Optimizer):
    """AdamW (Loshchilov & Hutter) from the equations: W ← W (1 − lr λ) − lr m̂ / (sqrt(v̂) + eps)."""

    def __init__(self, params: Any, **defaults: Any) -> None:
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                t = state["step"] = state.get("step", 0) + 1
                m = state["exp_avg"] = b1 * state.get("exp_avg", torch.zeros_like(g)) + (1 - b1) * g
                v = state["exp_avg_sq"] = (
                    b2 * state.get("exp_avg_sq", torch.zeros_like(g)) + (1 - b2) * g * g
                )
                update = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + group["eps"])
                p.copy_(p * (1 - group["lr"] * group["weight_decay"]) - group["lr"] * update)
        return None


class SGDReference(torch.optim.Optimizer):
    """SGD with L2 decay and heavy-ball/Nesterov momentum: b ← mu b + (g + λ W); W ← W − lr d."""

    def __init__(self, params: Any, **defaults: Any) -> None:
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            mu = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                if mu != 0:
                    state = self.state[p]
                    b = state["momentum_buffer"] = (
                        mu * state["momentum_buffer"] + g
                        if "momentum_buffer" in state
                        else g.clone()
                    )
                    g = g + mu * b if group["nesterov"] else b
                p.copy_(p - group["lr"] * g)
        return None
