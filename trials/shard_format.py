"""The token-shard format and its manifest, read without torch (``docs/data.md``).

A shard is a ``.bin`` file in the layout modded-nanogpt and llm.c use: 256 little-endian int32
(``[0]`` magic 20240520, ``[1]`` version, ``[2]`` token count, the rest zero), then the tokens.
Version 1 stores them as uint16 (vocabularies up to 65,536), version 2 as uint32 (larger ones,
this project's extension). A file without the magic is a raw nanoGPT ``train.bin``/``val.bin``:
headerless uint16. ``lrsweep data prepare`` writes headered shards and a ``manifest.json`` beside
them; shards from elsewhere need no manifest.

Both the trial's loader (:mod:`trials.workloads.shards`) and the sweep-file checks
(:mod:`orchestrator.spec.corpus`) read headers through :func:`shard_layout`, so they agree on
what a file holds; a file the loader would refuse gives a ``problem`` here, phrased to follow
"must be".
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "HEADER_BYTES",
    "HEADER_INTS",
    "MANIFEST_NAME",
    "SHARD_MAGIC",
    "VERSION_DTYPES",
    "ShardLayout",
    "read_manifest",
    "shard_layout",
]

SHARD_MAGIC = 20240520
HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
VERSION_DTYPES: dict[int, str] = {1: "<u2", 2: "<u4"}  # header version -> token dtype
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "lrsweep-token-shards"


@dataclass(frozen=True)
class ShardLayout:
    """Where the tokens of one shard lie.

    Attributes:
        path: the file.
        dtype: numpy dtype string of the tokens (``"<u2"`` or ``"<u4"``).
        offset: bytes before the first token (1024 headered, 0 raw).
        n_tokens: tokens the file holds.
        headered: whether it carries the magic header.
        problem: why it cannot be read (phrased to follow "must be"), else ``None``.
    """

    path: str
    dtype: str
    offset: int
    n_tokens: int
    headered: bool
    problem: str | None = None


def shard_layout(path: str | os.PathLike[str]) -> ShardLayout:
    """The layout of one shard, from its header and size alone (never its tokens)."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        return ShardLayout(path, "<u2", 0, 0, False, "an existing readable shard file")
    if size >= 12:
        with open(path, "rb") as f:
            magic, version, claimed = struct.unpack("<3i", f.read(12))
        if magic == SHARD_MAGIC:
            if version not in VERSION_DTYPES:
                return ShardLayout(path, "<u2", HEADER_BYTES, 0, True,
                                   f"a shard of header version 1 (uint16) or 2 (uint32), its header says {version}")
            itemsize = int(VERSION_DTYPES[version][-1])
            if size < HEADER_BYTES or claimed < 0 or size != HEADER_BYTES + itemsize * claimed:
                held = max(size - HEADER_BYTES, 0) // itemsize
                return ShardLayout(path, VERSION_DTYPES[version], HEADER_BYTES, 0, True,
                                   f"a shard holding the {claimed:,} tokens its header claims "
                                   f"({HEADER_BYTES + itemsize * claimed:,} bytes); the file has {size:,} bytes "
                                   f"({held:,} tokens)")
            return ShardLayout(path, VERSION_DTYPES[version], HEADER_BYTES, claimed, True)
    if size % 2:
        return ShardLayout(path, "<u2", 0, 0, False,
                           "a token shard: headered (magic 20240520) or raw uint16 (an even byte count)")
    return ShardLayout(path, "<u2", 0, size // 2, False)


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a prepared corpus directory, ``None`` when it has none.

    Raises:
        ValueError: the manifest exists but is not one ``lrsweep data prepare`` writes (the
            message says what is wrong).
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} must be a readable JSON manifest ({type(exc).__name__})") from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} must be a manifest of format {MANIFEST_FORMAT!r}")
    for key, kind in (("vocab_size", int), ("content_hash", str), ("dtype", str), ("splits", dict)):
        if not isinstance(data.get(key), kind):
            raise ValueError(f"{path} must have {key!r} ({kind.__name__})")
    for split, entry in data["splits"].items():
        shards = entry.get("shards") if isinstance(entry, dict) else None
        if not isinstance(shards, list) or not all(
                isinstance(s, dict) and isinstance(s.get("file"), str) and isinstance(s.get("tokens"), int)
                for s in shards):
            raise ValueError(f"{path} must list split {split!r}'s shards as {{file, tokens}}")
    return data
