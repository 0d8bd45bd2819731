"""Muon with an AdamW fallback in one optimizer (Keller Jordan 2024; ALGORITHMS.md §2, NOTES §4.1).

Groups flagged ``use_muon=True`` (2-D hidden matrices only) get, per matrix ``W`` (rows × cols)::

    M ← mu M + (1 - mu) G                    EMA momentum (Keller's and torch's lerp form)
    U = (1 - mu) G + mu M   (Nesterov)   or  U = M
    O = NS5(U / ||U||_F)                     quintic Newton–Schulz, (a, b, c) = (3.4445, −4.7750, 2.0315)
    W ← W (1 - lr lambda)                    decoupled weight decay, before the update
    W ← W - lr sqrt(max(1, rows/cols)) O     Keller's "original" shape factor

(``torch.optim.Muon`` writes ``B ← mu B + g``; the factor ``1 - mu`` cancels in the NS
normalisation up to its eps, NOTES §4.2.) Groups with ``use_muon=False`` (embeddings, the LM head,
biases, gains) get bias-corrected AdamW with decoupled decay, Keller's ``MuonWithAuxAdam`` defaults:
``lr 3e-4, betas (0.9, 0.95), eps 1e-10``. Pick the groups with
:func:`trials.optimizers.param_groups.split_muon_params`.

Newton–Schulz runs in float32 on CPU (bfloat16 is emulated there and ~6x slower, PLATFORM-NOTES)
and in bfloat16 on CUDA, as ``torch.optim.Muon`` does; ``ns_dtype`` overrides both.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["NS_COEFFICIENTS", "Muon", "newton_schulz"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(
    g: Tensor,
    steps: int = 5,
    *,
    dtype: torch.dtype | None = None,
    eps: float = 1e-7,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
) -> Tensor:
    """Approximate polar factor ``U Vᵀ`` of a 2-D ``g = U S Vᵀ``, returned in ``g``'s dtype.

    The quintic coefficients maximise the slope at 0, so the singular values land roughly in
    [0.5, 1.5] rather than at 1 (Keller Jordan's docstring; harmless in practice).

    Args:
        g: a 2-D tensor.
        steps: Newton–Schulz iterations.
        dtype: iteration dtype; ``None``: bfloat16 on CUDA, float32 elsewhere.
        eps: floor of the Frobenius norm in the normalisation.
        coefficients: ``(a, b, c)`` of ``X ← a X + b (X Xᵀ) X + c (X Xᵀ)² X``.
    """
    if g.ndim != 2:
        raise ValueError(f"newton_schulz needs a 2-D tensor, got shape {tuple(g.shape)}")
    a, b, c = coefficients
    x = g.to(dtype or (torch.bfloat16 if g.is_cuda else torch.float32))
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T  # iterate on the wide orientation: X Xᵀ is the small Gram matrix
    # X ← X / max(||X||_F, eps): spectral norm <= 1
    x = x / x.norm().clamp_min(eps)
    for _ in range(steps):
        gram = x @ x.T  # A = X Xᵀ                          (short × short)
        # B = b A + c A²
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        # X ← a X + B X
        x = torch.addmm(x, poly, x, beta=a)
    if transposed:
        x = x.T
    return x.to(g.dtype)


class Muon(torch.optim.Optimizer):
    """Muon for ``use_muon`` groups, AdamW for the others, in one ``torch.optim`` optimizer.

    Args:
        params: tensors (all Muon) or group dicts, each with ``use_muon`` (default True).
            AdamW groups take ``lr``/``betas``/``eps``/``weight_decay`` from the ``adamw_*``
            arguments unless the group sets them.
        lr: Muon learning rate (Keller's default 0.02; "original" shape-factor convention).
        momentum: ``mu`` of the EMA momentum, in [0, 1).
        nesterov: use the Nesterov look-ahead ``(1 - mu) G + mu M``.
        ns_steps: Newton–Schulz iterations (>= 1).
        weight_decay: decoupled decay of the Muon matrices, ``W ← W (1 - lr lambda)``.
        ns_dtype: Newton–Schulz dtype; ``None``: bfloat16 on CUDA, float32 elsewhere.
        adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay: the AdamW groups' defaults.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        weight_decay: float = 0.0,
        ns_dtype: torch.dtype | None = None,
        adamw_lr: float = 3e-4,
        adamw_betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-10,
        adamw_weight_decay: float = 0.0,
    ) -> None:
        for name, value in (("learning rate", lr), ("adamw_lr", adamw_lr)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value!r} (must be >= 0)")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum!r} (must be in [0, 1))")
        if not isinstance(ns_steps, int) or isinstance(ns_steps, bool) or not 1 <= ns_steps < 100:
            raise ValueError(f"Invalid ns_steps: {ns_steps!r} (must be an integer in [1, 100))")
        for name, value in (
            ("weight_decay value", weight_decay),
            ("adamw_weight_decay", adamw_weight_decay),
        ):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name}: {value!r} (must be >= 0)")
        for i, beta in enumerate(adamw_betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid adamw beta{i + 1}: {beta!r} (must be in [0, 1))")
        if not 0.0 <= adamw_eps:
            raise ValueError(f"Invalid adamw_eps: {adamw_eps!r} (must be >= 0)")
        if ns_dtype is not None and not (
            isinstance(ns_dtype, torch.dtype) and ns_dtype.is_floating_point
        ):
            raise ValueError(
                f"Invalid ns_dtype: {ns_dtype!r} (must be None or a floating torch.dtype)"
            )

        params = list(params)
        if params and isinstance(params[0], dict):
            adamw_defaults = dict(
                lr=adamw_lr,
                betas=tuple(adamw_betas),
                eps=adamw_eps,
                weight_decay=adamw_weight_decay,
            )
            groups = []
            for group in params:
                group = dict(group)
                if not group.get("use_muon", True):
                    for key, value in adamw_defaults.items():
                        group.setdefault(key, value)
                groups.append(group)
            params = groups
        defaults = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            weight_decay=weight_decay,
            ns_dtype=ns_dtype,
            use_muon=True,
        )
        super().__init__(params, defaults)
        for i, group in enumerate(self.param_groups):
            for p in group["params"] if group["use_muon"] else ():
                if p.ndim != 2:
                    raise ValueError(
                        f"Muon group {i} holds a parameter of shape {tuple(p.shape)}: Muon takes only "
                        "2-D matrices; put the others in a group with use_muon=False (AdamW)"
                    )

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["use_muon"]:
                self._muon_step(group)
            else:
                self._adamw_step(group)
        return loss

    def _muon_step(self, group: dict[str, Any]) -> None:
        lr, mu, decay = group["lr"], group["momentum"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            m = state["momentum_buffer"]
            # M ← mu M + (1 - mu) G
            m.lerp_(g, 1.0 - mu)
            # U = (1 - mu) G + mu M  (Nesterov)  or  M
            u = g.lerp(m, mu) if group["nesterov"] else m
            # O = NS5(U / ||U||_F)
            o = newton_schulz(u, group["ns_steps"], dtype=group["ns_dtype"])
            rows, cols = p.shape
            # W ← W (1 - lr lambda)
            if decay != 0:
                p.mul_(1.0 - lr * decay)
            # W ← W - lr sqrt(max(1, rows/cols)) O
            p.add_(o, alpha=-lr * math.sqrt(max(1.0, rows / cols)))

    def _adamw_step(self, group: dict[str, Any]) -> None:
        lr, decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[p]
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            # m ← beta1 m + (1 - beta1) g
            m.lerp_(g, 1.0 - beta1)
            # v ← beta2 v + (1 - beta2) g ⊙ g
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
            # d = sqrt(v / (1 - beta2^t)) + eps
            denom = v.div(1.0 - beta2**t).sqrt_().add_(eps)
            # W ← W (1 - lr lambda)
            if decay != 0:
                p.mul_(1.0 - lr * decay)
            # W ← W - lr m / (1 - beta1^t) ⊘ d
            p.addcdiv_(m, denom, value=-lr / (1.0 - beta1**t))
