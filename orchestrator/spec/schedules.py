"""``[[schedules]]`` entries, one model per schedule, generated from :data:`trials.catalog.SCHEDULES`.

Each entry is ``name`` plus that schedule's parameters, each an optional axis (unset: the
schedule's default). Values are checked against the card when the spec loads; building the
schedule (:func:`trials.schedules.build_schedule`, the implementation) then checks them again.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, create_model, model_validator

from orchestrator.spec.axes import Model
from orchestrator.spec.errors import bad
from orchestrator.spec.params import axis_field, check_axes, grid
from trials import catalog
from trials.catalog import ScheduleCard
from trials.errors import ConfigError
from trials.schedules import Schedule, build_schedule

__all__ = ["ScheduleEntryBase", "schedule_entry_models", "schedule_entry_union"]


class ScheduleEntryBase(Model):
    """``name`` plus each of the schedule's parameters as an optional axis."""

    card: ClassVar[ScheduleCard]

    name: str

    def param_axes(self) -> dict[str, list[Any]]:
        return {k: v for k, v in self if k != "name" and v is not None}

    def settings(self, warmup: int) -> list[Schedule]:
        """Every grid point of this entry as a built schedule (defaults filled in by the class)."""
        return [build_schedule(self.name, warmup=warmup, **point) for point in grid(self.param_axes())]

    @model_validator(mode="after")
    def _values_valid(self) -> ScheduleEntryBase:
        axes = self.param_axes()
        check_axes(axes, self.card.params)
        for key, axis in axes.items():  # the implementation's own validation, as a backstop
            for j, value in enumerate(axis):
                try:
                    build_schedule(self.name, warmup=0, **{key: value})
                except ConfigError as exc:
                    raise bad(f"{key}[{j}]" if len(axis) > 1 else key, exc.value, exc.expected) from None
        return self


def _entry_model(card: ScheduleCard) -> type[ScheduleEntryBase]:
    fields: dict[str, Any] = {"name": (Literal[card.name], ...)}  # type: ignore[valid-type]
    fields |= {p.name: axis_field(p, coerce=True) for p in card.params}
    model = create_model(f"{card.name.title().replace('_', '')}Entry", __base__=ScheduleEntryBase, **fields)
    model.card = card
    return model


@functools.lru_cache(maxsize=8)
def _models(fingerprint: Any) -> dict[str, type[ScheduleEntryBase]]:
    return {name: _entry_model(card) for name, card in catalog.SCHEDULES.items()}


def schedule_entry_models() -> dict[str, type[ScheduleEntryBase]]:
    """One entry model per catalog schedule (rebuilt when the catalog changes)."""
    return _models(catalog.fingerprint())


def schedule_entry_union() -> Any:
    """The ``[[schedules]]`` item type: the entry models, discriminated by ``name``."""
    return Annotated[Union[tuple(schedule_entry_models().values())], Field(discriminator="name")]  # noqa: UP007
