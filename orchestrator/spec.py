"""The sweep file: pydantic models, loading (TOML or YAML) and one-line errors.

A sweep file names a grid; lists are axes, scalars are one-element axes (``lr = 3e-3`` is
``lr = [3e-3]``). ``examples/README.md`` documents every key. :func:`load_spec` returns a
:class:`SweepSpec` whose ``model_dump()`` is canonical (every axis a list, every default filled
in) and :func:`spec_hash` is the hash of that dump minus ``store`` and ``resources`` (where a
sweep runs is not what it asks).

Every mistake becomes ONE :class:`SpecError` line naming the file, the dotted field path, the bad
value and what was expected, e.g. ``sweep.toml: schedules[1].cooldown_fraction must be a number
in (0, 1], got 1.5``.

Registries of the trial side are mirrored here as constants (``OPTIMIZER_NAMES``,
``SCHEDULE_FREE``, ``AVERAGER_KINDS``, ``WORKLOAD_NAMES``, ``GPT_SIZES``) so that validating a
spec needs neither torch nor a model; ``tests/orchestrator_tests/test_spec.py`` checks each
mirror against the real registry. Schedules are not mirrored: their entry models are generated
from :data:`trials.schedules.SCHEDULES` (pure Python).
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import math
import os
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import tomllib
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from orchestrator.search.spec import SearchSpec
from trials.errors import ConfigError
from trials.lineage_spec import canonical_hash
from trials.schedules import SCHEDULES, Schedule, build_schedule

__all__ = [
    "AVERAGER_KINDS",
    "GPT_SIZES",
    "OPTIMIZER_NAMES",
    "SCHEDULE_FREE",
    "WORKLOAD_NAMES",
    "ModelSize",
    "SpecError",
    "SweepSpec",
    "gpt_param_count",
    "load_spec",
    "parse_spec",
    "spec_hash",
]

# ---------------------------------------------------------------------------------- mirrors
OPTIMIZER_NAMES: tuple[str, ...] = (  # trials.optimizers.OPTIMIZERS
    "adamw", "muon", "normuon", "sf_adamw", "sf_adamw_refined", "sf_normuon", "sf_plus", "sf_sgd", "sgd")
SCHEDULE_FREE: frozenset[str] = frozenset(  # trials.optimizers.is_schedule_free
    {"sf_adamw", "sf_adamw_refined", "sf_normuon", "sf_plus", "sf_sgd"})
AVERAGER_KINDS: tuple[str, ...] = ("ema", "lawa", "poly", "swa")  # trials.averaging.AVERAGERS
WORKLOAD_NAMES: tuple[str, ...] = ("char_gpt", "linreg")  # trials.workloads
# Named char-GPT sizes (trials.workloads.gpt.GPT_SIZES). Non-embedding N in the comments.
GPT_SIZES: dict[str, dict[str, int]] = {
    "nano": {"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 64},  # N = 0.10M
    "micro": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128},  # N = 0.79M
    "small": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256},  # N = 10.6M
    "gpt2-small": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024},  # N = 85.1M
}
DEFAULT_GPT_SIZE = "micro"
LINREG_DEFAULT_DIM = 1000  # trials.workloads.linreg.LinRegConfig.dim
CHAR_VOCAB = 84  # distinct characters of the shipped Shakespeare corpus
CHINCHILLA_TOKENS_PER_PARAM = 20
# Optimizer hyperparameters that are themselves lists: a flat list is ONE value, a list of
# lists an axis (``betas = [0.9, 0.95]`` vs ``betas = [[0.9, 0.95], [0.9, 0.99]]``).
TUPLE_PARAMS: frozenset[str] = frozenset({"betas", "adamw_betas"})
# Hyperparameters the trial handles itself, accepted for every optimizer.
COMMON_OPTIMIZER_PARAMS: frozenset[str] = frozenset({"grad_clip"})


# ---------------------------------------------------------------------------------- errors
class SpecError(ConfigError):
    """A sweep file that cannot be read, parsed or validated; ``str()`` is one line.

    Attributes:
        source: the file, if the spec came from one.
        field: the dotted path of the offending field (``None`` for read/parse errors).
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None,
                 value: Any = None, expected: str | None = None) -> None:
        self.source, self.field, self.value, self.expected = source, field, value, expected
        text = " ".join(message.split())  # never more than one line
        ValueError.__init__(self, f"{source}: {text}" if source else text)


