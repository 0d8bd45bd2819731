"""Training text for the GPT workload: a character-level text file or ``.bin`` token shards.

``corpus`` (a sweep's ``workload.corpus``) may be:

- ``None``: the shipped Shakespeare (``data/shakespeare.txt.gz``, see ``data/README.md``);
- a path to a text file (``.gz`` is decompressed): a character-level vocabulary, the sorted set
  of characters in the file (nanoGPT's ``shakespeare_char`` convention), one id per character;
- a directory, a glob, or a single ``.bin`` file of token shards (:mod:`.shards`); a directory
  that ``lrsweep data prepare`` wrote holds a ``manifest.json`` whose vocabulary size is the
  default ``vocab_size`` (``docs/data.md``).

Held-out split: for text, and for shards without a validation file, the *last* ``val_fraction``
of the token stream; shards whose file name contains ``val`` (``val.bin``,
``fineweb_val_000000.bin``) are the held-out split instead, and ``val_fraction`` is unused.

Decompression and encoding happen once per process per file (``functools.lru_cache`` keyed by the
resolved path, size and mtime); shards are memory-mapped.
"""

from __future__ import annotations

import functools
import glob as globlib
import gzip
import importlib.resources
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from trials.errors import ConfigError
from trials.shard_format import read_manifest
from trials.workloads.shards import read_shard

__all__ = ["Corpus", "TokenStream", "load_corpus", "SHIPPED_CORPUS", "DEFAULT_SHARD_VOCAB"]

SHIPPED_CORPUS = "shakespeare.txt.gz"
DEFAULT_SHARD_VOCAB = 50304  # GPT-2's 50257 padded to a multiple of 128 (nanoGPT, modded-nanogpt)


@dataclass(frozen=True, eq=False)
class TokenStream:
    """Token arrays read as one stream of fixed-length windows; no window crosses two segments."""

    segments: tuple[np.ndarray, ...]

    @property
    def n_tokens(self) -> int:
        return sum(len(s) for s in self.segments)

    def _counts(self, length: int) -> np.ndarray:
        return np.array([max(0, len(s) - length + 1) for s in self.segments], dtype=np.int64)

    def n_windows(self, length: int) -> int:
        """How many distinct windows of ``length`` consecutive tokens the stream holds."""
        return int(self._counts(length).sum())

    def windows(self, index: np.ndarray, length: int) -> np.ndarray:
        """Windows number ``index`` (each in ``[0, n_windows)``) as an int64 array ``(B, length)``."""
        counts = self._counts(length)
        ends = np.cumsum(counts)
        index = np.asarray(index, dtype=np.int64)
        seg = np.searchsorted(ends, index, side="right")
        local = index - (ends[seg] - counts[seg])
        out = np.empty((len(index), length), dtype=np.int64)
        span = np.arange(length)
        for k in np.unique(seg):
            rows = seg == k
            out[rows] = self.segments[k][local[rows, None] + span]
        return out


@dataclass(frozen=True, kw_only=True, eq=False)
class Corpus:
    """A loaded corpus.

    Attributes:
        source: the path given (or ``"shipped:shakespeare.txt.gz"``).
        kind: ``"text"`` (character-level) or ``"shards"`` (token ids).
        vocab_size: number of distinct ids the model must embed.
        chars: the character vocabulary, id ``i`` is ``chars[i]`` (text only).
        train: the training split.
        val: the held-out split.
    """

    source: str
    kind: str
    vocab_size: int
    chars: str | None
    train: TokenStream
    val: TokenStream

    @cached_property
    def unigram_entropy(self) -> float:
        """Entropy in nats per token of the training split's unigram distribution."""
        counts = np.zeros(self.vocab_size, dtype=np.int64)
        for s in self.train.segments:
            counts += np.bincount(s, minlength=self.vocab_size)[: self.vocab_size]
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log(p)).sum())

    def encode(self, text: str) -> np.ndarray:
        if self.chars is None:
            raise ValueError("encode needs a character-level corpus")
        table = {c: i for i, c in enumerate(self.chars)}
        return np.array([table[c] for c in text], dtype=np.int64)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        if self.chars is None:
            raise ValueError("decode needs a character-level corpus")
        return "".join(self.chars[int(i)] for i in ids)


