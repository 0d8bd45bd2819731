"""Lineage checkpoints: one file, written atomically (temp file + rename).

What a checkpoint holds is decided by :mod:`trials.lineage`; this module only moves bytes.
Model weights are stored as the optimizer trains them (for schedule-free optimizers: the
training point ``y`` with the optimizer in train mode), so resuming needs no mode switch and
resume is bit-exact (an ``eval()``/``train()`` round trip is not, ALGORITHMS-NOTES §1.4).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch

__all__ = ["Checkpointer", "FileCheckpointer", "NullCheckpointer"]


class Checkpointer(Protocol):
    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...


class NullCheckpointer:
    """Keeps nothing: a lineage run without resume."""

    def save(self, state: dict[str, Any]) -> None:
        return None

    def load(self) -> dict[str, Any] | None:
        return None


class FileCheckpointer:
    """Saves to ``<directory>/checkpoint.pt``; a crash mid-write leaves the previous file intact."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "checkpoint.pt"

    def save(self, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(buffer.getbuffer())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def clear(self) -> None:
        if self.path.exists():
            self.path.unlink()