def _bad(field: str, value: Any, expected: str) -> PydanticCustomError:
    """A validation error at ``<loc>.<field>``: '... must be <expected>, got <value>'."""
    return PydanticCustomError("spec", "{field} must be {expected}, got {got}",
                               {"field": field, "expected": expected, "got": repr(value)})


def _said(field: str, message: str) -> PydanticCustomError:
    """A validation error at ``<loc>.<field>`` with a free-form explanation."""
    return PydanticCustomError("spec_msg", "{field}: {message}", {"field": field, "message": message})


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "list_type": "a list",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
    "none_required": "absent", "string_pattern_mismatch": "made of letters, digits, '.', '_' or '-'",
    "string_too_short": "a non-empty string",
}
_UNION_TAGS = set(SCHEDULES) | set(AVERAGER_KINDS) | set(WORKLOAD_NAMES) | {"size-name", "size-table"}


_MISSING = object()


def _path(loc: Iterable[Any], data: Any = _MISSING) -> str:
    """``('optimizers', 0, 'lr', 2)`` -> ``"optimizers[0].lr[2]"``. Given the raw ``data``, an
    index into a scalar the user wrote (an axis of one) is dropped: ``lr = -1.0`` is ``lr``."""
    out = ""
    prev: Any = None
    node = data
    for part in loc:
        is_tag = isinstance(part, str) and part in _UNION_TAGS and (isinstance(prev, int) or prev == "workload")
        prev = part
        if is_tag:  # a discriminated union's branch name, not a key the user wrote
            continue
        if isinstance(part, int) and node is not _MISSING and not isinstance(node, list):
            node = _MISSING
            continue
        if node is not _MISSING:
            if isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            elif isinstance(node, dict) and part in node:
                node = node[part]
            else:
                node = _MISSING
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _join(path: str, field: str) -> str:
    if not field:
        return path or "the sweep"
    if not path:
        return field
    return path + field if field.startswith("[") else f"{path}.{field}"


