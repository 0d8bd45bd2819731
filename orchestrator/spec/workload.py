"""``[workload]``: the model and data, its sizes and what each size costs.

Parameter models are generated from the workload cards (:data:`trials.catalog.WORKLOADS`);
what a size means (its parameter count ``N``, tokens per sample, memory) is the card's
accounting (:func:`trials.catalog.gpt_param_count`, :func:`trials.catalog.gpt_activation_bytes`).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    create_model,
    model_validator,
)

from orchestrator.spec.axes import Axis, Model
from orchestrator.spec.corpus import CorpusFacts, corpus_facts
from orchestrator.spec.errors import bad, said
from orchestrator.spec.params import scalar_field
from trials import catalog

__all__ = ["CharGPTWorkload", "LinRegWorkload", "LlamaWorkload", "ModelSize", "WORKLOAD_MODELS", "Workload",
           "gpt_param_count"]

gpt_param_count = catalog.gpt_param_count
_CHAR_GPT = catalog.WORKLOADS["char_gpt"]
_LINREG = catalog.WORKLOADS["linreg"]
_LLAMA = catalog.WORKLOADS["llama"]
DEFAULT_GPT_SIZE = str(_CHAR_GPT.default_size)
LINREG_DEFAULT_DIM = int(_LINREG.size_params[0].default)


@dataclass(frozen=True, kw_only=True)
class ModelSize:
    """One point of the ``workload.sizes`` axis, with what the planner's accounting needs."""

    label: str  # "nano", or "L2-d64-h4-ctx32" for a table, "dim=1000" for linreg
    params: dict[str, Any]  # the workload parameters this size contributes
    n_params: int  # non-embedding N
    block_size: int  # tokens per sequence (1 for linreg: one sample is one token)
    shape: dict[str, int] = field(default_factory=dict)  # char_gpt: n_layer, n_head, n_embd, block_size; llama: its six

    def tokens_per_step(self, batch_size: int) -> int:
        return batch_size * self.block_size


def _generated(name: str, base: type[BaseModel], params: tuple[catalog.Param, ...], **extra: Any) -> Any:
    fields = {p.name: scalar_field(p) for p in params if p.set_by is None}
    return create_model(name, __base__=base, **fields, **extra)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------- char_gpt
class _GPTShapeBase(Model):
    """A size as a table: a named base ``size`` (default ``micro``) with any dimension overridden."""

    if TYPE_CHECKING:  # fields generated from the card's size parameters
        size: str | None = None
        n_layer: int | None = None
        n_head: int | None = None
        n_embd: int | None = None
        block_size: int | None = None

    @model_validator(mode="after")
    def _valid(self) -> _GPTShapeBase:
        if all(v is None for _, v in self):
            raise said("", "set size or at least one of n_layer, n_head, n_embd, block_size")
        shape = self.shape()
        if shape["n_embd"] % shape["n_head"]:
            raise bad("n_embd", shape["n_embd"], f"a multiple of n_head ({shape['n_head']})")
        return self

    def shape(self) -> dict[str, int]:
        base = dict(catalog.GPT_SIZES[self.size or DEFAULT_GPT_SIZE])
        return {k: (getattr(self, k) if getattr(self, k) is not None else v) for k, v in base.items()}

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self if v is not None}


if TYPE_CHECKING:
    GPTShape = _GPTShapeBase
else:
    GPTShape = _generated("GPTShape", _GPTShapeBase, _CHAR_GPT.size_params)


def _size_tag(value: Any) -> str:
    return "size-table" if isinstance(value, (dict, BaseModel)) else "size-name"


def _known_size(name: Any) -> str:
    if not isinstance(name, str) or name not in catalog.GPT_SIZES:
        raise bad("", name, f"one of {sorted(catalog.GPT_SIZES)} or a table of n_layer, n_head, n_embd, block_size")
    return name


GPTSize = Annotated[
    Annotated[Annotated[Any, AfterValidator(_known_size)], Tag("size-name")] | Annotated[GPTShape, Tag("size-table")],
    Discriminator(_size_tag),
]


