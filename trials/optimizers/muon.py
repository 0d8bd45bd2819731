"""Muon with an AdamW fallback in one optimizer (Keller Jordan 2024; ALGORITHMS.md §2, NOTES §4).

Groups flagged ``use_muon`` get: EMA momentum ``M <- mu M + (1 - mu) G``, Nesterov look-ahead
``U = (1 - mu) G + mu M``, 5 quintic Newton–Schulz iterations on ``U / ||U||_F`` (transposed
when rows > cols), the shape factor ``sqrt(max(1, rows/cols))`` and decoupled weight decay
``W <- W (1 - lr lambda)`` before ``W <- W - lr O``. Other groups get bias-corrected AdamW.

Newton–Schulz runs in float32 on CPU (bfloat16 is emulated there: ~6x slower, PLATFORM-NOTES)
and in bfloat16 on CUDA, as ``torch.optim.Muon`` does; ``ns_dtype`` overrides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["Muon", "newton_schulz"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: torch.Tensor, steps: int = 5, *, dtype: torch.dtype | None = None,
                  eps: float = 1e-7, coefficients: tuple[float, float, float] = NS_COEFFICIENTS) -> torch.Tensor:
    """Approximate polar factor ``U V^T`` of a 2-D ``g`` (singular values land in ~[0.5, 1.5])."""
    a, b, c = coefficients
    dtype = dtype or (torch.bfloat16 if g.is_cuda else torch.float32)
    x = g.to(dtype)
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T  # iterate on the wide orientation: X X^T is the small Gram matrix
    x = x / x.norm().clamp_min(eps)  # spectral norm <= 1
    for _ in range(steps):
        gram = x @ x.T  # A = X X^T
        poly = b * gram + c * gram @ gram  # B = b A + c A^2
        x = a * x + poly @ x  # X <- a X + B X
    if transposed:
        x = x.T
    return x.to(g.dtype)


class Muon(torch.optim.Optimizer):
    """``params``: groups with ``use_muon`` True (2-D matrices) or False (AdamW)."""

    def __init__(
        self, params: Iterable[Any], lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
        ns_steps: int = 5, weight_decay: float = 0.0, ns_dtype: torch.dtype | None = None,
        adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-10,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, weight_decay=weight_decay,
                        ns_dtype=ns_dtype, betas=tuple(adamw_betas), eps=adamw_eps, use_muon=True)
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["use_muon"] and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon groups take only 2-D parameters; route the rest to AdamW (use_muon=False)")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon(group)
            else:
                self._adamw(group)
        return loss

    def _muon(self, group: dict[str, Any]) -> None:
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.lerp_(p.grad, 1 - mu)  # M <- mu M + (1 - mu) G
            update = p.grad.lerp(buf, mu) if group["nesterov"] else buf  # U = (1 - mu) G + mu M
            ortho = newton_schulz(update, group["ns_steps"], dtype=group["ns_dtype"])
            rows, cols = p.shape
            ortho = ortho * math.sqrt(max(1.0, rows / cols))  # shape scaling
            p.mul_(1 - lr * wd)  # decoupled decay before the update
            p.add_(ortho, alpha=-lr)

    def _adamw(self, group: dict[str, Any]) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = state["step"]
            state["exp_avg"].lerp_(p.grad, 1 - beta1)  # m <- b1 m + (1 - b1) g
            state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)  # v <- b2 v + (1 - b2) g^2
            m_hat = state["exp_avg"] / (1 - beta1**t)
            denom = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt_().add_(eps)
            p.mul_(1 - lr * wd)
            p.addcdiv_(m_hat, denom, value=-lr)
