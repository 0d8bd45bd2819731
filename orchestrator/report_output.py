"""Where a report may be written: ``report -o PATH`` (and ``run --report PATH``) never replace a
file lrsweep did not write. Every page lrsweep writes carries a marker in its head
(:data:`analysis._html.GENERATOR_META`); an existing file without it is refused unless
``--force`` (docs/report.md)."""

from __future__ import annotations

import os
from pathlib import Path

from analysis._html import GENERATOR_META

__all__ = ["check_output", "written_by_lrsweep"]

_HEAD_BYTES = 4096  # the marker sits right after <meta charset>, long before plotly.js


def written_by_lrsweep(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a page lrsweep wrote (its head holds the generator marker)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return False
    return GENERATOR_META.encode() in head


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Raise a one-line :class:`~trials.errors.ConfigError` when ``path`` exists, is not a
    report lrsweep wrote and ``force`` is false; a directory is refused always."""
    from trials.errors import ConfigError

    p = Path(path)
    if p.is_dir():
        raise ConfigError("-o/--output", str(path), "a file path, not a directory")
    if p.exists() and not force and not written_by_lrsweep(p):
        raise ConfigError(
            "-o/--output", str(path),
            "a new file or a report lrsweep wrote; this file was not written by lrsweep "
            "(pass --force to overwrite it)",
        )  # fmt: skip
