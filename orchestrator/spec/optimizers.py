"""``[[optimizers]]`` entries, one model per optimizer, generated from :data:`trials.catalog.OPTIMIZERS`.

Each entry is ``name``, an ``lr`` axis, ``params`` (hyperparameter name -> axis of values) and an
optional ``schedules`` restriction. ``params`` is a model generated from the optimizer's card:
its fields are exactly the hyperparameters a trial accepts (plus ``grad_clip``), and every value
is checked against the card's range when the spec loads — so a bad ``betas``, a string
``weight_decay`` or a negative ``grad_clip`` fails ``lrsweep plan``, never a trial. Constraints
across hyperparameters (SGD's Nesterov needs momentum) are checked at every grid point.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, create_model, model_serializer, model_validator

from orchestrator.spec.axes import Axis, Model, PosFloat, distinct_or_raise
from orchestrator.spec.errors import bad, said
from orchestrator.spec.params import axis_field, check_axes, grid, problem_error
from trials import catalog
from trials.catalog import OptimizerCard

__all__ = ["OptimizerEntryBase", "OptimizerParamsBase", "optimizer_entry_models", "optimizer_entry_union"]

MAX_POINTS = 1_000_000  # per entry; checked before the grid is enumerated (the sweep's own bound is the same)


class OptimizerParamsBase(Model):
    """``params`` of one optimizer entry; generated per card (:func:`_params_model`)."""

    card: ClassVar[OptimizerCard]

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        settable = sorted(p.name for p in cls.card.settable)
        for key, value in data.items():
            if key == "lr":
                raise said("lr", "set the peak LR axis with `lr = [...]` next to `name`, not in params")
            p = cls.card.param(key)
            if p is not None and p.set_by == "warmup":
                raise said(key, "set the warmup with the top-level `warmup` key")
            if p is None or p.set_by is not None:
                raise bad(key, value, f"a hyperparameter of {cls.card.name!r}: one of {settable}")
        for p in cls.card.settable:
            if p.required and p.name not in data:
                raise said(p.name, f"{cls.card.name!r} has no default for it: give {p.expected()}")
        return data

    @model_validator(mode="after")
    def _values(self) -> OptimizerParamsBase:
        check_axes(self.axes(), self.card.settable)
        return self

    @model_serializer(mode="wrap")
    def _only_given(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    def axes(self) -> dict[str, list[Any]]:
        """The hyperparameters the file sets, each an axis."""
        return {k: v for k, v in self if v is not None}


class OptimizerEntryBase(Model):
    """One ``[[optimizers]]`` entry; generated per card (:func:`optimizer_entry_models`)."""

    card: ClassVar[OptimizerCard]

    name: str
    lr: Axis[PosFloat]
    params: OptimizerParamsBase
    schedules: list[str] | None = None  # restrict to these schedule names (None: every schedule)

    @property
    def schedule_free(self) -> bool:
        return self.card.schedule_free

    @model_validator(mode="after")
    def _check(self) -> OptimizerEntryBase:
        points = math.prod(len(axis) for axis in self.params.axes().values()) * len(self.lr)
        if points > MAX_POINTS:
            raise said("params", f"lr and the hyperparameter axes make {points:,} grid points, at most {MAX_POINTS:,}")
        for point in grid(self.params.axes()):
            if (problem := self.card.check(point)) is not None:
                raise problem_error(problem, "params.")
        if self.schedules is not None:
            if self.schedule_free and self.schedules:
                raise said("schedules", f"schedule-free optimizer {self.name!r} takes no schedule "
                                        f"(its averaging replaces it), got {self.schedules!r}")
            if not self.schedule_free:
                distinct_or_raise("schedules", self.schedules)
        return self

    def settings(self) -> list[tuple[float, dict[str, Any]]]:
        """(peak LR, hyperparameters) for every grid point of this entry."""
        return [(lr, hyper) for lr in self.lr for hyper in grid(self.params.axes())]


def _params_model(card: OptimizerCard) -> type[OptimizerParamsBase]:
    fields = {p.name: axis_field(p, coerce=False) for p in card.settable}
    model = create_model(f"{_camel(card.name)}Params", __base__=OptimizerParamsBase, **fields)  # type: ignore[call-overload]
    model.card = card
    return model


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.replace("-", "_").split("_"))


@functools.lru_cache(maxsize=8)
def _models(fingerprint: Any) -> dict[str, type[OptimizerEntryBase]]:
    return {name: _entry_model(card) for name, card in catalog.OPTIMIZERS.items()}


def _entry_model(card: OptimizerCard) -> type[OptimizerEntryBase]:
    params = _params_model(card)
    model = create_model(
        f"{_camel(card.name)}Entry", __base__=OptimizerEntryBase,
        name=(Literal[card.name], ...),  # type: ignore[valid-type,arg-type]
        params=(params, Field(default={}, validate_default=True)),
    )
    model.card = card
    return model


def optimizer_entry_models() -> dict[str, type[OptimizerEntryBase]]:
    """One entry model per catalog optimizer (rebuilt when the catalog changes)."""
    return _models(catalog.fingerprint())


def optimizer_entry_union() -> Any:
    """The ``[[optimizers]]`` item type: the entry models, discriminated by ``name``."""
    models = tuple(optimizer_entry_models().values())
    return Annotated[Union[models], Field(discriminator="name")]  # noqa: UP007 - a runtime union
