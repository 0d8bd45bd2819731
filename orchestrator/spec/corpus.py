"""What a char-GPT corpus holds, read without torch: tokens, the split, the vocabulary it needs.

The spec uses it to refuse, before anything runs, what a trial would reject or never finish: a
``vocab_size`` below the corpus's characters (or token ids), a context longer than a split, and
horizons worth an absurd number of epochs. It mirrors :mod:`trials.workloads.corpus` (text:
one token per character, the held-out tail ``ceil(val_fraction · n)``; shards: uint16/uint32
ids, files named ``*val*`` are the held-out split) and reads each file once per process, shards
in chunks (a multi-GB corpus is streamed, never loaded). A prepared directory's manifest is
checked against its shards (each listed shard present, of the listed length and dtype).

The shipped Shakespeare corpus is not read: its figures are catalog constants
(:data:`trials.catalog.CHAR_VOCAB`, :data:`trials.catalog.SHIPPED_CORPUS_TOKENS`), checked
against the real loader by ``tests/trials_tests/test_catalog.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import gzip
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trials.catalog import CHAR_VOCAB, SHIPPED_CORPUS_TOKENS
from trials.shard_format import MANIFEST_NAME, SHARD_MAGIC, ShardLayout, read_manifest, shard_layout

__all__ = ["CorpusFacts", "corpus_facts"]

MAX_SCANNED_TOKENS = 1 << 28  # token ids are scanned for the vocabulary up to 256M tokens
SCAN_CHUNK = 1 << 22  # tokens per read while scanning: memory stays flat whatever the shard size


@dataclass(frozen=True)
class CorpusFacts:
    """Attributes:
        kind: ``"text"`` or ``"shards"``.
        tokens: every token of the stream (train and held-out).
        fixed_val: tokens of the ``*val*`` shards, when the corpus has its own held-out files.
        min_vocab: the vocabulary it needs (characters, or the largest token id + 1); ``None``
            when the shards are too large to scan at spec load.
        problem: why the trial's loader would refuse it (phrased to follow "must be"), if it would.
        manifest_vocab: the vocabulary size of a prepared corpus's manifest.
        content_hash: the manifest's hash of the tokens (``docs/data.md``), the sweep's record
            of which corpus it trained on; ``None`` for a corpus without a manifest.
    """

    kind: str
    tokens: int
    fixed_val: int | None = None
    min_vocab: int | None = None
    problem: str | None = None
    manifest_vocab: int | None = None
    content_hash: str | None = None

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
        if (path / MANIFEST_NAME).is_file():
            return _prepared(path)
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


def _shards(files: tuple[str, ...], manifest: dict[str, Any] | None = None) -> CorpusFacts:
    layouts = [shard_layout(f) for f in files]
    for lay in layouts:
        if lay.problem is not None:
            return CorpusFacts(kind="shards", tokens=0, problem=f"{lay.path}: {lay.problem}")
        if lay.n_tokens == 0:
            return CorpusFacts(kind="shards", tokens=0, problem=f"{lay.path}: a shard with tokens (it is empty)")
        if manifest is not None and not lay.headered:
            return CorpusFacts(kind="shards", tokens=0, problem=f"{lay.path}: a shard with the header "
                                                                f"(magic {SHARD_MAGIC}), as the manifest's shards are")
    counts = {lay.path: lay.n_tokens for lay in layouts}
    val = [f for f in files if "val" in Path(f).name]
    if val and len(val) == len(files):
        return CorpusFacts(kind="shards", tokens=0,
                           problem="shards including at least one training file (name without 'val')")
    total = sum(counts.values())
    fixed_val = sum(counts[f] for f in val) if val and len(val) < len(files) else None
    return CorpusFacts(kind="shards", tokens=total, fixed_val=fixed_val,
                       min_vocab=_max_id(tuple(layouts)) + 1 if total <= MAX_SCANNED_TOKENS else None)


def _prepared(directory: Path) -> CorpusFacts:
    """A directory ``lrsweep data prepare`` wrote: its manifest, checked against the shards."""
    try:
        manifest = read_manifest(directory)
    except ValueError as exc:
        return CorpusFacts(kind="shards", tokens=0, problem=str(exc).split(" must be ", 1)[-1])
    assert manifest is not None
    listed = [(s["file"], s["tokens"]) for split in manifest["splits"].values() for s in split["shards"]]
    for name, tokens in listed:
        path = directory / name
        if not path.is_file():
            return CorpusFacts(kind="shards", tokens=0, problem=f"{path}: an existing shard (the manifest lists it)")
        lay = shard_layout(path)
        if lay.problem is None and lay.n_tokens != tokens:
            return CorpusFacts(kind="shards", tokens=0, problem=f"{path}: a shard of the {tokens:,} tokens the "
                                                                f"manifest lists; it holds {lay.n_tokens:,}")
        if lay.problem is None and lay.dtype != VERSION_DTYPES_BY_NAME.get(manifest["dtype"]):
            return CorpusFacts(kind="shards", tokens=0, problem=f"{path}: a {manifest['dtype']} shard as the "
                                                                f"manifest says; its header says {lay.dtype}")
    facts = _shards(tuple(sorted(str(p) for p in directory.glob("*.bin"))), manifest)
    return dataclasses.replace(facts, manifest_vocab=int(manifest["vocab_size"]),
                               content_hash=str(manifest["content_hash"]))


VERSION_DTYPES_BY_NAME = {"uint16": "<u2", "uint32": "<u4"}


@functools.lru_cache(maxsize=8)
def _max_id(layouts: tuple[ShardLayout, ...]) -> int:
    """The largest token id, read in chunks of :data:`SCAN_CHUNK` tokens (never a whole file)."""
    import numpy as np

    best = 0
    for lay in layouts:
        if lay.n_tokens:
            tokens = np.memmap(lay.path, dtype=lay.dtype, mode="r", offset=lay.offset, shape=(lay.n_tokens,))
            for start in range(0, lay.n_tokens, SCAN_CHUNK):
                best = max(best, int(tokens[start:start + SCAN_CHUNK].max()))
    return best
