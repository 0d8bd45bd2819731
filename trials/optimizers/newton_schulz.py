"""Quintic Newton–Schulz orthogonalisation, shared by Muon, NorMuon and SF-NorMuon.

Approximates the polar factor ``U Vᵀ`` of ``G = U S Vᵀ`` (Keller Jordan 2024, ``KellerJordan/Muon``
``muon.py``; docs/equations.md §4.1)::

    X ← G / ||G||_F                    (transposed first if rows > cols: X Xᵀ is the small Gram)
    repeat: A = X Xᵀ;  B = b A + c A²;  X ← a X + B X          (a, b, c) = (3.4445, −4.7750, 2.0315)

The coefficients maximise the slope at 0, so the singular values land roughly in [0.5, 1.5]
rather than at 1 (harmless in practice, per the authors).

Two float-level forms of the same iteration, identical in exact arithmetic (``form=``):

- ``"fused"``: ``torch.optim.Muon``'s ``X / max(||X||, eps)`` and ``addmm`` (one rounding of
  ``b A + c A A``); Muon uses it, and matches ``torch.optim.Muon`` bit for bit in bfloat16.
- ``"keller"``: Keller Jordan's and the NorMuon authors' ``X / (||X|| + eps)``,
  ``B = b A + (c A) A``, ``X = a X + B X`` as separate ops; NorMuon uses it, so its bfloat16 path
  reproduces ``zichongli5/NorMuon`` ``normuon.py`` step for step.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["NS_COEFFICIENTS", "newton_schulz"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NSForm = Literal["fused", "keller"]


def newton_schulz(
    g: Tensor,
    steps: int = 5,
    *,
    dtype: torch.dtype | None = None,
    eps: float = 1e-7,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    form: NSForm = "fused",
) -> Tensor:
    """Approximate polar factor ``U Vᵀ`` of a 2-D ``g = U S Vᵀ``, returned in ``g``'s dtype.

    Args:
        g: a 2-D tensor.
        steps: Newton–Schulz iterations.
        dtype: iteration dtype; ``None``: bfloat16 on CUDA, float32 elsewhere (bfloat16 is
            emulated on CPU and ~6x slower, docs/platform.md §3).
        eps: guard of the Frobenius norm in the normalisation.
        coefficients: ``(a, b, c)`` of ``X ← a X + b (X Xᵀ) X + c (X Xᵀ)² X``.
        form: ``"fused"`` or ``"keller"`` (module docstring).
    """
    if g.ndim != 2:
        raise ValueError(f"newton_schulz needs a 2-D tensor, got shape {tuple(g.shape)}")
    if form not in ("fused", "keller"):
        raise ValueError(f"Invalid form: {form!r} (must be 'fused' or 'keller')")
    a, b, c = coefficients
    x = g.to(dtype or (torch.bfloat16 if g.is_cuda else torch.float32))
    transposed = x.size(0) > x.size(1)
    if transposed:
        x = x.T  # iterate on the wide orientation: X Xᵀ is the small Gram matrix
    if form == "fused":
        # X ← X / max(||X||_F, eps): spectral norm <= 1
        x = x / x.norm().clamp_min(eps)
        for _ in range(steps):
            gram = x @ x.T  # A = X Xᵀ                          (short × short)
            # B = b A + c A²
            poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            # X ← a X + B X
            x = torch.addmm(x, poly, x, beta=a)
    else:
        # X ← X / (||X||_F + eps)
        x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)
        for _ in range(steps):
            gram = x @ x.T  # A = X Xᵀ
            # B = b A + (c A) A
            poly = b * gram + c * gram @ gram
            # X ← a X + B X
            x = a * x + poly @ x
    if transposed:
        x = x.T
    return x.to(g.dtype)
