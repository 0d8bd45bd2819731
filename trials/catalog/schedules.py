"""The schedule catalog: each LR schedule's parameters, ranges, defaults and planning family.

The implementations are the dataclasses of :data:`trials.schedules.SCHEDULES` (their fields are
the parameters, ``warmup`` aside: the sweep's top-level ``warmup`` sets it);
``tests/trials_tests/test_catalog.py`` checks that the cards name the same fields with the same
defaults and that every value a card accepts builds the schedule.

Families (how the planner shares work, docs/design.md §4): ``horizon-free`` schedules run once to
the longest horizon; ``per-horizon`` ones once per horizon; ``wsd`` shares one constant trunk and
forks a cooldown branch per horizon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from trials.catalog._params import POSITIVE, UNIT, Bounds, Param, Problem, check_all

__all__ = ["COOLDOWN_SHAPES", "SCHEDULES", "ScheduleCard"]

COOLDOWN_SHAPES: tuple[str, ...] = ("linear", "cosine", "1-sqrt")  # trials.schedules.COOLDOWN_SHAPES


@dataclass(frozen=True, kw_only=True)
class ScheduleCard:
    """What a sweep file may say about one schedule.

    Attributes:
        name: the registry name.
        summary: one line for the documentation.
        params: its parameters (the dataclass fields other than ``warmup``).
        family: ``horizon-free``, ``per-horizon`` or ``wsd`` (see the module docstring).
    """

    name: str
    summary: str
    params: tuple[Param, ...] = ()
    family: Literal["horizon-free", "per-horizon", "wsd"]

    @property
    def horizon_free(self) -> bool:
        return self.family == "horizon-free"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def check(self, params: Mapping[str, Any]) -> Problem | None:
        return check_all(self.params, (), params, self.name)


def _fraction(name: str, default: float, bounds: Bounds = UNIT) -> Param:
    return Param(name=name, kind="float", default=default, bounds=bounds)


_CARDS = (
    ScheduleCard(name="constant", summary="the peak LR after warmup", family="horizon-free"),
    ScheduleCard(name="cosine", summary="cosine decay to `final_fraction` of the peak at the horizon",
                 family="per-horizon", params=(_fraction("final_fraction", 0.1),)),
    ScheduleCard(name="linear", summary="linear decay to `final_fraction` of the peak at the horizon",
                 family="per-horizon", params=(_fraction("final_fraction", 0.0),)),
    ScheduleCard(
        name="wsd", summary="warmup–stable–decay (Hägele et al. 2024): a cooldown over the last "
        "`cooldown_fraction` of each horizon", family="wsd",
        params=(
            _fraction("cooldown_fraction", 0.2, Bounds(0, 1, low_open=True)),
            Param(name="cooldown_shape", kind="choice", default="1-sqrt", choices=COOLDOWN_SHAPES),
            _fraction("final_fraction", 0.0),
        ),
    ),
    ScheduleCard(name="inverse_sqrt", summary="sqrt(tau / max(t, tau)) after warmup", family="horizon-free",
                 params=(Param(name="tau", kind="float", default=None, bounds=POSITIVE, nullable=True,
                               help="unset: the warmup (at least 1)"),)),
    ScheduleCard(
        name="polynomial", summary="(1 + (t − W)/t0)^−gamma (Meterez et al. 2026), horizon-free",
        family="horizon-free",
        params=(_fraction("gamma", 0.5), Param(name="t0", kind="float", default=100.0, bounds=POSITIVE)),
    ),
)

SCHEDULES: dict[str, ScheduleCard] = {card.name: card for card in _CARDS}
