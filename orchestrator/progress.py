"""Live progress of a sweep: per running lineage its branch, step, tokens, latest loss, tokens/s
and MFU (``n/a`` on CPU; both over the trial's last report interval, evaluation included — the
store's ``runs`` columns time the updates alone, ``trials/throughput.py``); totals that count
running trials; an ETA from the measured throughput.

Two modes, chosen by whether the console is a terminal:
- a terminal gets a rich live table (a summary row and one row per running lineage);
- anything else (a SLURM log, a CI job, ``| tee``) gets one plain line every ``interval``
  seconds (``LRSWEEP_PROGRESS_INTERVAL``, default 30) and a last one when the sweep ends, e.g.
  ``lrsweep: 3/10 lineages done, 2 running, 1.2M/6.7M tokens (18%), 21.3k tokens/s, ETA 4m18s``.

Tokens are those the plan trains now (replays included); the ETA is the tokens still to train
over the rate measured since the first trial reported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

__all__ = ["SweepProgress", "format_duration"]

_STATES = ("pending", "running", "completed", "diverged", "failed")


def format_duration(seconds: float) -> str:
    """``75 -> "1m15s"``, ``3725 -> "1h02m"``, ``nan -> "-"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _count(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def _mfu(lin: _Lineage) -> str:
    if not math.isfinite(lin.tokens_per_s):
        return "-"
    return "n/a" if lin.mfu is None else f"{100 * lin.mfu:.1f}%"


def _speed(lin: _Lineage) -> str:
    """`` 1.2k tokens/s MFU n/a`` once the lineage reported a rate, else nothing."""
    if not math.isfinite(lin.tokens_per_s):
        return ""
    return f" {_count(lin.tokens_per_s)} tokens/s MFU {_mfu(lin)}"


@dataclass
class _Lineage:
    label: str
    planned_tokens: int
    state: str = "pending"
    tokens: int = 0
    branch: str = ""
    step: int = 0
    end: int = 0
    loss: float = math.nan
    tokens_per_s: float = math.nan
    mfu: float | None = None


class SweepProgress:
    """Counts lineages by state and tokens by lineage; renders a table or periodic lines.

    Args:
        lineages: ``(lineage id, tokens this run trains for it, label)`` triples.
        console: where to render (default: stderr).
        enabled: ``False`` shows nothing (``--quiet``).
        live: force the terminal (``True``) or line (``False``) mode; default: the console's.
        interval: seconds between lines in line mode.
        clock: a monotonic clock (tests pass a fake one).
    """

    def __init__(self, lineages: list[tuple[str, int, str]], *, console: Console | None = None,
                 enabled: bool = True, live: bool | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lineages = {lid: _Lineage(label=label, planned_tokens=int(t)) for lid, t, label in lineages}
        self.total_tokens = sum(lin.planned_tokens for lin in self.lineages.values())
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.live_mode = self.console.is_terminal if live is None else live
        self.interval = float(interval if interval is not None else os.environ.get("LRSWEEP_PROGRESS_INTERVAL", 30))
        self.clock = clock
        self.began = clock()
        self.first_report: float | None = None
        self._last_line = self.began
        self._printed: str | None = None  # the last line printed in line mode
        self._live: Live | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> SweepProgress:
        if self.enabled and self.live_mode:
            self._live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self.console.line()
        elif self.enabled and self.line() != self._printed:  # the closing line, unless just printed
            self._print_line()

    # ---- updates ------------------------------------------------------------------------
    def update(self, lineage_id: str, *, state: str | None = None, tokens: int | None = None,
               branch: str | None = None, step: int | None = None, end: int | None = None,
               loss: float | None = None, tokens_per_s: float | None = None, mfu: float | None = None) -> None:
        lin = self.lineages.get(lineage_id)
        if lin is None:
            return
        if state is not None:
            lin.state = state
        if tokens is not None:
            lin.tokens = min(int(tokens), lin.planned_tokens)
            if self.first_report is None and tokens > 0:
                self.first_report = self.clock()
        if state in ("completed", "diverged"):
            lin.tokens = lin.planned_tokens
        for name, value in (("branch", branch), ("step", step), ("end", end), ("loss", loss),
                            ("tokens_per_s", tokens_per_s)):
            if value is not None:
                setattr(lin, name, value)
        if tokens_per_s is not None:  # a report without an MFU is a device without a peak: n/a
            lin.mfu = mfu
        self._refresh()

    def _refresh(self) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self.render())
        elif self.clock() - self._last_line >= self.interval:
            self._last_line = self.clock()
            self._print_line()

    def _print_line(self) -> None:
        self._printed = self.line()
        self.console.print(self._printed, highlight=False, soft_wrap=True)

    # ---- numbers ------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(_STATES, 0)
        for lin in self.lineages.values():
            out[lin.state] = out.get(lin.state, 0) + 1
        return out

    @property
    def tokens_done(self) -> int:
        return sum(lin.tokens for lin in self.lineages.values())

    def rate(self) -> float:
        """Tokens per second since the first trial reported (nan before)."""
        if self.first_report is None:
            return math.nan
        elapsed = self.clock() - self.first_report
        return self.tokens_done / elapsed if elapsed > 0 else math.nan

    def eta(self) -> float:
        rate = self.rate()
        return (self.total_tokens - self.tokens_done) / rate if rate and rate > 0 else math.nan

    # ---- views --------------------------------------------------------------------------
    def line(self) -> str:
        c = self.counts()
        done = c["completed"] + c["diverged"]
        pct = 100.0 * self.tokens_done / self.total_tokens if self.total_tokens else 100.0
        parts = [f"{done}/{len(self.lineages)} lineages done", f"{c['running']} running"]
        if c["failed"]:
            parts.append(f"{c['failed']} failed")
        if c["diverged"]:
            parts.append(f"{c['diverged']} diverged")
        rate = self.rate()
        parts += [f"{_count(self.tokens_done)}/{_count(self.total_tokens)} tokens ({pct:.0f}%)",
                  f"{_count(rate)} tokens/s" if math.isfinite(rate) else "- tokens/s",
                  f"elapsed {format_duration(self.clock() - self.began)}", f"ETA {format_duration(self.eta())}"]
        running = [f"{lid[:8]} {lin.branch}@{lin.step}/{lin.end} loss {lin.loss:.4g}{_speed(lin)}"
                   for lid, lin in self.lineages.items() if lin.state == "running" and lin.end]
        return "lrsweep: " + ", ".join(parts) + ("; " + "; ".join(running) if running else "")

    def render(self) -> Group:
        c = self.counts()
        summary = Table(title="lrsweep", show_header=True, header_style="bold")
        for col in ("lineages", "running", "done", "diverged", "failed", "tokens", "tokens/s", "elapsed", "ETA"):
            summary.add_column(col, justify="right")
        rate = self.rate()
        summary.add_row(
            str(len(self.lineages)), str(c["running"]), str(c["completed"]), str(c["diverged"]), str(c["failed"]),
            f"{self.tokens_done:,}/{self.total_tokens:,}", _count(rate) if math.isfinite(rate) else "-",
            format_duration(self.clock() - self.began), format_duration(self.eta()),
        )
        running = [(lid, lin) for lid, lin in self.lineages.items() if lin.state == "running"]
        if not running:
            return Group(summary)
        detail = Table(show_header=True, header_style="bold", box=None)
        for col, justify in (("lineage", "left"), ("setting", "left"), ("branch", "left"), ("step", "right"),
                             ("tokens", "right"), ("loss", "right"), ("tokens/s", "right"), ("MFU", "right")):
            detail.add_column(col, justify=justify)  # type: ignore[arg-type]
        for lid, lin in running:
            detail.add_row(lid[:12], lin.label, lin.branch or "-", f"{lin.step}/{lin.end}" if lin.end else "-",
                           f"{lin.tokens:,}/{lin.planned_tokens:,}",
                           f"{lin.loss:.4f}" if math.isfinite(lin.loss) else "-",
                           _count(lin.tokens_per_s) if math.isfinite(lin.tokens_per_s) else "-", _mfu(lin))
        return Group(summary, detail)
