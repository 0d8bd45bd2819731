"""Param-group policy: a function of ``named_parameters``, never a method on the model.

- weight decay only on matrices (``ndim >= 2``), never on biases and norm gains;
- Muon only on 2-D hidden matrices; embeddings, the LM head, biases and gains go to AdamW
  (Keller Jordan's Muon README; ALGORITHMS-NOTES §4.1 and §9.7).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["decay_param_groups", "is_muon_param", "split_muon_params"]

NamedParams = Iterable[tuple[str, torch.nn.Parameter]]
_ADAMW_NAME_TAGS = ("emb", "lm_head", "head")


def is_muon_param(name: str, param: torch.Tensor) -> bool:
    return param.ndim == 2 and not any(tag in name for tag in _ADAMW_NAME_TAGS)


def split_muon_params(
    named_parameters: NamedParams,
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """``(muon_params, adamw_params)`` in the model's order; frozen parameters are left out."""
    muon, adamw = [], []
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        (muon if is_muon_param(name, p) else adamw).append(p)
    return muon, adamw


def decay_param_groups(named_parameters: NamedParams, weight_decay: float) -> list[dict]:
    """Two groups: matrices with ``weight_decay``, vectors with none (empty groups dropped)."""
    decay, no_decay = [], []
    for _, p in named_parameters:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
