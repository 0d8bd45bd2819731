"""Param-group policy: a function of the model's structure, never of parameter names.

- weight decay only on matrices (``ndim >= 2``), never on biases and norm gains;
- the Muon family (Muon, NorMuon, SF-NorMuon) only on **hidden matrices**; embeddings, the
  output head, norms, biases and any other non-2-D tensor go to the AdamW fallback (Keller
  Jordan's Muon README; docs/equations.md §4.1).

A tensor's role comes from the module that owns it and its shape (:func:`param_roles`):

==============  ===========================================================================
``embedding``   owned by an ``nn.Embedding``/``nn.EmbeddingBag``, or by the module that
                ``model.get_input_embeddings()`` returns (the Hugging Face convention)
``output_head`` the weight of the output head: the module ``model.get_output_embeddings()``
                returns if the model has that method, else the last leaf module, in
                registration order, that holds a 2-D weight and is not an embedding (a head
                tied to the embedding is the embedding's tensor and stays ``embedding``)
``norm``        owned by a normalisation layer (torch's ``*Norm`` classes or any module
                class whose name ends in ``Norm``)
``bias``        a 1-D tensor registered as ``bias``
``vector``      any other tensor with ``ndim < 2`` (gains, scalars)
``tensor``      ``ndim > 2`` (convolution filters: AdamW here; Muon takes only 2-D)
``hidden``      every other 2-D tensor: the Muon family's
==============  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import nn

from trials.optimizers._arguments import check_number

__all__ = [
    "ROLES",
    "Role",
    "decay_param_groups",
    "is_muon_param",
    "param_roles",
    "split_muon_params",
]

Role = Literal["embedding", "output_head", "norm", "bias", "vector", "tensor", "hidden"]
ROLES: tuple[str, ...] = ("embedding", "output_head", "norm", "bias", "vector", "tensor", "hidden")
NamedParams = Iterable[tuple[str, nn.Parameter]]

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_NORMS = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,
)


def param_roles(model: nn.Module) -> dict[str, Role]:
    """The role of every parameter of ``model``, keyed by its ``named_parameters()`` name."""
    owner: dict[int, tuple[nn.Module, str]] = {}
    for module in model.modules():
        for attr, p in module.named_parameters(recurse=False):
            owner.setdefault(id(p), (module, attr))  # a tied tensor keeps its first owner
    embeddings = {id(m) for m in model.modules() if isinstance(m, _EMBEDDINGS)}
    embeddings |= {id(m) for m in _hf_modules(model, "get_input_embeddings")}
    heads = [id(m) for m in _hf_modules(model, "get_output_embeddings")]
    heads = heads or _last_matrix_leaf(model, embeddings)
    roles: dict[str, Role] = {}
    for name, p in model.named_parameters():
        module, attr = owner[id(p)]
        roles[name] = _role(module, attr, p, embeddings, set(heads))
    return roles


def is_muon_param(role: str, param: torch.Tensor) -> bool:
    """Whether a tensor of this role goes to the Muon family (a 2-D hidden matrix)."""
    return role == "hidden" and param.ndim == 2


def split_muon_params(
    model: nn.Module | NamedParams, roles: Mapping[str, str] | None = None
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(muon_params, adamw_params)`` in the model's order; frozen parameters are left out.

    Args:
        model: the model, or its named parameters together with ``roles``.
        roles: name → role (from :func:`param_roles`); required with named parameters, since
            names alone do not say what a tensor is.
    """
    if isinstance(model, nn.Module):
        roles = param_roles(model)
        named = list(model.named_parameters())
    else:
        named = list(model)
        if roles is None:
            raise TypeError(
                "split_muon_params needs the model (an nn.Module) or roles=param_roles(model): "
                "which tensors are hidden matrices is decided by module role, not by name"
            )
    muon: list[nn.Parameter] = []
    adamw: list[nn.Parameter] = []
    for name, p in named:
        if not p.requires_grad:
            continue
        (muon if is_muon_param(roles[name], p) else adamw).append(p)
    return muon, adamw


def decay_param_groups(named_parameters: NamedParams, weight_decay: float) -> list[dict]:
    """Two groups: matrices with ``weight_decay``, vectors with none (empty groups dropped).

    Raises:
        ValueError: ``weight_decay`` is not a number >= 0 (torch validates only its defaults,
            not the groups' values, so a negative decay would otherwise train uphill silently).
    """
    check_number("weight_decay value", weight_decay, 0)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in named_parameters:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _role(
    module: nn.Module, attr: str, p: torch.Tensor, embeddings: set[int], heads: set[int]
) -> Role:
    if id(module) in embeddings:
        return "embedding"
    if isinstance(module, _NORMS) or type(module).__name__.endswith("Norm"):
        return "norm"
    if p.ndim < 2:
        return "bias" if attr == "bias" else "vector"
    if p.ndim > 2:
        return "tensor"
    if id(module) in heads:
        return "output_head"
    return "hidden"


def _hf_modules(model: nn.Module, method: str) -> list[nn.Module]:
    """The module a Hugging Face-style accessor returns, if the model has one."""
    getter = getattr(model, method, None)
    if not callable(getter):
        return []
    try:
        module = getter()
    except NotImplementedError:
        return []
    return [module] if isinstance(module, nn.Module) else []


def _last_matrix_leaf(model: nn.Module, embeddings: set[int]) -> list[int]:
    """The last leaf module, in registration order, that holds a 2-D weight and is not an
    embedding: the output layer."""
    last: list[int] = []
    for module in model.modules():
        if next(module.children(), None) is not None or id(module) in embeddings:
            continue
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.ndim == 2:
            last = [id(module)]
    return last