def describe_error(err: Mapping[str, Any], data: Any = _MISSING) -> str:
    """One pydantic error as '<path> must be <expected>, got <value>' (or a fitting variant);
    ``data`` is the raw input, used to print paths as the user wrote them."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    path = _path(err["loc"], data)
    if kind == "spec":
        return f"{_join(path, ctx['field'])} must be {ctx['expected']}, got {ctx['got']}"
    if kind == "spec_msg":
        return f"{_join(path, ctx['field'])}: {ctx['message']}"
    if kind == "extra_forbidden":
        parent, _, key = path.rpartition(".")
        if "." not in path and not parent:
            parent, key = "", path
        return f"unknown key {key!r} in {parent or 'the sweep file'}, got {value!r}"
    if kind == "missing":
        return f"{path} is required"
    if kind == "union_tag_invalid":
        tags = sorted(t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(","))
        key = str(ctx.get("discriminator", "name")).strip("'")
        return f"{_join(path, key)} must be one of {tags}, got {ctx.get('tag')!r}"
    if kind == "union_tag_not_found":
        return f"{_join(path, str(ctx.get('discriminator', 'name')).strip(chr(39)))} is required"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        expected = f"{op} {_number(next(iter(ctx.values())))}"
    elif kind == "literal_error":
        expected = f"one of {ctx.get('expected')}"
    elif kind == "too_short":
        expected = "a non-empty list"
    else:
        expected = _EXPECTED.get(kind, str(err.get("msg", kind)).lower())
    return f"{path or 'the sweep'} must be {expected}, got {value!r}"


# ---------------------------------------------------------------------------------- axes
T = TypeVar("T")


def _as_axis(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _distinct(values: list[Any]) -> list[Any]:
    if not values:
        raise _bad("", values, "a non-empty list")
    seen: list[Any] = []
    for v in values:
        if any(v == s and type(v) is type(s) for s in seen):
            raise _bad("", values, f"a list without repeated values ({v!r} repeats)")
        seen.append(v)
    return values


# A grid axis: a scalar or a non-empty list of distinct values; always a list after validation.
Axis = Annotated[list[T], BeforeValidator(_as_axis), AfterValidator(_distinct)]
PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def _open_fraction(value: float) -> float:
    if not 0 < value < 1:
        raise _bad("", value, "a number in (0, 1)")
    return value


OpenFraction = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_open_fraction)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------------------------- workload
def gpt_param_count(n_layer: int, n_embd: int, block_size: int, vocab_size: int = CHAR_VOCAB, *,
                    non_embedding: bool = True, bias: bool = True) -> int:
    """Parameters of the nanoGPT-style char model (:mod:`trials.workloads.gpt`: pre-LayerNorm
    blocks, learned positions, untied output head without bias), counted without building it.

    ``non_embedding=True`` (the ``N`` of Kaplan et al. 2020 and of ``6 N D``) counts the
    transformer blocks and the final LayerNorm, i.e. everything except the token embedding
    (``vocab x d``), the position embedding (``block x d``) and the output head (``d x vocab``).
    Per block with ``d = n_embd`` and biases: ln_1 ``2d``, qkv ``3d^2 + 3d``, attention out
    ``d^2 + d``, ln_2 ``2d``, MLP ``4d^2 + 4d`` and ``4d^2 + d``: ``12 d^2 + 13 d``; without
    biases (``bias=False``) ``12 d^2 + 2d``. The final LayerNorm adds ``2d`` (``d``).
    """
    d = n_embd
    per_block = 12 * d * d + (13 * d if bias else 2 * d)
    n = n_layer * per_block + (2 * d if bias else d)
    if not non_embedding:
        n += vocab_size * d + block_size * d + d * vocab_size
    return n


@dataclass(frozen=True, kw_only=True)
class ModelSize:
    """One point of the ``workload.sizes`` axis, with what the planner's accounting needs."""

    label: str  # "nano", or "2x64x2@64" for a table, "dim=1000" for linreg
    params: dict[str, Any]  # the workload parameters this size contributes
    n_params: int  # non-embedding N
    block_size: int  # tokens per sequence (1 for linreg: one sample is one token)

    def tokens_per_step(self, batch_size: int) -> int:
        return batch_size * self.block_size


def _size_tag(value: Any) -> str:
    return "size-table" if isinstance(value, (dict, BaseModel)) else "size-name"


class GPTShape(_Model):
    """A size as a table: a named base ``size`` (default ``micro``) with any dimension overridden."""

    size: str | None = None
    n_layer: PosInt | None = None
    n_head: PosInt | None = None
    n_embd: PosInt | None = None
    block_size: PosInt | None = None

    @model_validator(mode="after")
    def _valid(self) -> GPTShape:
        if self.size is not None and self.size not in GPT_SIZES:
            raise _bad("size", self.size, f"one of {sorted(GPT_SIZES)}")
        if all(v is None for _, v in self):
            raise _said("", "set size or at least one of n_layer, n_head, n_embd, block_size")
        shape = self.shape()
        if shape["n_embd"] % shape["n_head"]:
            raise _bad("n_embd", shape["n_embd"], f"a multiple of n_head ({shape['n_head']})")
        return self

    def shape(self) -> dict[str, int]:
        base = dict(GPT_SIZES[self.size or DEFAULT_GPT_SIZE])
        return {k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in base.items()}

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self if v is not None}


def _known_size(name: Any) -> str:
    if not isinstance(name, str) or name not in GPT_SIZES:
        raise _bad("", name, f"one of {sorted(GPT_SIZES)} or a table of n_layer, n_head, n_embd, block_size")
    return name


GPTSize = Annotated[
    Annotated[Annotated[Any, AfterValidator(_known_size)], Tag("size-name")] | Annotated[GPTShape, Tag("size-table")],
    Discriminator(_size_tag),
]


