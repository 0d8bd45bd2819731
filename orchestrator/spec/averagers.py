"""``[[averagers]]`` entries, one model per kind, generated from :data:`trials.catalog.AVERAGERS`.

Each entry is ``kind`` plus that averager's parameters, each an axis: a list makes several
averagers. An entry expands to :class:`AveragerPoint` objects labelled by the card's rule;
a per-horizon parameter (``swa``'s ``start_fraction``) is carried as ``start_fraction`` and
resolved by the planner once per horizon.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, create_model, model_validator

from orchestrator.spec.axes import Model
from orchestrator.spec.errors import said
from orchestrator.spec.params import axis_field, check_axes, grid
from trials import catalog
from trials.catalog import AveragerCard, Param

__all__ = ["AveragerEntryBase", "AveragerPoint", "averager_entry_models", "averager_entry_union"]


@dataclass(frozen=True, kw_only=True)
class AveragerPoint:
    """One averager of the expanded ``averagers`` list (before per-horizon instantiation)."""

    kind: str
    params: dict[str, Any]
    label: str
    start_fraction: float | None = None  # SWA only: start = round(f * horizon), read at that horizon


class AveragerEntryBase(Model):
    """``kind`` plus each parameter as an axis; generated per card."""

    card: ClassVar[AveragerCard]

    kind: str

    def param_axes(self) -> dict[str, list[Any]]:
        return {k: v for k, v in self if k != "kind" and v is not None}

    @model_validator(mode="after")
    def _valid(self) -> AveragerEntryBase:
        axes = self.param_axes()
        for group in self.card.one_of:
            if sum(k in axes for k in group) != 1:
                named = [f"{k} ({p.help})" if (p := self.card.param(k)) and p.help else k for k in group]
                raise said(group[0], f"give exactly one of {' or '.join(named)}")
        check_axes(axes, self.card.spec_params)
        return self

    def points(self) -> list[AveragerPoint]:
        per_horizon = {p.name for p, _ in self.card.per_horizon}
        out = []
        for point in grid(self.param_axes()):
            fraction = next((point[k] for k in per_horizon if k in point), None)
            params = {k: v for k, v in point.items() if k not in per_horizon}
            out.append(AveragerPoint(kind=self.card.kind, params=params, label=self.card.label(point),
                                     start_fraction=fraction))
        return out


def _field(card: AveragerCard, p: Param) -> tuple[Any, Any]:
    if any(p.name in group for group in card.one_of):
        return axis_field(p, coerce=True, default=None)
    return axis_field(p, coerce=True, default=... if p.required else [p.default])


def _entry_model(card: AveragerCard) -> type[AveragerEntryBase]:
    fields: dict[str, Any] = {"kind": (Literal[card.kind], ...)}  # type: ignore[valid-type]
    fields |= {p.name: _field(card, p) for p in card.spec_params}
    model = create_model(f"{card.kind.upper()}Entry", __base__=AveragerEntryBase, **fields)
    model.card = card
    return model


@functools.lru_cache(maxsize=8)
def _models(fingerprint: Any) -> dict[str, type[AveragerEntryBase]]:
    return {kind: _entry_model(card) for kind, card in catalog.AVERAGERS.items()}


def averager_entry_models() -> dict[str, type[AveragerEntryBase]]:
    """One entry model per catalog averager kind (rebuilt when the catalog changes)."""
    return _models(catalog.fingerprint())


def averager_entry_union() -> Any:
    """The ``[[averagers]]`` item type: the entry models, discriminated by ``kind``."""
    return Annotated[Union[tuple(averager_entry_models().values())], Field(discriminator="kind")]  # noqa: UP007
