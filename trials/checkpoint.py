"""Lineage checkpoints: kept trunk states and in-flight branch states, written atomically and
loaded safely.

Layout of one lineage's directory::

    trunk/<step:010d>.pt  + trunk/<step:010d>.json       a trunk state after <step> updates
    branches/<name token>/state.pt + state.json          an unfinished branch's latest state

The ``.json`` sidecar (step, averager keys held, lineage, branch) is written after its ``.pt``,
each by temp file + rename, so a sidecar always names a complete checkpoint; listing reads only
sidecars and needs no torch (the planner lists checkpoints on the driver). The folder is local,
or on any pyarrow filesystem (an ``s3://`` store keeps its checkpoints beside its rows, so a
trial retried on another node finds them): there a finished upload is the atomic step (a
``move`` is copy + delete), a file is written whole to a temp name first, and readers skip
temp names.

Loading uses ``torch.load(weights_only=True)``: a checkpoint holds only tensors and plain Python
values (RNG states are tensors), so nothing in a file planted in a shared store or cache can run
code; a foreign, corrupt or other-lineage file is refused with one line naming it
(:class:`CheckpointError`). Model weights are stored as the optimizer trains them (for
schedule-free optimizers the point ``y``, in train mode), so resuming needs no mode switch and
resume is bit-exact (an ``eval()``/``train()`` round trip is not, docs/equations.md §1.4).
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


class _LocalFiles:
    """File operations on a local folder (fsync'd atomic writes)."""

    def join(self, *parts: str) -> str:
        return str(Path(*parts))

    def names(self, folder: str, suffix: str) -> list[str]:
        path = Path(folder)
        return sorted(p.name for p in path.glob(f"*{suffix}")) if path.is_dir() else []

    def folders(self, folder: str) -> list[str]:
        path = Path(folder)
        return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

    def exists(self, path: str) -> bool:
        return Path(path).is_file()

    def read(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write(self, path: str, data: bytes) -> None:
        _atomic_write(Path(path), data)

    def delete(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)

    def delete_folder(self, folder: str, *, empty_only: bool = False) -> None:
        import shutil

        if empty_only:
            try:
                Path(folder).rmdir()
            except OSError:
                pass
        else:
            shutil.rmtree(folder, ignore_errors=True)


class _ArrowFiles:
    """The same operations on a pyarrow filesystem (object stores: a finished upload is atomic)."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def join(self, *parts: str) -> str:
        return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))

    def _infos(self, folder: str) -> list[Any]:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(pafs.FileSelector(folder, recursive=False, allow_not_found=True))

    def names(self, folder: str, suffix: str) -> list[str]:
        import pyarrow.fs as pafs

        return sorted(i.base_name for i in self._infos(folder)
                      if i.type == pafs.FileType.File and i.base_name.endswith(suffix))

    def folders(self, folder: str) -> list[str]:
        import pyarrow.fs as pafs

        return sorted(i.base_name for i in self._infos(folder) if i.type == pafs.FileType.Directory)

    def exists(self, path: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(path).type == pafs.FileType.File

    def read(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as handle:
            return handle.read()

    def write(self, path: str, data: bytes) -> None:
        import uuid

        folder, _, name = path.rpartition("/")
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:12]}.tmp"
        self.fs.create_dir(folder, recursive=True)
        stream = self.fs.open_output_stream(tmp)
        stream.write(data)  # the whole file in one call: an upload cut short never completes
        stream.close()
        self.fs.move(tmp, path)

    def delete(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except (FileNotFoundError, OSError):
            pass

    def delete_folder(self, folder: str, *, empty_only: bool = False) -> None:
        if empty_only:
            return  # object stores have no empty folders to clean up
        try:
            self.fs.delete_dir(folder)
        except (FileNotFoundError, OSError):
            pass


class CheckpointStore:
    """The checkpoints of one lineage under ``directory``: a local folder, or a path in
    ``filesystem`` (a ``pyarrow.fs.FileSystem``, e.g. the results store's S3 filesystem)."""

    def __init__(self, directory: str | os.PathLike[str], lineage_id: str, *, filesystem: Any = None) -> None:
        self.directory = str(directory)
        self.lineage_id = lineage_id
        self._files: _LocalFiles | _ArrowFiles = _LocalFiles() if filesystem is None else _ArrowFiles(filesystem)
        if filesystem is not None:
            import pyarrow.fs as pafs

            if isinstance(filesystem, pafs.LocalFileSystem):
                self._files = _LocalFiles()

    # ---- listing (no torch) -------------------------------------------------------------
    def _sidecars(self, folder: str) -> list[dict[str, Any]]:
        out = []
        pts = set(self._files.names(folder, ".pt"))
        for name in self._files.names(folder, ".json"):
            if name.startswith(".") or f"{name[:-len('.json')]}.pt" not in pts:
                continue
            try:
                meta = json.loads(self._files.read(self._files.join(folder, name)))
            except (OSError, ValueError):
                continue
            if meta.get("lineage_id") == self.lineage_id:
                out.append(meta)
        return out

    def trunk_checkpoints(self) -> dict[int, frozenset[str]]:
        """Trunk step -> averager keys held, for every complete trunk checkpoint."""
        folder = self._files.join(self.directory, "trunk")
        return {int(m["step"]): frozenset(m["averagers"]) for m in self._sidecars(folder)}

    def inflight(self) -> dict[str, tuple[int, frozenset[str]]]:
        """Unfinished branch -> (step, averager keys held) of its latest checkpoint."""
        out: dict[str, tuple[int, frozenset[str]]] = {}
        root = self._files.join(self.directory, "branches")
        for folder in self._files.folders(root):
            for meta in self._sidecars(self._files.join(root, folder)):
                out[str(meta["branch"])] = (int(meta["step"]), frozenset(meta["averagers"]))
        return out

    # ---- paths --------------------------------------------------------------------------
    def trunk_path(self, step: int) -> str:
        return self._files.join(self.directory, "trunk", f"{step:010d}.pt")

    def branch_path(self, name: str) -> str:
        return self._files.join(self.directory, "branches", branch_token(name), "state.pt")

    @staticmethod
    def _sidecar(path: str) -> str:
        return path[: -len(".pt")] + ".json"

    # ---- writes -------------------------------------------------------------------------
    def _save(self, path: str, step: int, state: dict[str, Any], averagers: list[str], branch: str | None) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "lineage_id": self.lineage_id, "step": step,
                    "branch": branch, **state}, buffer)
        self._files.write(path, buffer.getvalue())
        meta = {"format": CHECKPOINT_FORMAT, "lineage_id": self.lineage_id, "step": step,
                "branch": branch, "averagers": sorted(averagers)}
        self._files.write(self._sidecar(path), json.dumps(meta).encode())

    def save_trunk(self, step: int, state: dict[str, Any], averagers: list[str]) -> None:
        self._save(self.trunk_path(step), step, state, averagers, None)

    def save_branch(self, name: str, step: int, state: dict[str, Any], averagers: list[str]) -> None:
        self._save(self.branch_path(name), step, state, averagers, name)

    def _remove(self, path: str) -> None:
        self._files.delete(self._sidecar(path))  # sidecar first: never a sidecar without data
        self._files.delete(path)

    def clear_branch(self, name: str) -> None:
        path = self.branch_path(name)
        self._remove(path)
        self._files.delete_folder(path.rpartition("/")[0], empty_only=True)

    def prune_trunk(self, keep: set[int]) -> None:
        """Delete trunk checkpoints not in ``keep``, except the latest one."""
        steps = self.trunk_checkpoints()
        latest = max(steps, default=None)
        for step in steps:
            if step not in keep and step != latest:
                self._remove(self.trunk_path(step))

    def clear(self) -> None:
        """Delete every checkpoint of the lineage (``--force`` reruns)."""
        self._files.delete_folder(self.directory)

    # ---- reads --------------------------------------------------------------------------
    def load(self, path: str | Path, *, step: int, branch: str | None) -> dict[str, Any]:
        """A checkpoint's state, loaded without executing anything; checked to be this
        lineage's state of ``branch`` after ``step`` updates."""
        import pickle

        import torch

        path = str(path)
        try:
            data = self._files.read(path)
        except (FileNotFoundError, OSError):
            raise CheckpointError(path, "the file does not exist or cannot be read") from None
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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
