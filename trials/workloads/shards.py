"""Token shards: the ``.bin`` files nanoGPT and modded-nanogpt write (uint16 token ids).

Two layouts are read, told apart by the first int32 of the file:

- **modded-nanogpt / llm.c**: a header of 256 int32 (``[0] = 20240520`` magic, ``[1] = 1``
  version, ``[2]`` = number of tokens), then the tokens as little-endian uint16. The file size
  must equal ``1024 + 2 * n_tokens``.
- **nanoGPT** (``data/*/prepare.py``): a raw headerless uint16 array (``train.bin``, ``val.bin``).

A raw file whose first two tokens happen to spell the magic (ids 0x4D48 = 19784 then 0x0135 = 309)
would be misread as headered; the size check then rejects it unless it is consistent.
Tokens are memory-mapped, never read whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trials.errors import ConfigError

__all__ = ["SHARD_MAGIC", "SHARD_VERSION", "HEADER_INTS", "read_shard", "write_shard"]

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256


def read_shard(path: str | os.PathLike[str]) -> np.ndarray:
    """Memory-map the tokens of one shard as a read-only uint16 array (either layout)."""
    path = Path(path)
    size = path.stat().st_size
    if size >= 4 * HEADER_INTS:
        header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
        if header[0] == SHARD_MAGIC:
            if header[1] != SHARD_VERSION:
                raise ConfigError("workload.corpus", str(path), f"a shard of version {SHARD_VERSION}, header says {int(header[1])}")
            n = int(header[2])
            if size != 4 * HEADER_INTS + 2 * n:
                raise ConfigError("workload.corpus", str(path),
                                  f"a shard of {4 * HEADER_INTS + 2 * n} bytes as its header's {n} tokens imply, file has {size}")
            if n == 0:
                return np.zeros(0, dtype=np.uint16)
            return np.memmap(path, dtype="<u2", mode="r", offset=4 * HEADER_INTS, shape=(n,))
    if size % 2:
        raise ConfigError("workload.corpus", str(path), "a uint16 token shard (even byte count)")
    if size == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r")


def write_shard(path: str | os.PathLike[str], tokens: np.ndarray, *, header: bool = True) -> None:
    """Write token ids (all < 65536) as a shard: with the modded-nanogpt header, or raw."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise ConfigError("tokens", f"range [{tokens.min()}, {tokens.max()}]", "token ids in [0, 65535]")
    with open(path, "wb") as f:
        if header:
            head = np.zeros(HEADER_INTS, dtype="<i4")
            head[:3] = (SHARD_MAGIC, SHARD_VERSION, tokens.size)
            f.write(head.tobytes())
        f.write(tokens.astype("<u2").tobytes())