def _corpus_exists(value: str, base: Path) -> str:
    """Resolve ``value`` against ``base`` and check it names what the workload can read: a text
    file, a ``.bin`` token shard, a directory of shards, or a glob matching shards."""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if glob.has_magic(str(path)):
        if not any(p.endswith(".bin") for p in glob.glob(str(path))):
            raise _bad("", value, f"a glob matching at least one .bin token shard (looked at {str(path)!r})")
        return str(path)
    if path.is_dir():
        if not any(path.glob("*.bin")):
            raise _bad("", value, f"a readable text file, or a directory of .bin token shards (looked at {str(path.resolve())!r})")
        return str(path.resolve())
    if not (path.is_file() and os.access(path, os.R_OK)):
        raise _bad("", value, f"a readable file (looked at {str(path.resolve())!r})")
    return str(path.resolve())


class CharGPTParams(_Model):
    """Workload parameters shared by every size (``trials.workloads.char_gpt.CharGPTConfig``)."""

    corpus: str | None = None  # None: the shipped Shakespeare corpus
    vocab_size: PosInt | None = None  # None: the text's characters (50304 for shards)
    eval_batch_size: PosInt | None = None  # windows per held-out batch
    val_fraction: OpenFraction | None = None  # held-out tail of the token stream
    dtype: Literal["float32", "bfloat16"] | None = None  # bfloat16: CUDA autocast
    compile: bool | None = None  # torch.compile on CUDA
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    bias: bool | None = None  # biases in Linear and LayerNorm (default true)

    @field_validator("corpus")
    @classmethod
    def _readable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _corpus_exists(value, Path((info.context or {}).get("base_dir") or "."))


class CharGPTWorkload(_Model):
    name: Literal["char_gpt"]
    params: CharGPTParams = CharGPTParams()
    sizes: Axis[GPTSize] = [DEFAULT_GPT_SIZE]

    def model_sizes(self) -> list[ModelSize]:
        shared = {k: v for k, v in self.params if v is not None}
        bias = self.params.bias is not False
        out = []
        for s in self.sizes:
            shape = GPT_SIZES[s] if isinstance(s, str) else s.shape()
            label = s if isinstance(s, str) else "L{n_layer}-d{n_embd}-h{n_head}-ctx{block_size}".format(**shape)
            params = {"size": s} if isinstance(s, str) else s.given()
            n = gpt_param_count(shape["n_layer"], shape["n_embd"], shape["block_size"], bias=bias)
            out.append(ModelSize(label=label, params={**params, **shared}, n_params=n, block_size=shape["block_size"]))
        return out


class LinRegParams(_Model):
    dim: PosInt | None = None
    capacity: Annotated[float, Field(gt=1, allow_inf_nan=False)] | None = None  # a > 1
    source: PosFloat | None = None  # b
    noise: NonNegFloat | None = None  # sigma


class LinRegSize(_Model):
    dim: PosInt


class LinRegWorkload(_Model):
    name: Literal["linreg"]
    params: LinRegParams = LinRegParams()
    sizes: Axis[LinRegSize] | None = None  # default: the one size params.dim (default 1000)

    @model_validator(mode="after")
    def _dim_once(self) -> LinRegWorkload:
        if self.sizes is not None and self.params.dim is not None:
            raise _said("params.dim", "give the dimension either in params or in sizes, not both")
        return self

    def model_sizes(self) -> list[ModelSize]:
        base = {k: v for k, v in self.params.model_dump().items() if v is not None and k != "dim"}
        dims = [s.dim for s in self.sizes] if self.sizes is not None else [self.params.dim or LINREG_DEFAULT_DIM]
        return [ModelSize(label=f"dim={d}", params={**base, "dim": d}, n_params=d, block_size=1) for d in dims]


Workload = Annotated[CharGPTWorkload | LinRegWorkload, Field(discriminator="name")]


# ---------------------------------------------------------------------------------- optimizers
def _optimizer_hyperparameters(name: str) -> set[str] | None:
    """Keyword arguments the real optimizer accepts, if :mod:`trials.optimizers` is there to ask."""
    try:
        from trials.optimizers import OPTIMIZERS  # type: ignore[attr-defined]
    except ImportError:
        return None
    import inspect

    factory = OPTIMIZERS.get(name)
    if factory is None:
        return None
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    skip = {"self", "params", "named_params", "named_parameters", "lr"}
    return {p.name for p in params if p.name not in skip and p.kind is not inspect.Parameter.VAR_POSITIONAL}