def load_corpus(corpus: str | os.PathLike[str] | None, *, val_fraction: float = 0.1,
                vocab_size: int | None = None) -> Corpus:
    """Load a corpus (see the module docstring). Bad paths raise :class:`ConfigError`.

    Args:
        corpus: ``None`` for the shipped text, a text file, or a ``.bin`` file/directory/glob.
        val_fraction: the held-out tail of the stream, in (0, 1).
        vocab_size: ids to embed. Text: defaults to the number of characters (a larger value
            pads). Shards: defaults to 50304.
    """
    if corpus is None:
        ids, chars = _shipped_text()
        return _text_corpus(f"shipped:{SHIPPED_CORPUS}", ids, chars, val_fraction, vocab_size)
    given = os.fspath(corpus)
    path = Path(given).expanduser()
    if globlib.has_magic(given):
        files = sorted(Path(p) for p in globlib.glob(os.path.expanduser(given)) if p.endswith(".bin"))
        if not files:
            raise ConfigError("workload.corpus", given, "a glob matching at least one .bin token shard")
        return _shard_corpus(given, files, val_fraction, vocab_size)
    if path.is_dir():
        files = sorted(path.glob("*.bin"))
        if not files:
            raise ConfigError("workload.corpus", given, "a text file, or a directory holding .bin token shards")
        try:
            manifest = read_manifest(path)
        except ValueError as exc:
            raise ConfigError("workload.corpus", given, str(exc).split(" must be ", 1)[-1]) from exc
        if vocab_size is None and manifest is not None:
            vocab_size = int(manifest["vocab_size"])
        return _shard_corpus(given, files, val_fraction, vocab_size)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError("workload.corpus", given, "an existing readable file")
    if path.suffix == ".bin":
        return _shard_corpus(given, [path], val_fraction, vocab_size)
    stat = path.stat()
    ids, chars = _read_text(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return _text_corpus(given, ids, chars, val_fraction, vocab_size)


# ---------------------------------------------------------------------------------- text
@functools.lru_cache(maxsize=1)
def _shipped_text() -> tuple[np.ndarray, str]:
    blob = (importlib.resources.files(__package__) / "data" / SHIPPED_CORPUS).read_bytes()
    return _encode_chars(gzip.decompress(blob), SHIPPED_CORPUS)


@functools.lru_cache(maxsize=8)
def _read_text(path: str, size: int, mtime_ns: int) -> tuple[np.ndarray, str]:
    """Read and encode a text file once per (path, size, mtime)."""
    blob = Path(path).read_bytes()
    if path.endswith(".gz"):
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError) as exc:
            raise ConfigError("workload.corpus", path, "a readable gzip file") from exc
    return _encode_chars(blob, path)


def _encode_chars(blob: bytes, source: str) -> tuple[np.ndarray, str]:
    """Character ids (sorted vocabulary) of UTF-8 text, vectorised with numpy."""
    if blob.isascii():
        codes = np.frombuffer(blob, dtype=np.uint8)
    else:
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("workload.corpus", source, "UTF-8 text (or .bin token shards)") from exc
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    present = np.flatnonzero(np.bincount(codes))
    chars = "".join(map(chr, present))
    lut = np.zeros(int(present[-1]) + 1 if len(present) else 1,
                   dtype=np.uint8 if len(present) <= 256 else np.int32)
    lut[present] = np.arange(len(present))
    ids = lut[codes]
    ids.flags.writeable = False
    return ids, chars


def _split_point(n: int, val_fraction: float) -> int:
    return n - int(math.ceil(val_fraction * n))


def _text_corpus(source: str, ids: np.ndarray, chars: str, val_fraction: float,
                 vocab_size: int | None) -> Corpus:
    if vocab_size is None:
        vocab_size = len(chars)
    elif vocab_size < len(chars):
        raise ConfigError("workload.vocab_size", vocab_size, f"at least the corpus's {len(chars)} characters, or None")
    cut = _split_point(len(ids), val_fraction)
    return Corpus(source=source, kind="text", vocab_size=vocab_size, chars=chars,
                  train=TokenStream((ids[:cut],)), val=TokenStream((ids[cut:],)))


# ---------------------------------------------------------------------------------- shards
def _shard_corpus(source: str, files: list[Path], val_fraction: float, vocab_size: int | None) -> Corpus:
    for f in files:
        if not os.access(f, os.R_OK):
            raise ConfigError("workload.corpus", str(f), "an existing readable file")
    val_files = [f for f in files if "val" in f.name]
    train_files = [f for f in files if "val" not in f.name]
    if val_files and train_files:
        train = TokenStream(tuple(read_shard(f) for f in train_files))
        val = TokenStream(tuple(read_shard(f) for f in val_files))
    elif val_files:
        raise ConfigError("workload.corpus", source, "shards including at least one training file (name without 'val')")
    else:
        arrays = [read_shard(f) for f in train_files]
        cut = _split_point(sum(len(a) for a in arrays), val_fraction)
        tr: list[np.ndarray] = []
        va: list[np.ndarray] = []
        start = 0
        for a in arrays:  # split the concatenated stream at `cut`, within one shard at most
            lo, hi = start, start + len(a)
            if hi <= cut:
                tr.append(a)
            elif lo >= cut:
                va.append(a)
            else:
                tr.append(a[: cut - lo])
                va.append(a[cut - lo:])
            start = hi
        train, val = TokenStream(tuple(tr)), TokenStream(tuple(va))
    return Corpus(source=source, kind="shards", vocab_size=vocab_size or DEFAULT_SHARD_VOCAB, chars=None,
                  train=train, val=val)
