"""The language-model workload: a :class:`~trials.workloads.gpt.GPT` on a :class:`~.corpus.Corpus`.

Data order: the minibatch of update ``t`` is ``batch_size`` windows of ``block_size + 1`` tokens
at offsets drawn uniformly (with replacement) from the training split by ``step_rng(seed, t)``.

Held-out set: ``eval_batches`` batches of ``eval_batch_size`` windows from the validation split,
at offsets drawn once by a generator with a *constant* seed (``step_rng(0, 0, EVAL_STREAM)``).
It is independent of the trial seed and of the training batch size, so eval losses are
comparable across every setting of a sweep that shares corpus, ``val_fraction`` and
``block_size``. It is built once and kept on the device.

Accounting: ``n_params`` is the non-embedding count (Kaplan et al. 2020: everything except
``tok_emb``, ``pos_emb`` and ``lm_head``; ``n_params_total`` has all of them);
``tokens_per_step = batch_size * block_size``; ``flops_per_step = 6 * n_params *
tokens_per_step`` (Kaplan's C = 6 N B S: forward 2N + backward 4N per token, leaving out the
attention-score term 6 n_layer block_size n_embd and the ``lm_head`` matmul 6 n_embd vocab).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from trials.errors import ConfigError
from trials.workloads._base import EVAL_STREAM, TRAIN_STREAM, Workload, step_rng
from trials.workloads._validation import check_bool, check_float, check_int
from trials.workloads.corpus import Corpus, load_corpus
from trials.workloads.gpt import GPT, GPT_SIZES, GPTConfig

__all__ = ["CharGPT", "CharGPTConfig", "DTYPES"]

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True, kw_only=True)
class CharGPTConfig:
    """Parameters of :class:`CharGPT` (``workload.<name>`` in a sweep file).

    Attributes:
        size: a named shape from ``GPT_SIZES`` (``nano``, ``micro``, ``small``, ``gpt2-small``).
        n_layer, n_head, n_embd, block_size: override the named size's value when set.
        corpus: ``None`` (shipped Shakespeare), a text file, or ``.bin`` shard file/dir/glob;
            a relative path is resolved against the trial process's working directory.
        vocab_size: embedding rows; default: the text's characters, or 50304 for shards.
        eval_batches: batches in the fixed held-out set.
        eval_batch_size: windows per held-out batch (independent of the training batch size).
        val_fraction: held-out tail of the token stream, in (0, 1).
        dtype: ``"float32"``, or ``"bfloat16"`` autocast (CUDA devices only).
        compile: ``torch.compile`` the model on CUDA; a no-op on CPU (where it buys ~3%).
        dropout: dropout probability (0: none; draws from the global torch RNG).
        bias: biases in linear layers and LayerNorms (GPT-2 style).
    """

    size: str = "micro"
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    corpus: str | None = None
    vocab_size: int | None = None
    eval_batches: int = 8
    eval_batch_size: int = 32
    val_fraction: float = 0.1
    dtype: str = "float32"
    compile: bool = False
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self) -> None:
        if self.size not in GPT_SIZES:
            raise ConfigError("workload.size", self.size, f"one of {sorted(GPT_SIZES)}")
        for key in ("n_layer", "n_head", "n_embd", "block_size"):
            check_int(f"workload.{key}", getattr(self, key), low=1, allow_none=True)
        check_int("workload.vocab_size", self.vocab_size, low=1, allow_none=True)
        check_int("workload.eval_batches", self.eval_batches, low=1)
        check_int("workload.eval_batch_size", self.eval_batch_size, low=1)
        check_float("workload.val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
        check_float("workload.dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_bool("workload.compile", self.compile)
        check_bool("workload.bias", self.bias)
        if self.dtype not in DTYPES:
            raise ConfigError("workload.dtype", self.dtype, f"one of {sorted(DTYPES)}")
        if isinstance(self.corpus, os.PathLike):
            object.__setattr__(self, "corpus", os.fspath(self.corpus))
        if self.corpus is not None and not isinstance(self.corpus, str):
            raise ConfigError("workload.corpus", self.corpus, "a path string or None")
        shape = self.shape()
        if shape["n_embd"] % shape["n_head"]:
            raise ConfigError("workload.n_embd", shape["n_embd"], f"a multiple of n_head ({shape['n_head']})")

    def shape(self) -> dict[str, int]:
        """The named size with explicit overrides applied."""
        shape = dict(GPT_SIZES[self.size])
        for key in shape:
            if getattr(self, key) is not None:
                shape[key] = getattr(self, key)
        return shape


class CharGPT(Workload):
    """Next-token prediction with a small GPT (see the module docstring for conventions).

    Attributes:
        corpus: the loaded :class:`~trials.workloads.corpus.Corpus`.
        gpt_config: the model's resolved shape.
        block_size: context length (tokens per window, targets shifted by one).
        n_params_total: every parameter, embeddings and head included.
        eval_windows: the fixed held-out set, ``(eval_batches, eval_batch_size, block_size + 1)``.
    """

    name: ClassVar[str] = "char_gpt"
    config_class: ClassVar[type] = CharGPTConfig
    data_parallel: ClassVar[bool] = True

    def __init__(self, config: CharGPTConfig, *, seed: int, batch_size: int, device: str = "cpu") -> None:
        super().__init__(config, seed=seed, batch_size=batch_size, device=device)
        if config.dtype != "float32" and self.device.type != "cuda":
            raise ConfigError("workload.dtype", config.dtype, f"'float32' on device {str(self.device)!r} (bfloat16 autocast is CUDA-only)")
        shape = config.shape()
        self.block_size = shape["block_size"]
        self.corpus: Corpus = load_corpus(config.corpus, val_fraction=config.val_fraction, vocab_size=config.vocab_size)
        window = self.block_size + 1
        self._n_train = self.corpus.train.n_windows(window)
        n_val = self.corpus.val.n_windows(window)
        if self._n_train < 1:
            raise ConfigError("workload.block_size", self.block_size, f"shorter than the training split ({self.corpus.train.n_tokens} tokens)")
        if n_val < 1:
            raise ConfigError("workload.val_fraction", config.val_fraction,
                              f"large enough for a held-out window of {window} tokens (split has {self.corpus.val.n_tokens})")
        self.gpt_config = GPTConfig(vocab_size=self.corpus.vocab_size, bias=config.bias, dropout=config.dropout, **shape)
        with torch.random.fork_rng(devices=[]):  # init from the seed alone, global RNG untouched
            torch.manual_seed(seed)
            model = GPT(self.gpt_config)
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
        self.flops_per_step = 6.0 * self.n_params * self.tokens_per_step
        eval_rng = step_rng(0, 0, EVAL_STREAM)
        index = eval_rng.integers(0, n_val, size=config.eval_batches * config.eval_batch_size)
        windows = self._to_device(self.corpus.val.windows(index, window))
        self.eval_windows = windows.view(config.eval_batches, config.eval_batch_size, window)  # (E, Be, T+1)

    @property
    def unigram_entropy(self) -> float:
        """Nats per token of the training split's unigram distribution (a no-context baseline)."""
        return self.corpus.unigram_entropy

    def _to_device(self, windows: np.ndarray) -> torch.Tensor:
        if self.corpus.kind == "shards" and windows.size and windows.max() >= self.corpus.vocab_size:
            raise ConfigError("workload.vocab_size", self.corpus.vocab_size,
                              f"greater than every token id in the corpus (found {int(windows.max())})")
        return self.to_device(torch.from_numpy(windows))

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``(B, block_size)`` of update ``step``, from ``(seed, step)`` alone
        (``B = batch_size / workers``: this worker's rows of the global batch)."""
        rng = step_rng(self.seed, step, TRAIN_STREAM)
        index = rng.integers(0, self._n_train, size=self.batch_size)[self.shard_rows()]
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
