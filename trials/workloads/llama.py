"""The ``llama`` workload: a :class:`~trials.workloads.llama_model.Llama` on token shards.

Data: ``corpus`` is what :func:`trials.workloads.corpus.load_corpus` reads — a directory that
``lrsweep data prepare`` wrote (its manifest gives the vocabulary), any nanoGPT/modded-nanogpt
shards, or text (characters; unset: the shipped Shakespeare). Shards are memory-mapped.

Data order: the minibatch of update ``t`` is ``batch_size`` windows of ``context + 1`` tokens at
offsets drawn uniformly (with replacement) from the training split by ``step_rng(seed, t)``:
a function of ``(seed, step)`` alone, so a resumed run or a fork sees the same batches.

Held-out set: a fixed slice of the validation split, the same for every seed and batch size:
``eval_batches * eval_batch_size`` windows starting at token ``k * context`` (``k = 0, 1, ...``,
wrapping round when the split is shorter), built once and kept on the device.

Accounting (``docs/llama.md``): ``n_params`` is the non-embedding count N (token embedding and
output head excluded, :func:`trials.catalog.llama_param_count`); ``tokens_per_step =
batch_size * context``; ``flops_per_step = tokens_per_step * (6 (N + d vocab) + 12 n_layers
context d)`` (:func:`trials.catalog.llama_flops_per_token`: 6 FLOPs per weight and token for
every matmul, the output head included, plus the attention-score term).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from trials.catalog import LLAMA_SIZES, llama_flops_per_token, llama_shape, llama_shape_problem
from trials.errors import ConfigError
from trials.workloads._base import TRAIN_STREAM, Workload, step_rng
from trials.workloads._validation import check_bool, check_float, check_int
from trials.workloads.corpus import Corpus, load_corpus
from trials.workloads.llama_model import Llama, LlamaShape

__all__ = ["LlamaConfig", "LlamaWorkload"]

log = logging.getLogger(__name__)

_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_SHAPE_KEYS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden", "context")


@dataclass(frozen=True, kw_only=True)
class LlamaConfig:
    """Parameters of :class:`LlamaWorkload` (``workload.params`` and ``workload.sizes``).

    Attributes:
        size: a named shape of :data:`trials.catalog.LLAMA_SIZES` (``nano`` ... ``124m``).
        d_model, n_layers, n_heads, n_kv_heads, ffn_hidden, context: override the named size.
        corpus: prepared shards, other ``.bin`` shards, or a text file; ``None``: the shipped text.
        vocab_size: embedding rows; default: the manifest's, the text's characters, or 50304.
        tie_embeddings: the output head shares the token embedding's matrix.
        rope_theta: RoPE base.
        norm_eps: RMSNorm epsilon.
        eval_batches, eval_batch_size: the fixed held-out set's shape.
        val_fraction: held-out tail when the corpus has no ``*val*`` shard.
        dtype: ``"float32"``, or ``"bfloat16"`` autocast (CUDA devices only).
        compile: ``torch.compile`` the model on CUDA; a no-op on CPU.
    """

    size: str = "nano"
    d_model: int | None = None
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    ffn_hidden: int | None = None
    context: int | None = None
    corpus: str | None = None
    vocab_size: int | None = None
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    eval_batches: int = 8
    eval_batch_size: int = 32
    val_fraction: float = 0.1
    dtype: str = "float32"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.size not in LLAMA_SIZES:
            raise ConfigError("workload.size", self.size, f"one of {sorted(LLAMA_SIZES)}")
        for key in (*_SHAPE_KEYS, "vocab_size"):
            check_int(f"workload.{key}", getattr(self, key), low=1, allow_none=True)
        check_int("workload.eval_batches", self.eval_batches, low=1)
        check_int("workload.eval_batch_size", self.eval_batch_size, low=1)
        check_float("workload.val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_float("workload.rope_theta", self.rope_theta, low=0.0, low_open=True)
        check_float("workload.norm_eps", self.norm_eps, low=0.0, low_open=True)
        check_bool("workload.tie_embeddings", self.tie_embeddings)
        check_bool("workload.compile", self.compile)
        if self.dtype not in _DTYPES:
            raise ConfigError("workload.dtype", self.dtype, f"one of {sorted(_DTYPES)}")
        if isinstance(self.corpus, os.PathLike):
            object.__setattr__(self, "corpus", os.fspath(self.corpus))
        if self.corpus is not None and not isinstance(self.corpus, str):
            raise ConfigError("workload.corpus", self.corpus, "a path string or None")
        problem = llama_shape_problem(self.shape())
        if problem is not None:
            raise ConfigError(f"workload.{problem[0]}", problem[1], problem[2])

    def shape(self) -> dict[str, int]:
        """The named size with explicit overrides applied (``n_kv_heads`` defaults to ``n_heads``)."""
        return llama_shape(self.size, {k: getattr(self, k) for k in _SHAPE_KEYS})


class LlamaWorkload(Workload):
    """Next-token prediction with a Llama (see the module docstring for conventions).

    Attributes:
        corpus: the loaded corpus.
        llama_shape: the model's resolved shape.
        block_size: context length (tokens per window, targets shifted by one).
        n_params_total: every parameter (a tied matrix once).
        eval_windows: the fixed held-out set, ``(eval_batches, eval_batch_size, context + 1)``.
    """

    name: ClassVar[str] = "llama"
    config_class: ClassVar[type] = LlamaConfig

    def __init__(self, config: LlamaConfig, *, seed: int, batch_size: int, device: str = "cpu") -> None:
        super().__init__(config, seed=seed, batch_size=batch_size, device=device)
        if config.dtype != "float32" and self.device.type != "cuda":
            raise ConfigError("workload.dtype", config.dtype, f"'float32' on device {str(self.device)!r} (bfloat16 autocast is CUDA-only)")
        shape = config.shape()
        self.block_size = shape["context"]
        self.corpus: Corpus = load_corpus(config.corpus, val_fraction=config.val_fraction, vocab_size=config.vocab_size)
        window = self.block_size + 1
        self._n_train = self.corpus.train.n_windows(window)
        n_val = self.corpus.val.n_windows(window)
        if self._n_train < 1:
            raise ConfigError("workload.context", self.block_size, f"shorter than the training split ({self.corpus.train.n_tokens} tokens)")
        if n_val < 1:
            raise ConfigError("workload.val_fraction", config.val_fraction,
                              f"large enough for a held-out window of {window} tokens (split has {self.corpus.val.n_tokens})")
        self.llama_shape = LlamaShape(vocab_size=self.corpus.vocab_size, tie_embeddings=config.tie_embeddings,
                                      rope_theta=config.rope_theta, norm_eps=config.norm_eps, **shape)
        with torch.random.fork_rng(devices=[]):  # init from the seed alone, global RNG untouched
            torch.manual_seed(seed)
            model = Llama(self.llama_shape)
        self.model = model.to(self.device)
        self._forward: torch.nn.Module = self.model
        if config.compile:
            if self.device.type == "cuda":
                self._forward = torch.compile(self.model)  # type: ignore[assignment]
            else:
                log.info("workload.compile=True ignored on device %s (CUDA only)", self.device)
        self._autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if config.dtype == "bfloat16" \
            else contextlib.nullcontext
        self.n_params = model.non_embedding_params()
        self.n_params_total = sum(p.numel() for p in model.parameters())
        self.tokens_per_step = batch_size * self.block_size
        self.flops_per_token = llama_flops_per_token(vocab_size=self.corpus.vocab_size, **shape)
        self.flops_per_step = float(self.flops_per_token * self.tokens_per_step)
        n_eval = config.eval_batches * config.eval_batch_size
        index = (np.arange(n_eval, dtype=np.int64) * self.block_size) % n_val
        windows = self._to_device(self.corpus.val.windows(index, window))
        self.eval_windows = windows.view(config.eval_batches, config.eval_batch_size, window)

    @property
    def unigram_entropy(self) -> float:
        """Nats per token of the training split's unigram distribution (a no-context baseline)."""
        return self.corpus.unigram_entropy

    def _to_device(self, windows: np.ndarray) -> torch.Tensor:
        if windows.size and windows.max() >= self.corpus.vocab_size:
            raise ConfigError("workload.vocab_size", self.corpus.vocab_size,
                              f"greater than every token id in the corpus (found {int(windows.max())})")
        t = torch.from_numpy(windows)
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``(B, context)`` of update ``step``, from ``(seed, step)`` alone."""
        rng = step_rng(self.seed, step, TRAIN_STREAM)
        index = rng.integers(0, self._n_train, size=self.batch_size)
        w = self._to_device(self.corpus.train.windows(index, self.block_size + 1))  # (B, T+1)
        return w[:, :-1], w[:, 1:]

    def train_loss(self, step: int) -> torch.Tensor:
        self.model.train()
        x, y = self.batch(step)
        with self._autocast():
            _, loss = self._forward(x, y)
        return loss

    @torch.no_grad()
    def eval_loss(self) -> float:
        was_training = self.model.training
        self.model.eval()
        try:
            total = torch.zeros((), device=self.device)
            for w in self.eval_windows:
                with self._autocast():
                    _, loss = self._forward(w[:, :-1], w[:, 1:])
                total += loss.float()
            return float(total) / len(self.eval_windows)
        finally:
            self.model.train(was_training)
