"""``lrsweep report`` and ``run --report``: where a report may be written, and what the command
prints. ``-o PATH`` never replaces a file lrsweep did not write: every page lrsweep writes
carries a marker in its head (:data:`analysis._html.GENERATOR_META`); an existing file without
it is refused unless ``--force``. The answer is printed as the answer (``answer (SWEEP):`` and
indented sentences), the warnings after it (docs/report.md)."""

from __future__ import annotations

import os
from pathlib import Path

from analysis._html import GENERATOR_META

__all__ = ["check_output", "print_answer", "report_command", "report_one", "written_by_lrsweep"]

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


def print_answer(sweep_id: str, answer: list[str], warnings: list[str]) -> None:
    """The answer under its own heading, then the warnings (grid edges, one seed, budgets)."""
    if answer:
        print(f"answer ({sweep_id}):")
        for line in answer:
            print(f"  {line}")
    for line in warnings:
        print(f"warning: {sweep_id}: {line}")


def report_one(store: str, sweep_id: str, out: str, *, force: bool = False) -> None:
    """Write one sweep's report; print its path, its answer, then its warnings."""
    from orchestrator.reporting import report_sweep

    check_output(out, force=force)
    path, answer, warnings = report_sweep(store, sweep_id, out)
    print(f"report: {path}")
    print_answer(sweep_id, answer, warnings)


def report_command(store: str, sweeps: list[str], out: str, *, force: bool = False) -> int:
    """``lrsweep report``: one sweep's report, or several side by side, then each answer."""
    from orchestrator.reporting import report_answer, write_comparison

    if len(sweeps) == 1:
        report_one(store, sweeps[0], out, force=force)
        return 0
    check_output(out, force=force)
    print(f"report: {write_comparison(store, sweeps, out)} ({len(sweeps)} sweeps side by side)")
    for sweep in sweeps:
        print_answer(sweep, *report_answer(store, sweep))
    return 0
