"""Grid axes and the scalar types of the sweep-file models.

A sweep file names a grid: lists are axes, scalars are one-element axes (``lr = 3e-3`` is
``lr = [3e-3]``). An axis is non-empty and never repeats a value.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.spec.errors import bad

__all__ = [
    "Axis",
    "Model",
    "NonNegFloat",
    "NonNegInt",
    "OpenFraction",
    "PosFloat",
    "PosInt",
    "distinct_or_raise",
]

T = TypeVar("T")


def _as_axis(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _repeated(values: list[Any]) -> Any:
    """The first value that repeats an earlier one (same value and type), else ``_NONE``; in
    linear time, so a million-value axis is counted (and refused) rather than compared pairwise."""
    seen: set[Any] = set()
    for v in values:
        try:
            key: Any = (type(v), v)
            hash(key)
        except TypeError:  # a list (a betas pair) or a table
            key = (type(v), repr(v))
        if key in seen:
            return v
        seen.add(key)
    return _NONE


_NONE = object()


def _distinct(values: list[Any]) -> list[Any]:
    if not values:
        raise bad("", values, "a non-empty list")
    if (v := _repeated(values)) is not _NONE:
        raise bad("", values, f"a list without repeated values ({v!r} repeats)")
    return values


def distinct_or_raise(field: str, values: list[Any]) -> None:
    """Raise the axis errors at ``field`` (for axes checked inside a model validator)."""
    if not values:
        raise bad(field, values, "a non-empty list")
    if (v := _repeated(values)) is not _NONE:
        raise bad(field, values, f"a list without repeated values ({v!r} repeats)")


# A grid axis: a scalar or a non-empty list of distinct values; always a list after validation.
Axis = Annotated[list[T], BeforeValidator(_as_axis), AfterValidator(_distinct)]
PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _open_fraction(value: float) -> float:
    if not 0 < value < 1:
        raise bad("", value, "a number in (0, 1)")
    return value


OpenFraction = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_open_fraction)]


class Model(BaseModel):
    """Every sweep-file table: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)