def _corpus_exists(value: str | None, info: ValidationInfo) -> str | None:
    """Resolve ``value`` against the spec file's directory and check it names what the workload
    can read: a text file, a ``.bin`` token shard, a directory of shards, or a glob of shards."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise bad("", value, "a non-empty path")
    base = Path((info.context or {}).get("base_dir") or ".")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if glob.has_magic(str(path)):
        if not any(p.endswith(".bin") for p in glob.glob(str(path))):
            raise bad("", value, f"a glob matching at least one .bin token shard (looked at {str(path)!r})")
        return str(path)
    if path.is_dir():
        if not any(path.glob("*.bin")):
            raise bad("", value, f"a readable text file, or a directory of .bin token shards (looked at {str(path.resolve())!r})")
        return str(path.resolve())
    if not (path.is_file() and os.access(path, os.R_OK)):
        raise bad("", value, f"a readable file (looked at {str(path.resolve())!r})")
    return str(path.resolve())


class _CharGPTParamsBase(Model):
    """Workload parameters shared by every size (``trials.workloads.char_gpt.CharGPTConfig``)."""

    if TYPE_CHECKING:  # fields generated from the card's parameters
        corpus: str | None = None
        vocab_size: int | None = None
        eval_batch_size: int | None = None
        val_fraction: float | None = None
        dtype: str | None = None
        compile: bool | None = None
        dropout: float | None = None
        bias: bool | None = None


if TYPE_CHECKING:
    CharGPTParams = _CharGPTParamsBase
else:
    CharGPTParams = _generated(
        "CharGPTParams", _CharGPTParamsBase, tuple(p for p in _CHAR_GPT.params if p.name != "corpus"),
        corpus=(Annotated[Any, AfterValidator(_corpus_exists)], None),
    )


class CharGPTWorkload(Model):
    card: ClassVar[catalog.WorkloadCard] = _CHAR_GPT

    name: Literal["char_gpt"]
    params: CharGPTParams = CharGPTParams()
    sizes: Axis[GPTSize] = [DEFAULT_GPT_SIZE]

    def model_sizes(self) -> list[ModelSize]:
        shared = {k: v for k, v in self.params if v is not None}
        bias = self.params.bias is not False
        out = []
        for s in self.sizes:
            shape = catalog.GPT_SIZES[s] if isinstance(s, str) else s.shape()
            label = s if isinstance(s, str) else "L{n_layer}-d{n_embd}-h{n_head}-ctx{block_size}".format(**shape)
            params = {"size": s} if isinstance(s, str) else s.given()
            n = gpt_param_count(shape["n_layer"], shape["n_embd"], shape["block_size"], bias=bias)
            out.append(ModelSize(label=label, params={**params, **shared}, n_params=n,
                                 block_size=shape["block_size"], shape=dict(shape)))
        return out

    def corpus(self) -> CorpusFacts:
        return corpus_facts(self.params.corpus)

    def vocab_size(self) -> int:
        """The embedding rows a trial will build (the corpus's default unless set)."""
        if self.params.vocab_size is not None:
            return int(self.params.vocab_size)
        facts = self.corpus()
        if facts.kind == "text":
            return facts.min_vocab or catalog.CHAR_VOCAB
        return catalog.DEFAULT_SHARD_VOCAB

    def val_fraction(self) -> float:
        value = self.params.val_fraction
        return float(value) if value is not None else float(_CHAR_GPT.param("val_fraction").default)  # type: ignore[union-attr]

    def total_params(self, size: ModelSize) -> int:
        s = size.shape
        return gpt_param_count(s["n_layer"], s["n_embd"], s["block_size"], self.vocab_size(),
                               non_embedding=False, bias=self.params.bias is not False)

    def activation_bytes(self, size: ModelSize, batch_size: int) -> int:
        s = size.shape
        return catalog.gpt_activation_bytes(n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"],
                                            block_size=s["block_size"], vocab_size=self.vocab_size(),
                                            batch_size=batch_size, dropout=float(self.params.dropout or 0.0))


# ---------------------------------------------------------------------------------- linreg
class _LinRegParamsBase(Model):
    if TYPE_CHECKING:  # fields generated from the card's parameters
        dim: int | None = None
        capacity: float | None = None
        source: float | None = None
        noise: float | None = None


class _LinRegSizeBase(Model):
    if TYPE_CHECKING:
        dim: int


if TYPE_CHECKING:
    LinRegParams = _LinRegParamsBase
    LinRegSize = _LinRegSizeBase
else:
    LinRegParams = _generated("LinRegParams", _LinRegParamsBase, _LINREG.size_params + _LINREG.params)
    LinRegSize = create_model("LinRegSize", __base__=_LinRegSizeBase,
                              dim=scalar_field(_LINREG.size_params[0], required=True))


class LinRegWorkload(Model):
    card: ClassVar[catalog.WorkloadCard] = _LINREG

    name: Literal["linreg"]
    params: LinRegParams = LinRegParams()
    sizes: Axis[LinRegSize] | None = None  # default: the one size params.dim (default 1000)

    @model_validator(mode="after")
    def _dim_once(self) -> LinRegWorkload:
        if self.sizes is not None and self.params.dim is not None:
            raise said("params.dim", "give the dimension either in params or in sizes, not both")
        return self

    def model_sizes(self) -> list[ModelSize]:
        base = {k: v for k, v in self.params.model_dump().items() if v is not None and k != "dim"}
        dims = [s.dim for s in self.sizes] if self.sizes is not None else [self.params.dim or LINREG_DEFAULT_DIM]
        return [ModelSize(label=f"dim={d}", params={**base, "dim": d}, n_params=d, block_size=1) for d in dims]

    def total_params(self, size: ModelSize) -> int:
        return size.n_params

    def activation_bytes(self, size: ModelSize, batch_size: int) -> int:
        return catalog.linreg_activation_bytes(dim=size.n_params, batch_size=batch_size)


# ---------------------------------------------------------------------------------- llama
class _LlamaShapeBase(Model):
    """A size as a table: a named base ``size`` (default ``nano``) with any dimension overridden."""

    if TYPE_CHECKING:  # fields generated from the card's size parameters
        size: str | None = None
        d_model: int | None = None
        n_layers: int | None = None
        n_heads: int | None = None
        n_kv_heads: int | None = None
        ffn_hidden: int | None = None
        context: int | None = None

    @model_validator(mode="after")
    def _valid(self) -> _LlamaShapeBase:
        if all(v is None for _, v in self):
            raise said("", f"set size or at least one of {', '.join(catalog.workloads.LLAMA_SHAPE_KEYS)}")
        problem = catalog.llama_shape_problem(self.shape())
        if problem is not None:
            raise bad(*problem)
        return self

    def shape(self) -> dict[str, int]:
        return catalog.llama_shape(self.size or str(_LLAMA.default_size),
                             {k: getattr(self, k) for k in catalog.workloads.LLAMA_SHAPE_KEYS})

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self if v is not None}


