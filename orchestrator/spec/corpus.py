"""What a char-GPT corpus holds, read without torch: tokens, the split, the vocabulary it needs.

The spec uses it to refuse, before anything runs, what a trial would reject or never finish: a
``vocab_size`` below the corpus's characters (or token ids), a context longer than a split, and
horizons worth an absurd number of epochs. It mirrors :mod:`trials.workloads.corpus` (text:
one token per character, the held-out tail ``ceil(val_fraction · n)``; shards: uint16 ids,
files named ``*val*`` are the held-out split) and reads each file once per process.

The shipped Shakespeare corpus is not read: its figures are catalog constants
(:data:`trials.catalog.CHAR_VOCAB`, :data:`trials.catalog.SHIPPED_CORPUS_TOKENS`), checked
against the real loader by ``tests/trials_tests/test_catalog.py``.
"""

from __future__ import annotations

import functools
import glob
import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from trials.catalog import CHAR_VOCAB, SHIPPED_CORPUS_TOKENS

__all__ = ["CorpusFacts", "corpus_facts"]

SHARD_MAGIC, SHARD_VERSION, HEADER_INTS = 20240520, 1, 256  # trials.workloads.shards
MAX_SCANNED_TOKENS = 1 << 28  # token ids are scanned for the vocabulary up to 256M tokens (0.5 GB)


@dataclass(frozen=True)
class CorpusFacts:
    """Attributes:
        kind: ``"text"`` or ``"shards"``.
        tokens: every token of the stream (train and held-out).
        fixed_val: tokens of the ``*val*`` shards, when the corpus has its own held-out files.
        min_vocab: the vocabulary it needs (characters, or the largest token id + 1); ``None``
            when the shards are too large to scan at spec load.
        problem: why the trial's loader would refuse it (phrased to follow "must be"), if it would.
    """

    kind: str
    tokens: int
    fixed_val: int | None = None
    min_vocab: int | None = None
    problem: str | None = None

    def val_tokens(self, val_fraction: float) -> int:
        if self.fixed_val is not None:
            return self.fixed_val
        return math.ceil(val_fraction * self.tokens)

    def train_tokens(self, val_fraction: float) -> int:
        if self.fixed_val is not None:
            return self.tokens - self.fixed_val
        return self.tokens - self.val_tokens(val_fraction)


SHIPPED = CorpusFacts(kind="text", tokens=SHIPPED_CORPUS_TOKENS, min_vocab=CHAR_VOCAB)


def corpus_facts(corpus: str | None) -> CorpusFacts:
    """Facts of a resolved corpus path (``None``: the shipped one)."""
    if corpus is None:
        return SHIPPED
    path = Path(corpus)
    if glob.has_magic(corpus):
        return _shards(tuple(sorted(p for p in glob.glob(corpus) if p.endswith(".bin"))))
    if path.is_dir():
        return _shards(tuple(sorted(str(p) for p in path.glob("*.bin"))))
    if path.suffix == ".bin":
        return _shards((str(path),))
    stat = path.stat()
    return _text(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _text(path: str, size: int, mtime_ns: int) -> CorpusFacts:
    blob = Path(path).read_bytes()
    if path.endswith(".gz"):
        try:
            blob = gzip.decompress(blob)
        except (OSError, EOFError):
            return CorpusFacts(kind="text", tokens=0, problem="a readable gzip file")
    if blob.isascii():
        return CorpusFacts(kind="text", tokens=len(blob), min_vocab=sum(bytes([b]) in blob for b in range(128)))
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return CorpusFacts(kind="text", tokens=0, problem="UTF-8 text (or .bin token shards)")
    return CorpusFacts(kind="text", tokens=len(text), min_vocab=len(set(text)))


def _shard_tokens(path: str) -> int:
    size = os.path.getsize(path)
    if size >= 4 * HEADER_INTS:
        with open(path, "rb") as f:
            magic, version, n = struct.unpack("<3i", f.read(12))
        if magic == SHARD_MAGIC and version == SHARD_VERSION and size == 4 * HEADER_INTS + 2 * n:
            return n
    return size // 2


def _shards(files: tuple[str, ...]) -> CorpusFacts:
    counts = {f: _shard_tokens(f) for f in files}
    val = [f for f in files if "val" in Path(f).name]
    if val and len(val) == len(files):
        return CorpusFacts(kind="shards", tokens=0,
                           problem="shards including at least one training file (name without 'val')")
    total = sum(counts.values())
    fixed_val = sum(counts[f] for f in val) if val and len(val) < len(files) else None
    return CorpusFacts(kind="shards", tokens=total, fixed_val=fixed_val,
                       min_vocab=_max_id(files) + 1 if 0 < total <= MAX_SCANNED_TOKENS else None)


@functools.lru_cache(maxsize=8)
def _max_id(files: tuple[str, ...]) -> int:
    import numpy as np

    best = 0
    for f in files:
        n = _shard_tokens(f)
        if n:
            offset = os.path.getsize(f) - 2 * n  # past the header, if there is one
            best = max(best, int(np.memmap(f, dtype="<u2", mode="r", offset=offset, shape=(n,)).max()))
    return best