_SCALAR = (bool, int, float, str)


def _is_number_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


class OptimizerEntry(_Model):
    name: str
    lr: Axis[PosFloat]
    params: dict[str, Any] = {}  # hyperparameter name -> axis of values
    schedules: list[str] | None = None  # restrict to these schedule names (None: every schedule)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in OPTIMIZER_NAMES:
            raise _bad("", name, f"one of {sorted(OPTIMIZER_NAMES)}")
        return name

    @property
    def schedule_free(self) -> bool:
        return self.name in SCHEDULE_FREE

    @model_validator(mode="after")
    def _check(self) -> OptimizerEntry:
        self.params = {key: self._axis(key, value) for key, value in self.params.items()}
        allowed = _optimizer_hyperparameters(self.name)
        for key, axis in self.params.items():
            if key == "lr":
                raise _said("params.lr", "set the peak LR axis with `lr = [...]` next to `name`, not in params")
            if key == "warmup_steps":
                raise _said("params.warmup_steps", "set the warmup with the top-level `warmup` key")
            if allowed is not None and key not in allowed | COMMON_OPTIMIZER_PARAMS:
                raise _bad(f"params.{key}", axis[0] if len(axis) == 1 else axis,
                           f"a hyperparameter of {self.name!r}: one of {sorted(allowed | COMMON_OPTIMIZER_PARAMS)}")
        if self.schedules is not None:
            if self.schedule_free and self.schedules:
                raise _said("schedules", f"schedule-free optimizer {self.name!r} takes no schedule "
                                         f"(its averaging replaces it), got {self.schedules!r}")
            if not self.schedule_free:
                _distinct_or_raise("schedules", self.schedules)
        return self

    @staticmethod
    def _axis(key: str, value: Any) -> list[Any]:
        expected = "a number, string or boolean, or a list of them"
        if key in TUPLE_PARAMS:
            if _is_number_list(value):
                return [value]
            if isinstance(value, list) and value and all(_is_number_list(v) for v in value):
                _distinct_or_raise(f"params.{key}", value)
                return value
            raise _bad(f"params.{key}", value, "a list of numbers, or a list of such lists (an axis)")
        if isinstance(value, _SCALAR):
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, _SCALAR) for v in value):
            _distinct_or_raise(f"params.{key}", value)
            return value
        raise _bad(f"params.{key}", value, expected)

    def settings(self) -> list[tuple[float, dict[str, Any]]]:
        """(peak LR, hyperparameters) for every grid point of this entry."""
        keys = sorted(self.params)
        grid = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(self.params[k] for k in keys))]
        return [(lr, hyper) for lr in self.lr for hyper in grid]


def _distinct_or_raise(field: str, values: list[Any]) -> None:
    if not values:
        raise _bad(field, values, "a non-empty list")
    for i, v in enumerate(values):
        if any(v == w and type(v) is type(w) for w in values[:i]):
            raise _bad(field, values, f"a list without repeated values ({v!r} repeats)")


# ---------------------------------------------------------------------------------- schedules
class _ScheduleEntryBase(_Model):
    """Generated per schedule class: ``name`` plus each dataclass field as an optional axis."""

    name: str

    def param_axes(self) -> dict[str, list[Any]]:
        return {k: v for k, v in self if k != "name" and v is not None}

    def settings(self, warmup: int) -> list[Schedule]:
        """Every grid point of this entry as a built schedule (defaults filled in by the class)."""
        axes = self.param_axes()
        keys = sorted(axes)
        return [build_schedule(self.name, warmup=warmup, **dict(zip(keys, combo, strict=True)))
                for combo in itertools.product(*(axes[k] for k in keys))]

    @model_validator(mode="after")
    def _values_valid(self) -> _ScheduleEntryBase:
        for key, axis in self.param_axes().items():
            for j, value in enumerate(axis):
                try:
                    build_schedule(self.name, warmup=0, **{key: value})
                except ConfigError as exc:
                    where = f"{key}[{j}]" if len(axis) > 1 else key
                    raise _bad(where, exc.value, exc.expected) from None
        return self


