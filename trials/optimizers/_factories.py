"""One factory per registered optimizer (see :mod:`trials.optimizers.registry`).

Defaults that differ between optimizers are the upstream ones: AdamW ``weight_decay=0.01``
(torch), SGD ``momentum=0`` (torch), the schedule-free classes' own (``schedulefree`` 1.4.1;
ScheduleFree+ at the reference's git HEAD), Keller Jordan's for Muon and the NorMuon authors' for
NorMuon (``adamw_lr=3e-4`` for the AdamW groups: the two learning rates are separate knobs, and a
schedule scales both). SF-NorMuon's are documented in :mod:`trials.optimizers.schedule_free_normuon`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from trials.errors import ConfigError
from trials.optimizers._arguments import check_bool, check_number
from trials.optimizers.muon import Muon
from trials.optimizers.normuon import LRConvention, NorMuon
from trials.optimizers.param_groups import decay_param_groups, split_muon_params
from trials.optimizers.refined_schedule_free_adamw import RefinedScheduleFreeAdamW
from trials.optimizers.schedule_free_adamw import ScheduleFreeAdamW
from trials.optimizers.schedule_free_normuon import DecayAt, DecayLR, ScheduleFreeNorMuon
from trials.optimizers.schedule_free_plus import ScheduleFreePlus
from trials.optimizers.schedule_free_sgd import ScheduleFreeSGD

if TYPE_CHECKING:
    from trials.optimizers.registry import ModelParams

_FUSED_ADAMW_DEVICES = ("cpu", "cuda")
NS_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def adamw(
    params: ModelParams,
    lr: float,
    *,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """``torch.optim.AdamW``, fused where torch has the kernel (CPU: 0.7 ms vs foreach 4.1 ms)."""
    _check_torch_adam(betas, eps)
    groups = decay_param_groups(params.named, weight_decay)
    fusable = all(
        p.device.type in _FUSED_ADAMW_DEVICES and p.dtype.is_floating_point
        for g in groups
        for p in g["params"]
    )
    impl = {"fused": True} if fusable else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=_pair(betas), eps=eps, **impl)


def sgd(
    params: ModelParams,
    lr: float,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (its weight decay is an L2 term in the gradient); fused on CUDA
    (on CPU the default loop is kept, so stored CPU trajectories replay bit for bit)."""
    check_number("momentum value", momentum, 0)
    check_bool("nesterov", nesterov)
    groups = decay_param_groups(params.named, weight_decay)
    cuda = all(p.device.type == "cuda" and p.dtype.is_floating_point for g in groups for p in g["params"])
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, **({"fused": True} if cuda else {}))


def sf_adamw(
    params: ModelParams,
    lr: float,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    inner_momentum: float = 0.0,
) -> torch.optim.Optimizer:
    groups = decay_param_groups(params.named, weight_decay)
    return ScheduleFreeAdamW(
        groups,
        lr=lr,
        betas=_pair(betas),
        eps=eps,
        warmup_steps=warmup_steps,
        r=r,
        weight_lr_power=weight_lr_power,
        inner_momentum=inner_momentum,
    )


def sf_adamw_refined(
    params: ModelParams,
    lr: float,
    *,
    C: float,  # noqa: N803 - the paper's name; no default: the paper's value is unverified
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    inner_momentum: float = 0.0,
) -> torch.optim.Optimizer:
    groups = decay_param_groups(params.named, weight_decay)
    return RefinedScheduleFreeAdamW(
        groups,
        lr=lr,
        C=C,
        betas=_pair(betas),
        eps=eps,
        warmup_steps=warmup_steps,
        r=r,
        weight_lr_power=weight_lr_power,
        inner_momentum=inner_momentum,
    )


def sf_sgd(
    params: ModelParams,
    lr: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
) -> torch.optim.Optimizer:
    groups = decay_param_groups(params.named, weight_decay)
    return ScheduleFreeSGD(
        groups,
        lr=lr,
        momentum=momentum,
        warmup_steps=warmup_steps,
        r=r,
        weight_lr_power=weight_lr_power,
    )


def sf_plus(
    params: ModelParams,
    lr: float,
    *,
    betas: tuple[float, float] = (0.9, 0.95),
    sf_beta1: float = 0.9,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    r: float = 0.0,
    polyak_beta: float = 0.0,
    c_warmup: int = 0,
    sf_beta1_anneal_steps: int = 0,
    sf_beta1_max: float = 0.965,
    weight_lr_power: float = 2.0,
    warmup_steps: int = 0,
) -> torch.optim.Optimizer:
    """ScheduleFree+ (``lr`` multiplies the Polyak step; AdamC decay on matrices only)."""
    groups = decay_param_groups(params.named, weight_decay)
    return ScheduleFreePlus(
        groups,
        lr=lr,
        betas=_pair(betas),
        sf_beta1=sf_beta1,
        eps=eps,
        r=r,
        polyak_beta=polyak_beta,
        c_warmup=c_warmup,
        sf_beta1_anneal_steps=sf_beta1_anneal_steps,
        sf_beta1_max=sf_beta1_max,
        weight_lr_power=weight_lr_power,
        warmup_steps=warmup_steps,
    )


