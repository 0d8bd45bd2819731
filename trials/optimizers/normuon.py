"""NorMuon (Li et al. 2025, arXiv 2510.05491; code ``zichongli5/NorMuon`` ``normuon.py``).

Muon's orthogonalised update gets a per-row (per output neuron) second moment, without bias
correction (docs/equations.md §4.3). Per matrix ``W`` (rows × cols)::

    M ← mu M + (1 - mu) G;   U = (1 - mu) G + mu M  (Nesterov)  or  U = M
    O = NS5(U)                                    Keller's op order, in ``ns_dtype``
    v ← beta2 v + (1 - beta2) mean_cols(O ⊙ O)    one scalar per row, v starts at 0
    Ô = O ⊘ (sqrt(v) + eps)
    W ← W (1 - lr lambda);   W ← W - lr D(Ô)

Two learning-rate conventions for ``D`` (``lr_convention``; the tuned LRs do not transfer):

- ``"restore_norm"`` (the official code, default): ``D = Ô ||O||_F / (||Ô||_F + eps) ·
  sqrt(max(1, rows/cols))`` — Muon's update norm and Keller's shape factor (lr ~ 0.02);
- ``"rms_0.2"`` (the paper as third parties render it): ``D = 0.2 sqrt(rows cols) Ô / (||Ô||_F +
  eps)``, an update of RMS 0.2 that matches AdamW's (AdamW-like lr).

Float level: ``O`` is cast back to the parameter dtype before the row normalisation, which then
runs in that dtype, with ``v`` stored in it. With ``ns_dtype=torch.bfloat16`` this reproduces the
authors' class step for step in the two configurations their code runs in: float32 parameters
at commit ``5320abe`` (its NS output is cast to float) and bfloat16 parameters at ``d45c9a4``
(HEAD; there a float32 parameter fails, as ``lerp_`` mixes dtypes) — tests/data fixtures.
Unlike the authors' class, a parameter without a gradient is skipped (theirs steps it with a
zero gradient) and ``p.grad`` is left untouched (theirs overwrites it with ``U``).

Non-matrix parameters go to the AdamW groups exactly as for :class:`~trials.optimizers.Muon`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from trials.optimizers._arguments import check_choice, check_number
from trials.optimizers.muon import Muon, orthogonalized_momentum

__all__ = ["LR_CONVENTIONS", "NorMuon", "row_normalize"]

LRConvention = Literal["restore_norm", "rms_0.2"]
LR_CONVENTIONS: tuple[str, ...] = ("restore_norm", "rms_0.2")


def row_normalize(o: Tensor, v: Tensor, *, beta2: float, eps: float, lr_convention: str) -> Tensor:
    """NorMuon's direction ``D`` from an orthogonalised ``O`` (rows × cols), in place on ``o``.

    Args:
        o: the Newton–Schulz output; overwritten and returned.
        v: the per-row second moment, shape (rows, 1), same dtype as ``o``; updated in place.
        beta2: EMA coefficient of ``v``.
        eps: guard added to ``sqrt(v)`` and to the Frobenius norms.
        lr_convention: ``"restore_norm"`` or ``"rms_0.2"`` (module docstring).
    """
    rows, cols = o.shape
    if lr_convention == "restore_norm":
        norm_before = o.norm(dim=(-2, -1), keepdim=True)  # ||O||_F
    # v ← beta2 v + (1 - beta2) mean_cols(O ⊙ O)
    v.lerp_(torch.mean(o * o, dim=-1, keepdim=True), 1 - beta2)
    # Ô = O ⊘ (sqrt(v) + eps)      (broadcast over columns)
    o.mul_(1 / v.sqrt().add_(eps))
    norm_after = o.norm(dim=(-2, -1), keepdim=True).add_(eps)  # ||Ô||_F + eps
    if lr_convention == "restore_norm":
        # D = Ô ||O||_F / (||Ô||_F + eps) · sqrt(max(1, rows/cols))
        o.mul_(norm_before / norm_after)
        o *= max(1, rows / cols) ** 0.5
    else:
        # D = 0.2 sqrt(rows cols) Ô / (||Ô||_F + eps)             (RMS(D) = 0.2)
        o.mul_((0.2 * (rows * cols) ** 0.5) / norm_after)
    return o


class NorMuon(Muon):
    """NorMuon for ``use_muon`` groups (2-D matrices), AdamW for the others.

    Args:
        params: tensors (all NorMuon) or group dicts with ``use_muon`` (see :class:`Muon`).
        lr: NorMuon learning rate (0.02 under ``"restore_norm"``).
        weight_decay: decoupled decay of the matrices, ``W ← W (1 - lr lambda)``.
        momentum: ``mu`` of the EMA momentum, in [0, 1).
        beta2: EMA coefficient of the per-row second moment, in [0, 1).
        ns_dtype: Newton–Schulz dtype; ``None``: bfloat16 on CUDA, float32 elsewhere.
        eps: guard of the row normalisation and the norms (the official 1e-10).
        nesterov: the look-ahead ``U = (1 - mu) G + mu M`` (official: True).
        ns_steps: Newton–Schulz iterations.
        lr_convention: ``"restore_norm"`` or ``"rms_0.2"`` (module docstring); recorded in
            ``defaults`` and in every NorMuon group.
        adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay: the AdamW groups' defaults
            (the authors' ``NorMuonWithAuxAdam``: 3e-4, (0.9, 0.95), 1e-10, 0).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 0.02,
        weight_decay: float = 0.0,
        momentum: float = 0.95,
        beta2: float = 0.95,
        ns_dtype: torch.dtype | None = None,
        *,
        eps: float = 1e-10,
        nesterov: bool = True,
        ns_steps: int = 5,
        lr_convention: LRConvention = "restore_norm",
        adamw_lr: float = 3e-4,
        adamw_betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-10,
        adamw_weight_decay: float = 0.0,
    ) -> None:
        check_number("beta2", beta2, 0, 1, high_open=True)
        check_number("epsilon value", eps, 0)
        check_choice("lr_convention", lr_convention, LR_CONVENTIONS)
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            weight_decay=weight_decay,
            ns_dtype=ns_dtype,
            adamw_lr=adamw_lr,
            adamw_betas=adamw_betas,
            adamw_eps=adamw_eps,
            adamw_weight_decay=adamw_weight_decay,
        )
        extra = dict(beta2=beta2, eps=eps, lr_convention=lr_convention)
        for group in self.param_groups:
            if group["use_muon"]:
                for key, value in extra.items():
                    group.setdefault(key, value)
        self.defaults.update(extra)

    def _muon_step(self, group: dict[str, Any]) -> None:
        lr, decay = group["lr"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            # O = NS5(Nesterov momentum), Keller's op order, cast back to the parameter dtype
            o = orthogonalized_momentum(p.grad, state, group, form="keller")
            if "second_momentum_buffer" not in state:
                state["second_momentum_buffer"] = torch.zeros_like(p[..., 0:1])  # (rows, 1)
            # D: row normalisation and the lr convention
            d = row_normalize(
                o,
                state["second_momentum_buffer"],
                beta2=group["beta2"],
                eps=group["eps"],
                lr_convention=group["lr_convention"],
            )
            # W ← W (1 - lr lambda)
            if decay:
                p.mul_(1 - lr * decay)
            # W ← W - lr D
            p.add_(d, alpha=-lr)
