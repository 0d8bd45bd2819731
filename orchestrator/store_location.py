"""Where a sweep's results store is: the same answer for ``plan``, ``run``, ``submit`` and the
commands that read a store (``status``, ``query``, ``report``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_STORE", "default_store", "resolve_store"]


def _absolute(root: str) -> str:
    if "://" in root:
        return root
    return str(Path(root).expanduser().resolve())


DEFAULT_STORE = "./lrsweep-results"


def default_store() -> str:
    """The store of a command given none: ``LRSWEEP_STORE``, else ``./lrsweep-results``."""
    return os.environ.get("LRSWEEP_STORE") or DEFAULT_STORE


def resolve_store(spec: Any, spec_path: str | os.PathLike[str], override: str | None = None) -> str:
    """Where a sweep's results go, the same for ``plan``, ``run`` and ``submit``: a URI as it is;
    a relative ``store`` written in the spec relative to the spec file's folder (on whichever
    machine runs the driver); a ``--store`` given on the command line, or the default when the
    spec sets none (:func:`default_store`, as ``status``/``query``/``report`` use), relative to
    the current folder."""
    if override:
        return _absolute(str(override))
    if "store" not in spec.model_fields_set:
        return _absolute(default_store())
    root = str(spec.store)
    if "://" in root or Path(root).expanduser().is_absolute():
        return _absolute(root)
    return str((Path(spec_path).resolve().parent / root).resolve())
