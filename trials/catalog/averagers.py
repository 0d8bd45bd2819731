"""The averager catalog: each weight averager's parameters, label rule and memory.

The implementations are :data:`trials.averaging.AVERAGERS` (dataclass fields = parameters);
``tests/trials_tests/test_catalog.py`` checks the cards against them: the same fields and
defaults, and :meth:`AveragerCard.label` equal to ``trials.averaging.default_label``.

A sweep file may also say ``start_fraction`` for ``swa``: a *per-horizon* parameter the planner
turns into ``start = round(f · horizon)`` once per horizon of a lineage (``per_horizon = "start"``);
it is not a field of the averager itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trials.catalog._params import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT_OPEN,
    Bounds,
    Param,
    Problem,
    check_all,
    format_number,
)

__all__ = ["AVERAGERS", "AveragerCard"]


@dataclass(frozen=True, kw_only=True)
class AveragerCard:
    """What a sweep file may say about one averager kind.

    Attributes:
        kind: the registry name.
        summary: one line for the documentation.
        params: the averager's own parameters (its dataclass fields).
        per_horizon: sweep-file-only parameters resolved per horizon, name -> the parameter
            they set (``{"start_fraction": "start"}``), with their own :class:`Param`.
        one_of: groups of names of which exactly one must be given.
        label_rule: how a label is written, for the documentation (``"ema@<half_life>"``).
        label_of: the label of one point (its given parameters).
        copies: float copies of the weights one instance keeps (for the memory estimate).
    """

    kind: str
    summary: str
    params: tuple[Param, ...]
    per_horizon: tuple[tuple[Param, str], ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()
    label_rule: str
    label_of: Callable[[Mapping[str, Any]], str]
    copies: Callable[[Mapping[str, Any]], int] = lambda params: 1

    @property
    def spec_params(self) -> tuple[Param, ...]:
        """Every parameter a sweep file may give: the averager's and the per-horizon ones."""
        return self.params + tuple(p for p, _ in self.per_horizon)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.spec_params if p.name == name), None)

    def label(self, params: Mapping[str, Any]) -> str:
        return self.label_of(params)

    def check(self, params: Mapping[str, Any]) -> Problem | None:
        """The first problem of one point, or ``None``."""
        group = next((g for g in self.one_of if sum(k in params for k in g) != 1), None)
        if group is not None:
            return Problem(group[0], params.get(group[0]), f"given as exactly one of {list(group)}")
        required = tuple(p if not any(p.name in g for g in self.one_of) else _optional(p) for p in self.spec_params)
        return check_all(required, (), params, self.kind)


def _optional(p: Param) -> Param:
    return dataclasses.replace(p, default=None)


def _every() -> Param:
    return Param(name="every", kind="int", default=1, bounds=Bounds(1), help="steps between iterates taken")


def _swa_label(p: Mapping[str, Any]) -> str:
    every = p.get("every", 1)
    start = format_number(p["start_fraction"]) if "start_fraction" in p else str(p.get("start", 0))
    return f"swa@{start}" + ("" if every == 1 else f"/{every}")


_CARDS = (
    AveragerCard(
        kind="ema", summary="exponential moving average; `half_life` < 1 is a fraction of the steps so far "
        "(anytime form), >= 1 a number of steps",
        params=(Param(name="half_life", kind="float", bounds=POSITIVE,
                      note="a fraction (< 1) of the steps so far, or a number of steps (>= 1)"),),
        label_rule="`ema@<half_life>`: `ema@0.05`, `ema@200`",
        label_of=lambda p: f"ema@{format_number(p['half_life'])}",
    ),
    AveragerCard(
        kind="swa", summary="uniform tail average of the iterates after `start` (a step) or `start_fraction` "
        "(a fraction of each horizon), every `every` steps",
        params=(Param(name="start", kind="int", default=0, bounds=NON_NEGATIVE, help="a step"), _every()),
        per_horizon=((Param(name="start_fraction", kind="float", bounds=UNIT_OPEN, help="a fraction of each horizon"),
                      "start"),),
        one_of=(("start", "start_fraction"),),
        label_rule="`swa@<start>`, `swa@<start_fraction>`, `/<every>` unless 1: `swa@500`, `swa@0.5/10`",
        label_of=_swa_label,
    ),
    AveragerCard(
        kind="lawa", summary="mean of the last `k` snapshots taken every `every` steps (LAWA)",
        params=(Param(name="k", kind="int", bounds=Bounds(1)), _every()),
        label_rule="`lawa@<k>x<every>`: `lawa@5x100`",
        label_of=lambda p: f"lawa@{p['k']}x{p.get('every', 1)}",
        copies=lambda p: int(p["k"]),
    ),
    AveragerCard(
        kind="poly", summary="polynomial-decay averaging of order `q` (0: the uniform mean)",
        params=(Param(name="q", kind="float", bounds=NON_NEGATIVE),),
        label_rule="`poly@<q>`: `poly@1`",
        label_of=lambda p: f"poly@{format_number(p['q'])}",
    ),
)

AVERAGERS: dict[str, AveragerCard] = {card.kind: card for card in _CARDS}
