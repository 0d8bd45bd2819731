"""Token shards: the ``.bin`` files nanoGPT and modded-nanogpt write, and ``lrsweep data prepare``.

Two layouts are read, told apart by the first int32 of the file (:mod:`trials.shard_format`):

- **modded-nanogpt / llm.c**: a header of 256 int32 (``[0] = 20240520`` magic, ``[1]`` version,
  ``[2]`` = number of tokens), then the tokens: version 1 uint16, version 2 uint32 (for
  vocabularies over 65,536). The file size must equal ``1024 + itemsize * n_tokens``.
- **nanoGPT** (``data/*/prepare.py``): a raw headerless uint16 array (``train.bin``, ``val.bin``).

A raw file whose first two tokens happen to spell the magic (ids 0x4D48 = 19784 then 0x0135 = 309)
would be misread as headered; the size check then rejects it unless it is consistent.
Tokens are memory-mapped, never read whole.
"""

from __future__ import annotations

import os

import numpy as np

from trials.errors import ConfigError
from trials.shard_format import HEADER_INTS, SHARD_MAGIC, shard_layout

__all__ = ["SHARD_MAGIC", "SHARD_VERSION", "HEADER_INTS", "read_shard", "write_shard"]

SHARD_VERSION = 1  # uint16; 2 is uint32


def read_shard(path: str | os.PathLike[str]) -> np.ndarray:
    """Memory-map the tokens of one shard as a read-only uint16 or uint32 array (either layout)."""
    layout = shard_layout(path)
    if layout.problem is not None:
        raise ConfigError("workload.corpus", os.fspath(path), layout.problem)
    if layout.n_tokens == 0:
        return np.zeros(0, dtype=layout.dtype)
    return np.memmap(path, dtype=layout.dtype, mode="r", offset=layout.offset, shape=(layout.n_tokens,))


def write_shard(path: str | os.PathLike[str], tokens: np.ndarray, *, header: bool = True,
                uint32: bool | None = None) -> None:
    """Write token ids as a shard: with the modded-nanogpt header, or raw uint16.

    ``uint32`` (default: only when an id exceeds 65,535) writes version 2, uint32 tokens.
    """
    tokens = np.asarray(tokens)
    top = int(tokens.max()) if tokens.size else 0
    if tokens.size and (tokens.min() < 0 or top >= 2**32):
        raise ConfigError("tokens", f"range [{tokens.min()}, {top}]", "token ids in [0, 2^32)")
    wide = top >= 2**16 if uint32 is None else uint32
    if wide and (not header or top >= 2**32):
        raise ConfigError("tokens", top, "token ids below 65536 in a raw (headerless) shard")
    if not wide and top >= 2**16:
        raise ConfigError("tokens", top, "token ids below 65536 in a uint16 shard")
    with open(path, "wb") as f:
        if header:
            head = np.zeros(HEADER_INTS, dtype="<i4")
            head[:3] = (SHARD_MAGIC, 2 if wide else SHARD_VERSION, tokens.size)
            f.write(head.tobytes())
        f.write(tokens.astype("<u4" if wide else "<u2").tobytes())
