"""Where a results store is: its filesystem and base path (:func:`resolve_root`), and whether a
store may be made there (:func:`check_not_foreign`).

A store is made on its first write, ``_lrsweep.json`` first. An existing folder that is not
empty and holds neither that marker nor any of the store's own folders (a mistyped path, a home
folder, ``/etc``) is refused before anything is written, unless the user asked for it
(``lrsweep run --init-store-in-nonempty-dir``). One stat and one listing; writes nothing.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs

from . import _layout
from .errors import StoreError
from .schema import TABLES

__all__ = ["check_not_foreign", "resolve_root"]

# what a store holds beside its marker: the tables, checkpoints, search journals
_STORE_FOLDERS = frozenset({*TABLES, "_checkpoints", "_search"})


def check_not_foreign(fs: pafs.FileSystem, base: str, root: str, *, allow: bool = False) -> None:
    """Raise :class:`StoreError` when ``base`` (shown as ``root``) is a file, or an existing
    non-empty folder with neither ``_lrsweep.json`` nor a store folder and ``allow`` is unset."""
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        return
    if info.type != pafs.FileType.Directory:
        raise StoreError(f"results store {root!r} exists and is not a folder")
    if allow:
        return
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(base))}
    if not names or _layout.MARKER_NAME in names or names & _STORE_FOLDERS:
        return
    shown = ", ".join(sorted(names)[:3]) + (", …" if len(names) > 3 else "")
    raise StoreError(
        f"results store {root!r} is a non-empty folder that is not an lrsweep store (no "
        f"{_layout.MARKER_NAME}; it holds {shown}): give a new or empty folder, or pass "
        "--init-store-in-nonempty-dir to make it one")


def resolve_root(root: str, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and base path of a store root: a local path, or a URI without credentials."""
    if filesystem is not None:
        return filesystem, root.rstrip("/") or "/"
    if "://" in root:
        import urllib.parse

        parts = urllib.parse.urlsplit(root)
        if parts.username or parts.password:  # pyarrow would accept them, and pickle them into every job
            safe = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname or ""))
            raise StoreError(f"store URI {safe!r} must not carry credentials; set them in the environment "
                             "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the platform's role)")
        try:
            fs, path = pafs.FileSystem.from_uri(root)
        except (pa.ArrowInvalid, ValueError) as exc:
            raise StoreError(f"store root {root!r} is not a usable filesystem URI: {exc}") from None
        return fs, path.rstrip("/") or "/"
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))
