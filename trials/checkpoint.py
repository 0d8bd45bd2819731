"""Lineage checkpoints: kept trunk states and in-flight branch states, written atomically and
loaded safely.

Layout of one lineage's directory::

    trunk/<step:010d>.pt  + trunk/<step:010d>.json       a trunk state after <step> updates
    branches/<name token>/state.pt + state.json          an unfinished branch's latest state

The ``.json`` sidecar (step, averager keys held, lineage, branch) is written after its ``.pt``,
each by temp file + rename, so a sidecar always names a complete checkpoint; listing reads only
sidecars and needs no torch (the planner lists checkpoints on the driver).

Loading uses ``torch.load(weights_only=True)``: a checkpoint holds only tensors and plain Python
values (RNG states are tensors), so nothing in a file planted in a shared store or cache can run
code; a foreign, corrupt or other-lineage file is refused with one line naming it
(:class:`CheckpointError`). Model weights are stored as the optimizer trains them (for
schedule-free optimizers the point ``y``, in train mode), so resuming needs no mode switch and
resume is bit-exact (an ``eval()``/``train()`` round trip is not, ALGORITHMS-NOTES §1.4).
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from trials.errors import ConfigError

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "CheckpointStore", "branch_token"]

CHECKPOINT_FORMAT = 2
_KEEP = re.compile(r"[A-Za-z0-9.-]")


class CheckpointError(ConfigError):
    """A checkpoint file that is not a readable lrsweep checkpoint of this lineage."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        ValueError.__init__(self, f"checkpoint {self.path} cannot be used: {reason}")
        self.field, self.value, self.expected = "checkpoint", self.path, reason


def branch_token(name: str) -> str:
    """A file-name-safe, reversible token for a branch name (``h=800/1-sqrt@640``)."""
    return "".join(ch if _KEEP.fullmatch(ch) else f"_{ord(ch):02X}" for ch in name)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CheckpointStore:
    """The checkpoints of one lineage under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], lineage_id: str) -> None:
        self.directory = Path(directory)
        self.lineage_id = lineage_id

    # ---- listing (no torch) -------------------------------------------------------------
    def _sidecars(self, folder: Path) -> list[dict[str, Any]]:
        out = []
        for side in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                meta = json.loads(side.read_text())
            except (OSError, ValueError):
                continue
            if meta.get("lineage_id") == self.lineage_id and side.with_suffix(".pt").is_file():
                out.append(meta)
        return out

    def trunk_checkpoints(self) -> dict[int, frozenset[str]]:
        """Trunk step -> averager keys held, for every complete trunk checkpoint."""
        return {int(m["step"]): frozenset(m["averagers"]) for m in self._sidecars(self.directory / "trunk")}

    def inflight(self) -> dict[str, tuple[int, frozenset[str]]]:
        """Unfinished branch -> (step, averager keys held) of its latest checkpoint."""
        out: dict[str, tuple[int, frozenset[str]]] = {}
        root = self.directory / "branches"
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            for meta in self._sidecars(folder):
                out[str(meta["branch"])] = (int(meta["step"]), frozenset(meta["averagers"]))
        return out

    # ---- paths --------------------------------------------------------------------------
    def trunk_path(self, step: int) -> Path:
        return self.directory / "trunk" / f"{step:010d}.pt"

    def branch_path(self, name: str) -> Path:
        return self.directory / "branches" / branch_token(name) / "state.pt"

    # ---- writes -------------------------------------------------------------------------
    def _save(self, path: Path, step: int, state: dict[str, Any], averagers: list[str], branch: str | None) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "lineage_id": self.lineage_id, "step": step,
                    "branch": branch, **state}, buffer)
        _atomic_write(path, buffer.getvalue())
        meta = {"format": CHECKPOINT_FORMAT, "lineage_id": self.lineage_id, "step": step,
                "branch": branch, "averagers": sorted(averagers)}
        _atomic_write(path.with_suffix(".json"), json.dumps(meta).encode())

    def save_trunk(self, step: int, state: dict[str, Any], averagers: list[str]) -> None:
        self._save(self.trunk_path(step), step, state, averagers, None)

    def save_branch(self, name: str, step: int, state: dict[str, Any], averagers: list[str]) -> None:
        self._save(self.branch_path(name), step, state, averagers, name)

    def _remove(self, path: Path) -> None:
        for p in (path.with_suffix(".json"), path):  # sidecar first: never a sidecar without data
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def clear_branch(self, name: str) -> None:
        path = self.branch_path(name)
        self._remove(path)
        try:
            path.parent.rmdir()
        except OSError:
            pass

    def prune_trunk(self, keep: set[int]) -> None:
        """Delete trunk checkpoints not in ``keep``, except the latest one."""
        steps = self.trunk_checkpoints()
        latest = max(steps, default=None)
        for step in steps:
            if step not in keep and step != latest:
                self._remove(self.trunk_path(step))

    def clear(self) -> None:
        """Delete every checkpoint of the lineage (``--force`` reruns)."""
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)

    # ---- reads --------------------------------------------------------------------------
    def load(self, path: Path, *, step: int, branch: str | None) -> dict[str, Any]:
        """A checkpoint's state, loaded without executing anything; checked to be this
        lineage's state of ``branch`` after ``step`` updates."""
        import pickle

        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise CheckpointError(path, "the file does not exist") from None
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
                ImportError, IndexError, KeyError, OSError) as exc:
            reason = " ".join(str(exc).split())[:160]
            raise CheckpointError(path, f"not a safe lrsweep checkpoint ({type(exc).__name__}: {reason})") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(path, f"not an lrsweep checkpoint of format {CHECKPOINT_FORMAT}")
        if state.get("lineage_id") != self.lineage_id:
            raise CheckpointError(path, f"it belongs to lineage {state.get('lineage_id')!r}, not {self.lineage_id!r}")
        if state.get("step") != step or state.get("branch") != branch:
            raise CheckpointError(path, f"it holds {state.get('branch') or 'trunk'} step {state.get('step')!r}, "
                                        f"expected {branch or 'trunk'} step {step}")
        return state

    def load_trunk(self, step: int) -> dict[str, Any]:
        return self.load(self.trunk_path(step), step=step, branch=None)

    def load_branch(self, name: str, step: int) -> dict[str, Any]:
        return self.load(self.branch_path(name), step=step, branch=name)
