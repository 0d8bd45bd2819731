"""SF-NorMuon (seed 003; Apte et al. 2026, "Anytime Training with Schedule-Free Spectral
Optimization", arXiv 2605.23061): schedule-free averaging around the NorMuon direction.

docs/equations.md §3.2. The rule is known only from a third-party rendering
of the paper (no code was found), so **every open detail is an explicit option** here::

    y = (1 - beta1) z + beta1 x;     g = ∇L(y)                                 (param holds y)
    m ← mu m + (1 - mu) g;           U = m,  or (1 - mu) g + mu m  if nesterov    [open: (c)]
    O = NS5(U);  v ← beta2 v + (1 - beta2) mean_cols(O ⊙ O);  Ô = O ⊘ (sqrt(v) + eps)
    D = 0.2 sqrt(rows cols) Ô / ||Ô||_F   (lr_convention "rms_0.2", the rendering's)
      or NorMuon's code convention "restore_norm"                                [open]
    lr_k = lr · min(1, (k + 1)/W)
    z ← z − lr_d · lambda · P − lr_k · D       P = z (decay_at="z", the paper's point) or y
                                               lr_d = lr (decay_lr="peak", the rendering's)
                                               or lr_k ("scheduled")              [open: (a)]
    x ← (1 − c) x + c z;   c = w_k / Σ w,  w_k = (k + 1)^r lr_max^p  (p = 2: lr² weights)

Non-matrix parameters (embeddings, head, norms, biases: ``use_muon=False`` groups) take the
SF-AdamW direction ``g / (sqrt(v̂) + eps)`` with the same decay point, interpolation and
averaging [open: (b), decided as the issue asks]. Defaults [open: (d)]: ``betas=(0.9, 0.95)``
(SF's interpolation, NorMuon's beta2), ``momentum=0.95`` (NorMuon's), ``weight_decay=0``; an
AdamW-like ``lr`` (0.0025, SF-AdamW's) because "rms_0.2" matches AdamW's update RMS.

Memory-efficient form as for SF-AdamW (:mod:`trials.optimizers._schedule_free`): state ``z``,
``momentum_buffer``, ``second_momentum_buffer`` (rows × 1) or ``exp_avg_sq``; the decay term
enters the direction ``u = D + lambda (lr_d / lr_k) P`` so that the z-step is ``lr_k u``.
Every group keeps ``betas = (beta1, beta2)``, so ``x = lerp(y, z, 1 − 1/betas[0])``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from trials.optimizers._arguments import check_bool, check_choice, check_int, check_number
from trials.optimizers._schedule_free import ScheduleFreeOptimizer
from trials.optimizers.muon import orthogonalized_momentum
from trials.optimizers.normuon import LR_CONVENTIONS, LRConvention, row_normalize
from trials.optimizers.schedule_free_adamw import _check_betas

__all__ = ["DECAY_AT", "DECAY_LR", "DecayAt", "DecayLR", "ScheduleFreeNorMuon"]

DecayAt = Literal["z", "y"]
DecayLR = Literal["peak", "scheduled"]
DECAY_AT: tuple[str, ...] = ("z", "y")
DECAY_LR: tuple[str, ...] = ("peak", "scheduled")


class ScheduleFreeNorMuon(ScheduleFreeOptimizer):
    """SF-NorMuon on ``use_muon`` groups (2-D matrices), SF-AdamW on the others.

    Args:
        params: tensors (all matrices) or group dicts with ``use_muon`` (default True).
        lr: peak learning rate of the matrices (reached after ``warmup_steps``).
        betas: ``(beta1, beta2)``: the SF interpolation and the per-row second-moment EMA.
        momentum: ``mu`` of the gradient EMA fed to Newton–Schulz, in [0, 1).
        weight_decay: ``lambda`` of the matrices.
        eps: guard of the row normalisation (NorMuon's 1e-10).
        nesterov: feed ``(1 - mu) g + mu m`` instead of ``m`` to Newton–Schulz (default False:
            the rendering shows plain EMA momentum).
        ns_steps, ns_dtype: Newton–Schulz iterations and dtype (``None``: bf16 on CUDA, fp32 else).
        lr_convention: ``"rms_0.2"`` (default) or ``"restore_norm"``
            (:mod:`trials.optimizers.normuon`).
        decay_at: ``"z"`` (default; the paper's finding) or ``"y"`` (SF-AdamW's convention).
        decay_lr: ``"peak"`` (default: ``lr``) or ``"scheduled"`` (the warmed-up ``lr_k``).
        warmup_steps, r, weight_lr_power: as for :class:`ScheduleFreeAdamW`.
        adamw_lr: the non-matrix groups' lr (``None``: ``lr``).
        adamw_beta2, adamw_eps, adamw_weight_decay: their Adam second moment, eps and decay.
        foreach: accepted for API symmetry; every direction is computed per tensor.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.95),
        momentum: float = 0.95,
        weight_decay: float = 0.0,
        *,
        eps: float = 1e-10,
        nesterov: bool = False,
        ns_steps: int = 5,
        ns_dtype: torch.dtype | None = None,
        lr_convention: LRConvention = "rms_0.2",
        decay_at: DecayAt = "z",
        decay_lr: DecayLR = "peak",
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        adamw_lr: float | None = None,
        adamw_beta2: float = 0.999,
        adamw_eps: float = 1e-8,
        adamw_weight_decay: float = 0.0,
        foreach: bool | None = None,
    ) -> None:
        beta1, beta2 = _check_betas(betas)
        check_number("momentum value", momentum, 0, 1, high_open=True)
        check_number("epsilon value", eps, 0)
        check_bool("nesterov", nesterov)
        check_int("ns_steps", ns_steps, 1, 100)
        if ns_dtype is not None and not (
            isinstance(ns_dtype, torch.dtype) and ns_dtype.is_floating_point
        ):
            raise ValueError(
                f"Invalid ns_dtype: {ns_dtype!r} (must be None or a floating torch.dtype)"
            )
        check_choice("lr_convention", lr_convention, LR_CONVENTIONS)
        check_choice("decay_at", decay_at, DECAY_AT)
        check_choice("decay_lr", decay_lr, DECAY_LR)
        if adamw_lr is not None:
            check_number("adamw_lr", adamw_lr, 0)
        check_number("adamw_beta2", adamw_beta2, 0, 1, high_open=True)
        check_number("adamw_eps", adamw_eps, 0)
        check_number("adamw_weight_decay", adamw_weight_decay, 0)
        adamw = dict(
            lr=lr if adamw_lr is None else adamw_lr,
            betas=(beta1, adamw_beta2),
            eps=adamw_eps,
            weight_decay=adamw_weight_decay,
        )
        params = list(params)
        if params and isinstance(params[0], dict):
            params = [{**adamw, **g} if not g.get("use_muon", True) else dict(g) for g in params]
        defaults = dict(
            lr=lr,
            betas=(beta1, beta2),
            momentum=momentum,
            weight_decay=weight_decay,
            eps=eps,
            nesterov=nesterov,
            ns_steps=ns_steps,
            ns_dtype=ns_dtype,
            lr_convention=lr_convention,
            decay_at=decay_at,
            decay_lr=decay_lr,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            foreach=foreach,
            use_muon=True,
        )
        super().__init__(params, defaults)
        for i, group in enumerate(self.param_groups):
            for p in group["params"] if group["use_muon"] else ():
                if p.ndim != 2:
                    raise ValueError(
                        f"SF-NorMuon group {i} holds a parameter of shape {tuple(p.shape)}: the "
                        "NorMuon direction takes only 2-D matrices; put the others in a group "
                        "with use_muon=False (SF-AdamW)"
                    )

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def _directions(
        self,
        group: dict[str, Any],
        ys: list[Tensor],
        grads: list[Tensor],
        states: list[dict],
        k: int,
    ) -> list[Tensor] | tuple[Tensor, ...]:
        return [
            self._direction(group, y, g, s, k) for y, g, s in zip(ys, grads, states, strict=True)
        ]

    def _direction(
        self, group: dict[str, Any], y: Tensor, grad: Tensor, state: dict, k: int
    ) -> Tensor:
        if group["use_muon"]:
            u = self._normuon_direction(group, grad, state)
        else:
            u = self._adam_direction(group, grad, state, k)
        decay = group["weight_decay"]
        if decay != 0:
            warmup = group["warmup_steps"]
            sched = (k + 1) / warmup if k < warmup else 1.0  # lr_k / lr
            # u ← u + lambda (lr_d / lr_k) P:  the z-step lr_k u then decays by lr_d lambda P
            scale = decay / sched if group["decay_lr"] == "peak" else decay
            u.add_(state["z"] if group["decay_at"] == "z" else y, alpha=scale)
        return u

    def _normuon_direction(self, group: dict[str, Any], grad: Tensor, state: dict) -> Tensor:
        # O = NS5(Nesterov momentum), in the parameter dtype
        o = orthogonalized_momentum(grad, state, group, form="keller")
        if "second_momentum_buffer" not in state:
            state["second_momentum_buffer"] = torch.zeros_like(grad[..., 0:1])  # (rows, 1)
        # D = the row-normalised direction under the lr convention
        return row_normalize(
            o,
            state["second_momentum_buffer"],
            beta2=group["betas"][1],
            eps=group["eps"],
            lr_convention=group["lr_convention"],
        )

    def _adam_direction(self, group: dict[str, Any], grad: Tensor, state: dict, k: int) -> Tensor:
        beta2, eps = group["betas"][1], group["eps"]
        if "exp_avg_sq" not in state:
            state["exp_avg_sq"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
        v = state["exp_avg_sq"]
        # v ← beta2 v + (1 - beta2) g ⊙ g
        v.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        # d = sqrt(v / (1 - beta2^(k+1))) + eps
        denom = v.div(1.0 - beta2 ** (k + 1)).sqrt_().add_(eps)
        # u = g ⊘ d (into d's buffer; p.grad untouched)
        return torch.div(grad, denom, out=denom)
