"""Muon with an AdamW fallback in one optimizer (Keller Jordan 2024; docs/equations.md §4.1).

Groups flagged ``use_muon=True`` (2-D hidden matrices only) get, per matrix ``W`` (rows × cols)::

    M ← mu M + (1 - mu) G                    EMA momentum (Keller's and torch's lerp form)
    U = (1 - mu) G + mu M   (Nesterov)   or  U = M
    O = NS5(U / ||U||_F)                     quintic Newton–Schulz, (a, b, c) = (3.4445, −4.7750, 2.0315)
    W ← W (1 - lr lambda)                    decoupled weight decay, before the update
    W ← W - lr sqrt(max(1, rows/cols)) O     Keller's "original" shape factor

(``torch.optim.Muon`` writes ``B ← mu B + g``; the factor ``1 - mu`` cancels in the NS
normalisation up to its eps, docs/equations.md §4.2.) Groups with ``use_muon=False`` (embeddings,
the LM head, biases, gains) get bias-corrected AdamW with decoupled decay, Keller's
``MuonWithAuxAdam`` defaults: ``lr 3e-4, betas (0.9, 0.95), eps 1e-10``. Pick the groups with
:func:`trials.optimizers.param_groups.split_muon_params`.

Newton–Schulz (:mod:`trials.optimizers.newton_schulz`, ``torch.optim.Muon``'s fused form) runs in
float32 on CPU (bfloat16 is emulated there and ~6x slower, docs/platform.md §3) and in bfloat16 on
CUDA, as ``torch.optim.Muon`` does; ``ns_dtype`` overrides both.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from trials.optimizers._arguments import check_bool, check_int, check_number
from trials.optimizers.newton_schulz import NS_COEFFICIENTS, NSForm, newton_schulz

__all__ = ["NS_COEFFICIENTS", "Muon", "newton_schulz", "orthogonalized_momentum"]


def orthogonalized_momentum(grad: Tensor, state: dict[str, Any], group: dict[str, Any], *,
                            form: NSForm) -> Tensor:
    """The Muon family's direction before any scaling: M ← mu·M + (1 − mu)·G (``state``'s
    ``momentum_buffer``, created at zero), U = (1 − mu)·G + mu·M with Nesterov or M without,
    O = NS5(U / ‖U‖_F) in ``group["ns_dtype"]`` by the Newton–Schulz ``form``."""
    mu = group["momentum"]
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
    m = state["momentum_buffer"]
    m.lerp_(grad, 1.0 - mu)
    u = grad.lerp(m, mu) if group["nesterov"] else m
    return newton_schulz(u, group["ns_steps"], dtype=group["ns_dtype"], form=form)


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
        check_number("learning rate", lr, 0)
        check_number("adamw_lr", adamw_lr, 0)
        check_number("momentum value", momentum, 0, 1, high_open=True)
        check_bool("nesterov", nesterov)
        check_int("ns_steps", ns_steps, 1, 100)
        check_number("weight_decay value", weight_decay, 0)
        check_number("adamw_weight_decay", adamw_weight_decay, 0)
        if not (isinstance(adamw_betas, (tuple, list)) and len(adamw_betas) == 2):
            raise ValueError(f"Invalid adamw_betas: {adamw_betas!r} (must be a pair of numbers)")
        for i, beta in enumerate(adamw_betas):
            check_number(f"adamw beta{i + 1}", beta, 0, 1, high_open=True)
        check_number("adamw_eps", adamw_eps, 0)
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
        lr, decay = group["lr"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            o = orthogonalized_momentum(p.grad, self.state[p], group, form="fused")
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