if TYPE_CHECKING:
    LlamaShapeTable = _LlamaShapeBase
else:
    LlamaShapeTable = _generated("LlamaShapeTable", _LlamaShapeBase, _LLAMA.size_params)


def _known_llama_size(name: Any) -> str:
    if not isinstance(name, str) or name not in catalog.LLAMA_SIZES:
        raise bad("", name, f"one of {sorted(catalog.LLAMA_SIZES)} or a table of d_model, n_layers, n_heads, ...")
    return name


LlamaSize = Annotated[
    Annotated[Annotated[Any, AfterValidator(_known_llama_size)], Tag("size-name")]
    | Annotated[LlamaShapeTable, Tag("size-table")],
    Discriminator(_size_tag),
]


class _LlamaParamsBase(Model):
    """Workload parameters shared by every size (``trials.workloads.llama.LlamaConfig``)."""

    if TYPE_CHECKING:  # fields generated from the card's parameters
        corpus: str | None = None
        vocab_size: int | None = None
        tie_embeddings: bool | None = None
        rope_theta: float | None = None
        norm_eps: float | None = None
        eval_batch_size: int | None = None
        val_fraction: float | None = None
        dtype: str | None = None
        compile: bool | None = None


if TYPE_CHECKING:
    LlamaParams = _LlamaParamsBase
else:
    LlamaParams = _generated(
        "LlamaParams", _LlamaParamsBase, tuple(p for p in _LLAMA.params if p.name != "corpus"),
        corpus=(Annotated[Any, AfterValidator(_corpus_exists)], None),
    )


class LlamaWorkload(Model):
    card: ClassVar[catalog.WorkloadCard] = _LLAMA

    name: Literal["llama"]
    params: LlamaParams = LlamaParams()
    sizes: Axis[LlamaSize] = [str(_LLAMA.default_size)]

    def model_sizes(self) -> list[ModelSize]:
        shared = {k: v for k, v in self.params if v is not None}
        out = []
        for s in self.sizes:
            shape = dict(catalog.LLAMA_SIZES[s]) if isinstance(s, str) else s.shape()
            label = s if isinstance(s, str) else "L{n_layers}-d{d_model}-h{n_heads}-kv{n_kv_heads}-f{ffn_hidden}-ctx{context}".format(**shape)
            params = {"size": s} if isinstance(s, str) else s.given()
            out.append(ModelSize(label=label, params={**params, **shared}, n_params=catalog.llama_param_count(**shape),
                                 block_size=shape["context"], shape=shape))
        return out

    def corpus(self) -> CorpusFacts:
        return corpus_facts(self.params.corpus)

    def vocab_size(self) -> int:
        """The embedding rows a trial will build (the manifest's or the corpus's default unless set)."""
        if self.params.vocab_size is not None:
            return int(self.params.vocab_size)
        facts = self.corpus()
        if facts.kind == "text":
            return facts.min_vocab or catalog.CHAR_VOCAB
        return facts.manifest_vocab or catalog.DEFAULT_SHARD_VOCAB

    def val_fraction(self) -> float:
        value = self.params.val_fraction
        return float(value) if value is not None else float(_LLAMA.param("val_fraction").default)  # type: ignore[union-attr]

    def total_params(self, size: ModelSize) -> int:
        return catalog.llama_param_count(**size.shape, vocab_size=self.vocab_size(), non_embedding=False,
                                         tie_embeddings=bool(self.params.tie_embeddings))

    def activation_bytes(self, size: ModelSize, batch_size: int) -> int:
        return catalog.llama_activation_bytes(**size.shape, vocab_size=self.vocab_size(), batch_size=batch_size)


WORKLOAD_MODELS: dict[str, type[Model]] = {"char_gpt": CharGPTWorkload, "linreg": LinRegWorkload,
                                           "llama": LlamaWorkload}
Workload = Annotated[CharGPTWorkload | LinRegWorkload | LlamaWorkload, Field(discriminator="name")]
