"""The optimizer catalog: every registered optimizer's hyperparameters, ranges and defaults.

The implementations are :data:`trials.optimizers.OPTIMIZERS` (one factory each); this is what a
sweep file may say about them, readable without torch. ``tests/trials_tests/test_catalog.py``
holds the two sides together: the same names, the same keyword arguments and defaults, choices
equal to the implementations' own tuples, and every value a card accepts builds the optimizer
(while every probe the optimizer's ``__init__`` rejects, the card rejects too).

Ranges come from each optimizer's own argument validation (torch's, and
:mod:`trials.optimizers._arguments` for ours) tightened where the papers and the arithmetic
say so: ``eps > 0`` everywhere (torch accepts 0; a zero guard divides by zero), momentum-like
coefficients in ``[0, 1)`` (torch's SGD takes any momentum >= 0; 1 never forgets a gradient).
Schedule-free interpolations ``beta1``/``sf_beta1``/``momentum`` are in ``(0, 1)``: their
``eval()`` divides by them.

Adding an optimizer = its module + its factory in :mod:`trials.optimizers.registry` + one card
here; the sweep-file models (:mod:`orchestrator.spec.optimizers`) are generated from the card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trials.catalog._params import (
    NON_NEGATIVE,
    POSITIVE,
    REQUIRED,
    UNIT_HALF_OPEN,
    UNIT_OPEN,
    Bounds,
    Param,
    Problem,
    Rule,
    check_all,
)

__all__ = ["COMMON_PARAMS", "NS_DTYPES", "OPTIMIZERS", "OptimizerCard", "schedule_free_names"]

NS_DTYPES: tuple[str, ...] = ("bfloat16", "float32", "float64")  # trials.optimizers._factories.NS_DTYPES
LR_CONVENTIONS: tuple[str, ...] = ("restore_norm", "rms_0.2")  # trials.optimizers.normuon
DECAY_AT: tuple[str, ...] = ("z", "y")  # trials.optimizers.schedule_free_normuon
DECAY_LR: tuple[str, ...] = ("peak", "scheduled")


@dataclass(frozen=True, kw_only=True)
class OptimizerCard:
    """What a sweep file may say about one optimizer.

    Attributes:
        name: the registry name.
        summary: one line for the documentation (what it is, where it comes from).
        params: its hyperparameters (the factory's keyword-only arguments).
        schedule_free: it takes no LR schedule (its averaging replaces one; warmup inside).
        state_per_param: an upper bound of optimizer-state floats per model parameter (for the
            spec's memory estimate); e.g. AdamW's two moments are 2.
        needs_model: it routes tensors by module role (the Muon family).
        needs_loss: it is stepped with the loss value (ScheduleFree+).
        rules: constraints across its parameters.
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    schedule_free: bool = False
    state_per_param: float
    needs_model: bool = False
    needs_loss: bool = False
    rules: tuple[Rule, ...] = ()

    def param(self, name: str) -> Param | None:
        return next((p for p in (*self.params, *COMMON_PARAMS) if p.name == name), None)

    @property
    def settable(self) -> tuple[Param, ...]:
        """What a sweep file's ``params`` may set: its own (minus ``set_by``) and the common ones."""
        return tuple(p for p in (*self.params, *COMMON_PARAMS) if p.set_by is None)

    def check(self, hyper: Mapping[str, Any]) -> Problem | None:
        """The first problem of one point (name -> value), or ``None`` if a trial accepts it."""
        return check_all((*self.params, *COMMON_PARAMS), self.rules, hyper, self.name)


def _f(name: str, default: Any, bounds: Bounds, help: str = "", **kw: Any) -> Param:  # noqa: A002
    return Param(name=name, kind="float", default=default, bounds=bounds, help=help, **kw)


def _i(name: str, default: Any, bounds: Bounds, help: str = "", **kw: Any) -> Param:  # noqa: A002
    return Param(name=name, kind="int", default=default, bounds=bounds, help=help, **kw)


def _betas(name: str, default: tuple[float, float], *, sf: bool = False) -> Param:
    """Adam's ``(beta1, beta2)`` in [0, 1); schedule-free's beta1 is the interpolation, in (0, 1)."""
    return Param(name=name, kind="pair", default=default,
                 pair=(UNIT_OPEN if sf else UNIT_HALF_OPEN, UNIT_HALF_OPEN))


def _choice(name: str, default: Any, choices: tuple[str, ...], **kw: Any) -> Param:
    return Param(name=name, kind="choice", default=default, choices=choices, **kw)


def _bool(name: str, default: bool) -> Param:
    return Param(name=name, kind="bool", default=default)


# Hyperparameters the lineage loop handles itself, accepted for every optimizer.
COMMON_PARAMS: tuple[Param, ...] = (
    _f("grad_clip", None, POSITIVE, "unset: no clipping (else the global gradient norm's bound)", nullable=True),
)

_WARMUP = _i("warmup_steps", 0, NON_NEGATIVE, set_by="warmup")
_SF_AVERAGE = (  # the schedule-free averaging weight (k + 1)^r · lr_max^p
    _f("r", 0.0, NON_NEGATIVE),
    _f("weight_lr_power", 2.0, NON_NEGATIVE),
)
_NS = (
    _i("ns_steps", 5, Bounds(1, 100, high_open=True)),
    _choice("ns_dtype", None, NS_DTYPES, nullable=True, help="unset: bfloat16 on CUDA, float32 elsewhere"),
)
_AUX_ADAMW = (  # the Muon family's AdamW for embeddings, head, norms and biases
    _f("adamw_lr", 3e-4, NON_NEGATIVE),
    _betas("adamw_betas", (0.9, 0.95)),
    _f("adamw_eps", 1e-10, POSITIVE),
    _f("adamw_weight_decay", 0.0, NON_NEGATIVE),
)
_SF_ADAMW = (
    _betas("betas", (0.9, 0.999), sf=True),
    _f("eps", 1e-8, POSITIVE),
    _f("weight_decay", 0.0, NON_NEGATIVE),
    _WARMUP,
    *_SF_AVERAGE,
    _f("inner_momentum", 0.0, UNIT_HALF_OPEN),
)


def _nesterov_needs_momentum(h: Mapping[str, Any]) -> bool:
    return not h["nesterov"] or h["momentum"] > 0


_CARDS = (
    OptimizerCard(
        name="adamw", summary="`torch.optim.AdamW` (fused on CPU/CUDA); decay on matrices only",
        state_per_param=2,
        params=(_f("weight_decay", 0.01, NON_NEGATIVE), _betas("betas", (0.9, 0.999)), _f("eps", 1e-8, POSITIVE)),
    ),
    OptimizerCard(
        name="sgd", summary="`torch.optim.SGD` (weight decay as an L2 term)", state_per_param=1,
        params=(_f("momentum", 0.0, UNIT_HALF_OPEN), _bool("nesterov", False), _f("weight_decay", 0.0, NON_NEGATIVE)),
        rules=(Rule("nesterov", _nesterov_needs_momentum, "false when momentum is 0 (Nesterov needs momentum > 0)"),),
    ),
    OptimizerCard(
        name="sf_adamw", summary="Schedule-Free AdamW (Defazio et al. 2024), with `inner_momentum`",
        schedule_free=True, state_per_param=3, params=_SF_ADAMW,
    ),
    OptimizerCard(
        name="sf_adamw_refined", summary="refined Schedule-Free AdamW (Song et al. 2025): averaging weight "
        "min(1, c·(1 − β1)·C); C = 1/(1 − β1) is `sf_adamw`",
        schedule_free=True, state_per_param=3,
        params=(_f("C", REQUIRED, POSITIVE, "no default: the paper's value is unverified"), *_SF_ADAMW),
    ),
    OptimizerCard(
        name="sf_sgd", summary="Schedule-Free SGD (Defazio et al. 2024)", schedule_free=True, state_per_param=1,
        params=(_f("momentum", 0.9, UNIT_OPEN), _f("weight_decay", 0.0, NON_NEGATIVE), _WARMUP, *_SF_AVERAGE),
    ),
    OptimizerCard(
        name="sf_plus", summary="ScheduleFree+ (Defazio 2026): Polyak step × `lr`, AdamC decay, stepped with the loss",
        schedule_free=True, state_per_param=3, needs_loss=True,
        params=(
            _betas("betas", (0.9, 0.95)),
            _f("sf_beta1", 0.9, UNIT_OPEN),
            _f("eps", 1e-8, POSITIVE),
            _f("weight_decay", 0.0, NON_NEGATIVE, "AdamC decay scaled by lr² (values ~20–50)"),
            _f("r", 0.0, NON_NEGATIVE),
            _f("polyak_beta", 0.0, UNIT_HALF_OPEN),
            _i("c_warmup", 0, NON_NEGATIVE),
            _i("sf_beta1_anneal_steps", 0, NON_NEGATIVE),
            _f("sf_beta1_max", 0.965, UNIT_OPEN),
            _f("weight_lr_power", 2.0, NON_NEGATIVE),
            _WARMUP,
        ),
    ),
    OptimizerCard(
        name="muon", summary="Muon (Jordan 2024) on hidden matrices, AdamW (`adamw_*`) elsewhere",
        state_per_param=2, needs_model=True,
        params=(
            _f("momentum", 0.95, UNIT_HALF_OPEN),
            _bool("nesterov", True),
            _NS[0],
            _f("weight_decay", 0.0, NON_NEGATIVE),
            _NS[1],
            *_AUX_ADAMW,
        ),
    ),
    OptimizerCard(
        name="normuon", summary="NorMuon (Li et al. 2025): Muon with per-row second-moment normalisation",
        state_per_param=2, needs_model=True,
        params=(
            _f("momentum", 0.95, UNIT_HALF_OPEN),
            _f("beta2", 0.95, UNIT_HALF_OPEN),
            _f("weight_decay", 0.0, NON_NEGATIVE),
            _bool("nesterov", True),
            *_NS,
            _f("eps", 1e-10, POSITIVE),
            _choice("lr_convention", "restore_norm", LR_CONVENTIONS),
            *_AUX_ADAMW,
        ),
    ),
    OptimizerCard(
        name="sf_normuon", summary="SF-NorMuon (Apte et al. 2026): schedule-free NorMuon, weight decay at z "
        "(`decay_at`), SF-AdamW elsewhere",
        schedule_free=True, state_per_param=3, needs_model=True,
        params=(
            _betas("betas", (0.9, 0.95), sf=True),
            _f("momentum", 0.95, UNIT_HALF_OPEN),
            _f("weight_decay", 0.0, NON_NEGATIVE),
            _f("eps", 1e-10, POSITIVE),
            _bool("nesterov", False),
            *_NS,
            _choice("lr_convention", "rms_0.2", LR_CONVENTIONS),
            _choice("decay_at", "z", DECAY_AT),
            _choice("decay_lr", "peak", DECAY_LR),
            _WARMUP,
            *_SF_AVERAGE,
            _f("adamw_lr", None, NON_NEGATIVE, "unset: `lr`", nullable=True),
            _f("adamw_beta2", 0.999, UNIT_HALF_OPEN),
            _f("adamw_eps", 1e-8, POSITIVE),
            _f("adamw_weight_decay", 0.0, NON_NEGATIVE),
        ),
    ),
)

OPTIMIZERS: dict[str, OptimizerCard] = {card.name: card for card in _CARDS}


def schedule_free_names() -> frozenset[str]:
    """The schedule-free optimizers (read at call time, so a registered card counts)."""
    return frozenset(n for n, card in OPTIMIZERS.items() if card.schedule_free)
