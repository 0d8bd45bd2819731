"""One hyperparameter of a catalog entry: its type, range, default, and how it is checked.

A :class:`Param` answers two questions without importing the component: is this value
acceptable (:meth:`Param.problem`), and how to say what is (:meth:`Param.expected`, phrased
to follow "must be", as every lrsweep error is). Numbers are real ``int``/``float`` values,
never ``bool``, never NaN or infinite; an ``int`` parameter takes no ``float``. ``None`` is
accepted only where the component itself takes it (``nullable``: "the implementation decides",
usually the default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["REQUIRED", "Bounds", "Param", "Problem", "Rule", "format_number"]


class _Required:
    """The default of a parameter that has none (the user must set it)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

Kind = Literal["float", "int", "bool", "choice", "pair", "path"]


def format_number(value: float) -> str:
    """``200.0 -> "200"``, ``0.05 -> "0.05"``, ``1e-08 -> "1e-08"`` (repr: no precision lost)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def is_real(value: Any) -> bool:
    """A finite ``int`` or ``float`` (not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Bounds:
    """An interval; ``None`` is unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def text(self) -> str:
        """``"in [0, 1)"``, ``"> 0"``, ``">= 0"``, ``"<= 1"``, or ``""`` when unbounded."""
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return (f"in {'(' if self.low_open else '['}{format_number(lo)}, "
                    f"{format_number(hi)}{')' if self.high_open else ']'}")
        if lo is not None:
            return f"{'>' if self.low_open else '>='} {format_number(lo)}"
        if hi is not None:
            return f"{'<' if self.high_open else '<='} {format_number(hi)}"
        return ""


UNBOUNDED = Bounds()
NON_NEGATIVE = Bounds(0)
POSITIVE = Bounds(0, low_open=True)
UNIT = Bounds(0, 1)  # [0, 1]
UNIT_HALF_OPEN = Bounds(0, 1, high_open=True)  # [0, 1): betas, momentum
UNIT_OPEN = Bounds(0, 1, low_open=True, high_open=True)  # (0, 1)


@dataclass(frozen=True, kw_only=True)
class Param:
    """A hyperparameter: name, type, range and default.

    Attributes:
        name: the keyword argument of the component (and the key in a sweep file).
        kind: ``float``, ``int``, ``bool``, ``choice`` (one of ``choices``), ``pair`` (two
            numbers, each in its ``pair`` bounds) or ``path`` (a non-empty string).
        default: the component's default, or :data:`REQUIRED`.
        bounds: the range of a ``float`` or ``int``.
        pair: the ranges of a ``pair``'s two numbers.
        choices: the names a ``choice`` takes.
        nullable: ``None`` is accepted (the component decides; usually its default).
        set_by: the sweep-file key that sets it instead (``"warmup"``); not allowed in ``params``.
        help: one line for the documentation tables; for a ``None`` default, ``"unset: ..."``
            says what unset means.
        note: what the value means, appended to :meth:`expected` (``": a fraction ..."``).
    """

    name: str
    kind: Kind
    default: Any = REQUIRED
    bounds: Bounds = UNBOUNDED
    pair: tuple[Bounds, Bounds] | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    set_by: str | None = None
    help: str = ""
    note: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def expected(self) -> str:
        """What a value must be, phrased to follow "must be"."""
        return self._expected() + (f": {self.note}" if self.note else "")

    def _expected(self) -> str:
        if self.kind in ("float", "int"):
            noun = "a number" if self.kind == "float" else "an integer"
            text = self.bounds.text()
            return f"{noun} {text}" if text else ("a finite number" if self.kind == "float" else noun)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return f"one of {sorted(self.choices)}"
        if self.kind == "path":
            return "a non-empty path"
        first, second = self.pair or (UNBOUNDED, UNBOUNDED)
        if first == second:
            text = first.text()
            return f"two numbers {text}" if text else "two finite numbers"
        return f"two numbers, the first {first.text()} and the second {second.text()}"

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is acceptable (see the module docstring)."""
        if value is None:
            return self.nullable
        if self.kind == "float":
            return is_real(value) and self.bounds.contains(value)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool) and self.bounds.contains(value)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "path":
            return isinstance(value, str) and bool(value.strip())
        bounds = self.pair or (UNBOUNDED, UNBOUNDED)
        return (isinstance(value, (list, tuple)) and len(value) == 2
                and all(is_real(v) and b.contains(v) for v, b in zip(value, bounds, strict=True)))

    def problem(self, value: Any) -> str | None:
        """``None`` if ``value`` is acceptable, else what was expected."""
        return None if self.accepts(value) else self.expected()

    def describe(self, default: str | None = None) -> str:
        """```betas` ([0.9, 0.999]): two numbers in [0, 1)`` -- for documentation tables
        (``default`` replaces the default's text)."""
        return f"`{self.name}` ({default or self.default_text()}): {self.expected()}"

    def default_text(self) -> str:
        """The default as a sweep file would write it (``required``, ``unset`` if ``None``)."""
        if self.required:
            return "required"
        if self.default is None:
            return self.help if self.help.startswith("unset") else "unset"
        if isinstance(self.default, tuple):
            return "[" + ", ".join(format_number(v) for v in self.default) + "]"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, str):
            return f'"{self.default}"'
        return format_number(self.default)


@dataclass(frozen=True)
class Problem:
    """One reason a set of hyperparameters is refused: ``<field> must be <expected>, got <value>``."""

    field: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.field} must be {self.expected}, got {self.value!r}"


@dataclass(frozen=True)
class Rule:
    """A constraint across parameters (checked with every default filled in).

    Attributes:
        field: the parameter an error names.
        holds: ``True`` when the full hyperparameters are acceptable.
        expected: what ``field`` must be, following "must be".
    """

    field: str
    holds: Callable[[Mapping[str, Any]], bool]
    expected: str


def check_all(params: tuple[Param, ...], rules: tuple[Rule, ...], given: Mapping[str, Any],
              owner: str) -> Problem | None:
    """The first problem of one point ``given`` (name -> one value), or ``None``.

    Checks, in order: unknown names (listing the sorted known ones), names set elsewhere
    (``set_by``), missing required ones, each value, then the rules with defaults filled in.
    """
    by_name = {p.name: p for p in params}
    for key, value in given.items():
        if key not in by_name:
            return Problem(key, value, f"a hyperparameter of {owner!r}: one of {sorted(by_name)}")
        if by_name[key].set_by:
            return Problem(key, value, f"unset: it is set by the top-level `{by_name[key].set_by}` key")
    for p in params:
        if p.required and p.name not in given:
            return Problem(p.name, None, f"given: {owner!r} has no default for it ({p.expected()})")
        if p.name in given and (why := p.problem(given[p.name])) is not None:
            return Problem(p.name, given[p.name], why)
    full = {p.name: p.default for p in params} | dict(given)
    for rule in rules:
        if not rule.holds(full):
            return Problem(rule.field, full[rule.field], rule.expected)
    return None