def muon(
    params: ModelParams,
    lr: float,
    *,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_steps: int = 5,
    weight_decay: float = 0.0,
    ns_dtype: str | None = None,
    adamw_lr: float = 3e-4,
    adamw_betas: tuple[float, float] = (0.9, 0.95),
    adamw_eps: float = 1e-10,
    adamw_weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Muon (lr 0.02 in Keller's convention) on hidden matrices, AdamW (``adamw_*``) elsewhere.

    ``ns_dtype``: ``None`` (bfloat16 on CUDA, float32 on CPU) or one of ``NS_DTYPES``. The AdamW
    side decays only its matrices (embeddings, LM head), never biases and gains.
    """
    return Muon(
        _spectral_groups(params, adamw_weight_decay),
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        ns_steps=ns_steps,
        weight_decay=weight_decay,
        ns_dtype=_ns_dtype(ns_dtype),
        adamw_lr=adamw_lr,
        adamw_betas=_pair(adamw_betas),
        adamw_eps=adamw_eps,
    )


def normuon(
    params: ModelParams,
    lr: float,
    *,
    momentum: float = 0.95,
    beta2: float = 0.95,
    weight_decay: float = 0.0,
    nesterov: bool = True,
    ns_steps: int = 5,
    ns_dtype: str | None = None,
    eps: float = 1e-10,
    lr_convention: LRConvention = "restore_norm",
    adamw_lr: float = 3e-4,
    adamw_betas: tuple[float, float] = (0.9, 0.95),
    adamw_eps: float = 1e-10,
    adamw_weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """NorMuon on hidden matrices, AdamW elsewhere (the authors' ``NorMuonWithAuxAdam`` split)."""
    return NorMuon(
        _spectral_groups(params, adamw_weight_decay),
        lr=lr,
        weight_decay=weight_decay,
        momentum=momentum,
        beta2=beta2,
        ns_dtype=_ns_dtype(ns_dtype),
        eps=eps,
        nesterov=nesterov,
        ns_steps=ns_steps,
        lr_convention=lr_convention,
        adamw_lr=adamw_lr,
        adamw_betas=_pair(adamw_betas),
        adamw_eps=adamw_eps,
    )


def sf_normuon(
    params: ModelParams,
    lr: float,
    *,
    betas: tuple[float, float] = (0.9, 0.95),
    momentum: float = 0.95,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    nesterov: bool = False,
    ns_steps: int = 5,
    ns_dtype: str | None = None,
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
) -> torch.optim.Optimizer:
    """SF-NorMuon on hidden matrices, SF-AdamW elsewhere (same interpolation and averaging)."""
    return ScheduleFreeNorMuon(
        _spectral_groups(params, adamw_weight_decay),
        lr=lr,
        betas=_pair(betas),
        momentum=momentum,
        weight_decay=weight_decay,
        eps=eps,
        nesterov=nesterov,
        ns_steps=ns_steps,
        ns_dtype=_ns_dtype(ns_dtype),
        lr_convention=lr_convention,
        decay_at=decay_at,
        decay_lr=decay_lr,
        warmup_steps=warmup_steps,
        r=r,
        weight_lr_power=weight_lr_power,
        adamw_lr=adamw_lr,
        adamw_beta2=adamw_beta2,
        adamw_eps=adamw_eps,
        adamw_weight_decay=adamw_weight_decay,
    )


def _spectral_groups(params: ModelParams, adamw_weight_decay: float) -> list[dict[str, Any]]:
    """Hidden matrices in one ``use_muon`` group; the rest in decay/no-decay fallback groups.

    The fallback groups set only ``weight_decay``; the optimizer fills in its ``adamw_*``.
    """
    check_number("adamw_weight_decay", adamw_weight_decay, 0)
    muon_params, adamw_params = split_muon_params(params.named, params.roles)
    adamw_ids = {id(p) for p in adamw_params}
    groups: list[dict[str, Any]] = []
    if muon_params:
        groups.append({"params": muon_params, "use_muon": True})
    for group in decay_param_groups(
        [(n, p) for n, p in params.named if id(p) in adamw_ids], adamw_weight_decay
    ):
        groups.append({**group, "use_muon": False})
    return groups


def _ns_dtype(name: str | None) -> torch.dtype | None:
    if name is not None and name not in NS_DTYPES:
        raise ConfigError("optimizer.ns_dtype", name, f"None or one of {sorted(NS_DTYPES)}")
    return NS_DTYPES[name] if name else None


def _pair(value: Any) -> Any:
    """A TOML list ``[0.9, 0.95]`` as the tuple of floats torch stores (torch's AdamW refuses
    ``(0, 0.5)``: "betas must be either both floats"); anything else as given, for the
    optimizer's own validation to name."""
    if not isinstance(value, (list, tuple)):
        return value
    return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)


def _check_torch_adam(betas: Any, eps: Any) -> None:
    """What torch's AdamW checks, but naming strings and NaNs too (torch compares them)."""
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2):
        raise ValueError(f"Invalid betas: {betas!r} (must be a pair (beta1, beta2))")
    for i, beta in enumerate(betas):
        check_number(f"beta parameter at index {i}", beta, 0, 1, high_open=True)
    check_number("epsilon value", eps, 0)