def _schedule_entry_model(cls: type[Schedule]) -> type[_ScheduleEntryBase]:
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {"name": (Literal[cls.name], ...)}  # type: ignore[valid-type]
    for f in dataclasses.fields(cls):
        if f.name == "warmup":
            continue
        base = hints[f.name]
        args = [a for a in typing.get_args(base) if a is not type(None)]
        if args and len(args) < len(typing.get_args(base)):
            base = args[0]
        fields[f.name] = (Axis[base] | None, None)  # type: ignore[valid-type]
    return create_model(f"{cls.__name__}Entry", __base__=_ScheduleEntryBase, **fields)


SCHEDULE_ENTRIES: dict[str, type[_ScheduleEntryBase]] = {n: _schedule_entry_model(c) for n, c in SCHEDULES.items()}
ScheduleEntry = Annotated[
    Union[tuple(SCHEDULE_ENTRIES.values())],  # type: ignore[valid-type]  # noqa: UP007 - a runtime union
    Field(discriminator="name"),
]


# ---------------------------------------------------------------------------------- averagers
def format_number(value: float) -> str:
    """Label formatting of :mod:`trials.averaging`: ``200.0 -> "200"``, ``0.05 -> "0.05"``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True, kw_only=True)
class AveragerPoint:
    """One averager of the expanded ``averagers`` list (before per-horizon instantiation)."""

    kind: str
    params: dict[str, Any]
    label: str
    start_fraction: float | None = None  # SWA only: start = round(f * horizon), read at that horizon


def _half_life(value: Any) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise _bad("", value, "a number > 0: a fraction (< 1) of the steps so far, or a number of steps (>= 1)")
    return value


class _AveragerBase(_Model):
    kind: str

    def points(self) -> list[AveragerPoint]:
        axes = {k: v for k, v in self if k != "kind" and v is not None}
        keys = sorted(axes)
        return [self._point(dict(zip(keys, combo, strict=True))) for combo in itertools.product(*(axes[k] for k in keys))]

    def _point(self, params: dict[str, Any]) -> AveragerPoint:
        raise NotImplementedError


class EMAEntry(_AveragerBase):
    kind: Literal["ema"]
    half_life: Axis[Annotated[Any, AfterValidator(_half_life)]]

    def _point(self, params: dict[str, Any]) -> AveragerPoint:
        return AveragerPoint(kind="ema", params=params, label=f"ema@{format_number(params['half_life'])}")


class SWAEntry(_AveragerBase):
    kind: Literal["swa"]
    start: Axis[NonNegInt] | None = None  # a step
    start_fraction: Axis[OpenFraction] | None = None  # a fraction of each horizon
    every: Axis[PosInt] = [1]

    @model_validator(mode="after")
    def _one_start(self) -> SWAEntry:
        if (self.start is None) == (self.start_fraction is None):
            raise _said("start", "give exactly one of start (a step) or start_fraction (a fraction of each horizon)")
        return self

    def _point(self, params: dict[str, Any]) -> AveragerPoint:
        every = params["every"]
        tail = "" if every == 1 else f"/{every}"
        if "start_fraction" in params:
            f = params["start_fraction"]
            return AveragerPoint(kind="swa", params={"every": every}, label=f"swa@{format_number(f)}{tail}", start_fraction=f)
        return AveragerPoint(kind="swa", params=params, label=f"swa@{params['start']}{tail}")


class LAWAEntry(_AveragerBase):
    kind: Literal["lawa"]
    k: Axis[PosInt]
    every: Axis[PosInt] = [1]

    def _point(self, params: dict[str, Any]) -> AveragerPoint:
        return AveragerPoint(kind="lawa", params=params, label=f"lawa@{params['k']}x{params['every']}")


class PolyEntry(_AveragerBase):
    kind: Literal["poly"]
    q: Axis[NonNegFloat]

    def _point(self, params: dict[str, Any]) -> AveragerPoint:
        return AveragerPoint(kind="poly", params=params, label=f"poly@{format_number(params['q'])}")


AveragerEntry = Annotated[EMAEntry | SWAEntry | LAWAEntry | PolyEntry, Field(discriminator="kind")]


# ---------------------------------------------------------------------------------- the rest
class Horizons(_Model):
    """Exactly one of: steps, tokens, or multiples of Chinchilla's 20 tokens per parameter."""

    steps: Axis[PosInt] | None = None
    tokens: Axis[PosInt] | None = None
    chinchilla: Axis[PosFloat] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Horizons:
        given = [k for k in ("steps", "tokens", "chinchilla") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _said("", f"give exactly one of steps, tokens or chinchilla, got {given or 'none'}")
        return self

    @property
    def unit(self) -> str:
        return next(k for k in ("steps", "tokens", "chinchilla") if getattr(self, k) is not None)

    @property
    def values(self) -> list[float]:
        return list(getattr(self, self.unit))

    def to_steps(self, n_params: int, tokens_per_step: int) -> list[int]:
        """Horizons in optimizer steps (Python's round, half to even, for tokens and multiples)."""
        if self.steps is not None:
            return list(self.steps)
        if self.tokens is not None:
            return [round(t / tokens_per_step) for t in self.tokens]
        return [round(m * CHINCHILLA_TOKENS_PER_PARAM * n_params / tokens_per_step) for m in self.values]


def _no_log_points(value: Any) -> Any:
    raise _said("", "log_points was replaced by points_per_decade (eval points at round(10^(k/n)) for every "
                    "k, so adding a horizon never moves them); e.g. points_per_decade = 4")


class EvalSpec(_Model):
    every: NonNegInt = 0  # also evaluate every N steps (0: off)
    points_per_decade: NonNegInt = 4  # eval at round(10^(k/n)), k = 0, 1, ... (plus every horizon)
    batches: PosInt | None = None  # eval batches per evaluation (char_gpt); None: the workload's default
    log_every: PosInt = 1  # a train-loss row every N updates
    log_points: Annotated[Any, AfterValidator(_no_log_points)] = Field(default=None, exclude=True)


def _grid_ratio(value: float) -> float:
    if 0 < value <= 1:
        raise _bad("", value, "0 (off) or a ratio > 1")
    return value


class Resources(_Model):
    cpu: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0  # per trial
    gpu: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0  # per trial; fractions share a GPU
    concurrency: PosInt | None = None  # at most this many trials at once (None: as resources allow)
    retries: NonNegInt = 2  # a failed trial is retried this many times, from its last checkpoint
    checkpoint_every: NonNegInt = 0  # also checkpoint every N steps (crash resume); 0: off
    # keep trunk checkpoints at round(r^k) steps (plus every fork and the end) so extending the
    # sweep later replays at most a fraction 1 - 1/r of a fork step; 0: forks and the end only
    checkpoint_grid: Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_grid_ratio)] = 2.0


