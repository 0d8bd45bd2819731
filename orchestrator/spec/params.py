"""Pydantic fields generated from catalog parameters (:class:`trials.catalog.Param`).

Two shapes: an *axis* field (optimizer, schedule and averager parameters: a value or a list of
values, each checked against the card) and a *scalar* field (workload parameters). A ``pair``
parameter (``betas``) given as a flat list is ONE value; an axis of pairs is a list of lists.

Float parameters of schedules, averagers and workloads are stored as floats (``0`` -> ``0.0``,
as pydantic's float fields always did); optimizer hyperparameters are passed through as written,
because they are part of every lineage's identity (``weight_decay = 0`` and ``0.0`` have always
been different lineages, and stored sweeps must keep their ids).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from orchestrator.spec.axes import distinct_or_raise
from orchestrator.spec.errors import bad
from trials.catalog import Param, Problem

__all__ = ["axis_field", "check_axes", "grid", "problem_error", "scalar_field"]


def _is_pair_value(value: Any) -> bool:
    return isinstance(value, list) and not all(isinstance(v, list) for v in value)


def _to_axis(p: Param, coerce: bool) -> Any:
    def to_axis(value: Any) -> Any:
        if p.kind == "pair":
            axis = [value] if (_is_pair_value(value) and value) or not isinstance(value, list) else value
        else:
            axis = value if isinstance(value, list) else [value]
        distinct_or_raise("", axis)
        return [_as_float(p, v) for v in axis] if coerce else axis

    return to_axis


def _as_float(p: Param, value: Any) -> Any:
    return float(value) if p.kind == "float" and p.accepts(value) and value is not None else value


def axis_field(p: Param, *, coerce: bool, default: Any = None) -> tuple[Any, Any]:
    """``(type, default)`` for ``create_model``: an axis of ``p``'s values (checked by
    :func:`check_axes`); required when ``default`` is ``...``."""
    kind = Annotated[list[Any], BeforeValidator(_to_axis(p, coerce))]
    return (kind, ...) if default is ... else (kind | None, default)


def check_axes(axes: Mapping[str, list[Any] | None], params: Iterable[Param]) -> None:
    """Raise at ``<name>`` (``<name>[j]`` in an axis of several) for the first bad value."""
    for p in params:
        axis = axes.get(p.name)
        for j, value in enumerate(axis or ()):
            if (expected := p.problem(value)) is not None:
                raise bad(p.name if len(axis or ()) == 1 else f"{p.name}[{j}]", value, expected)


def scalar_field(p: Param, *, coerce: bool = True, required: bool = False) -> tuple[Any, Any]:
    """``(type, default)``: one value of ``p``; unless ``required``, ``None`` (the default) means
    unset: the workload's own default applies."""

    def check(value: Any) -> Any:
        if value is None and not required:
            return None
        if (expected := p.problem(value)) is not None:
            raise bad("", value, expected)
        return _as_float(p, value) if coerce else value

    return (Annotated[Any, AfterValidator(check)], ... if required else None)


def grid(axes: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes, keys sorted (one dict per grid point)."""
    keys = sorted(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axes[k] for k in keys))]


def problem_error(problem: Problem, prefix: str = "") -> Exception:
    """A catalog :class:`~trials.catalog.Problem` as a validation error at ``prefix + field``."""
    return bad(prefix + problem.field, problem.value, problem.expected)