class SweepSpec(_Model):
    """A validated sweep file. See ``examples/README.md`` for every key."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    store: str = "./lrsweep-results"
    workload: Workload
    optimizers: Annotated[list[OptimizerEntry], Field(min_length=1)]
    schedules: list[ScheduleEntry] = []  # type: ignore[valid-type]
    warmup: Axis[NonNegInt] = [0]
    batch_size: Axis[PosInt] = [32]
    seeds: Axis[NonNegInt] = [0]
    horizons: Horizons
    averagers: list[AveragerEntry] = []
    eval: EvalSpec = EvalSpec()
    resources: Resources = Resources()
    divergence_factor: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 5.0
    search: SearchSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        self._check_schedules()
        self._check_horizons()
        self._check_averagers()
        if self.search is not None:
            self.search.check(self)
        if self.eval.batches is not None and self.workload.name == "linreg":
            raise _said("eval.batches", "linreg evaluates its exact risk; remove eval.batches")
        return self

    def _check_schedules(self) -> None:
        names = [s.name for s in self.schedules]
        stepped = [(i, o) for i, o in enumerate(self.optimizers) if not o.schedule_free]
        if stepped and not self.schedules:
            i, o = stepped[0]
            raise _said("schedules", f"at least one schedule is required for optimizers[{i}] {o.name!r}")
        if self.schedules and not stepped:
            raise _said("schedules", "every optimizer is schedule-free, so the schedules would be unused; remove them")
        for i, o in stepped:
            for name in o.schedules or []:
                if name not in names:
                    raise _bad(f"optimizers[{i}].schedules", name, f"one of the sweep's schedules {sorted(set(names))}")
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.schedules):
            for sched in entry.settings(0):
                params = {k: v for k, v in sched.params().items() if k != "warmup"}
                key = canonical_hash([sched.name, params])
                if key in seen:
                    raise _said(f"schedules[{i}]", f"repeats a schedule setting of schedules[{seen[key]}] ({sched.name} {params})")
                seen.setdefault(key, i)
        seen = {}
        for i, o in enumerate(self.optimizers):
            for lr, hyper in o.settings():
                key = canonical_hash([o.name, lr, hyper])
                if key in seen and seen[key] != i:
                    raise _said(f"optimizers[{i}]", f"repeats a setting of optimizers[{seen[key]}] ({o.name}, lr={lr}, {hyper})")
                seen.setdefault(key, i)

    def _check_horizons(self) -> None:
        unit = self.horizons.unit
        longest_warmup = max(self.warmup)
        for size in self.workload.model_sizes():
            for batch in self.batch_size:
                tps = size.tokens_per_step(batch)
                steps = self.horizons.to_steps(size.n_params, tps)
                for j, (value, s) in enumerate(zip(self.horizons.values, steps, strict=True)):
                    where = f"horizons.{unit}[{j}]" if len(steps) > 1 else f"horizons.{unit}"
                    context = "" if unit == "steps" else f" ({s} steps for size {size.label}, batch {batch}: {tps} tokens/step)"
                    if s <= longest_warmup:
                        raise _bad(where, value, f"longer than the warmup of {longest_warmup} steps{context}")
                    if s in steps[:j]:
                        raise _bad(where, value, f"a different number of steps from horizons.{unit}[{steps.index(s)}]{context}")

    def _check_averagers(self) -> None:
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.averagers):
            for point in entry.points():
                if point.label in seen:
                    raise _said(f"averagers[{i}]", f"repeats the averager {point.label!r} of averagers[{seen[point.label]}]")
                seen[point.label] = i

    def averager_points(self) -> list[AveragerPoint]:
        return [p for entry in self.averagers for p in entry.points()]


# ---------------------------------------------------------------------------------- loading
class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def _read(path: Path) -> Any:
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read the sweep file: {exc.strerror or exc}", source=src) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"the sweep file is not UTF-8 text ({exc.reason} at byte {exc.start})", source=src) from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"invalid TOML: {exc}", source=src) from None
    if suffix in (".yaml", ".yml"):
        try:
            return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise SpecError(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}", source=src) from None
    raise SpecError(f"the sweep file must end in .toml, .yaml or .yml, got {path.name!r}", source=src)


def parse_spec(data: Any, *, base_dir: str | os.PathLike[str] | None = None, source: str | None = None) -> SweepSpec:
    """Validate already-parsed sweep data; relative paths (corpus) resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise SpecError(f"the sweep file must be a table of keys, got {type(data).__name__}", source=source)
    try:
        return SweepSpec.model_validate(data, context={"base_dir": str(base_dir) if base_dir else None})
    except ValidationError as exc:
        # an unknown key explains the rest (a misspelt required key is also "missing"): report it first
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        message = describe_error(first, data)
        more = len({_path(e["loc"]) for e in errors[1:]} - {_path(first["loc"])})
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        raise SpecError(message, source=source, field=_path(first["loc"], data) or None, value=first.get("input")) from None


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read, parse and validate a sweep file (``.toml``, ``.yaml`` or ``.yml``).

    Raises:
        SpecError: one line naming the file, the field, the value and what was expected.
    """
    p = Path(path)
    return parse_spec(_read(p), base_dir=p.parent, source=str(p))


def spec_hash(spec: SweepSpec) -> str:
    """Identity of what a sweep asks: the canonical dump minus ``store`` and ``resources``."""
    return canonical_hash(spec.model_dump(mode="json", exclude={"store", "resources"}))
