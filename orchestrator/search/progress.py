"""Live progress of a sweep's search phase: waves, trials, the best objective so far, tokens, ETA.

The grid's display (:mod:`orchestrator.progress`) counts lineages planned in advance; a search
does not know its work in advance (successive halving stops most settings early), so this view
counts *trials* against the budget (``n_trials`` per study) and estimates what is left from what
finished trials cost:

- a terminal gets a rich live table (one row per study, a total row when there are several, and
  one row per job in flight: trial, rung, its searched values, tokens so far);
- anything else gets one plain line every ``interval`` seconds (``LRSWEEP_PROGRESS_INTERVAL``)
  and a last one when the search ends, e.g.
  ``lrsweep search: wave 3, 6/24 trials asked, 2 running, 3 complete, 1 stopped, best 0.0123,
  45.1k tokens, 6.2k tokens/s, elapsed 30s, ETA 1m10s``.

ETA: per study, (trials not finished) × (mean tokens of its finished trials, or before any
finished the tokens of one trial's full plan, an upper bound) less the tokens its unfinished
trials already trained, over the tokens/s measured since the search's first job reported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from orchestrator.progress import _count, format_duration

__all__ = ["SearchProgress", "StudyCounts", "study_counts"]


def _value(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.4g}"


@dataclass
class StudyCounts:
    """Where one study stands (the searcher sends a fresh copy after every event)."""

    budget: int
    wave: int = -1
    asked: int = 0
    running: int = 0
    complete: int = 0
    stopped: int = 0
    failed: int = 0
    best: float | None = None
    tokens_finished: int = 0  # every finished trial's tokens, earlier runs included (for the ETA)
    tokens_unfinished: int = 0  # what the trials not yet finished trained so far
    full_trial_tokens: int = 0  # one trial's full plan (the estimate before any trial finished)
    jobs: dict[int, tuple[int, str, int]] = field(default_factory=dict)  # trial -> (rung, params, tokens so far)

    @property
    def finished(self) -> int:
        return self.complete + self.stopped + self.failed

    def tokens_left(self) -> float:
        n = self.finished
        per_trial = self.tokens_finished / n if n else float(self.full_trial_tokens)
        return max(0.0, (self.budget - n) * per_trial - self.tokens_unfinished)


def study_counts(searcher: Any) -> StudyCounts:
    """Where a :class:`~orchestrator.search.searcher.StudySearcher`'s study stands now."""
    from optuna.trial import TrialState

    from orchestrator.search.frames import best_trial
    from orchestrator.search.searcher import INTERRUPTED, TOKENS, WAVE

    c = StudyCounts(budget=searcher.budget, wave=searcher.wave, full_trial_tokens=searcher.full_tokens)
    for t in searcher.study.get_trials(deepcopy=False):
        if t.user_attrs.get(INTERRUPTED) or WAVE not in t.user_attrs:
            continue
        c.asked += 1
        tokens = int(t.user_attrs.get(TOKENS, 0))
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            c.tokens_finished += tokens
            c.complete += t.state == TrialState.COMPLETE
            c.stopped += t.state == TrialState.PRUNED
            c.failed += t.state == TrialState.FAIL
        else:
            c.tokens_unfinished += tokens
    found = best_trial(searcher.study, searcher.search.objective)
    c.best = found[1] if found is not None else None
    for a in searcher.active.values():
        if a.running:
            c.running += 1
            values = ", ".join(f"{k.rsplit('.', 1)[-1]}={v:.3g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
                               for k, v in a.params.items())
            c.jobs[a.number] = (searcher._next_rung(a), values, 0)  # noqa: SLF001
    return c


class SearchProgress:
    """Counts per study, tokens trained this run, a table or periodic lines (module docstring).

    Args:
        budgets: study label (``""`` for a sweep's single study) -> trials it may ask.
        console, enabled, live, interval, clock: as :class:`orchestrator.progress.SweepProgress`.
    """

    def __init__(self, budgets: dict[str, int], *, console: Console | None = None, enabled: bool = True,
                 live: bool | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.studies = {label: StudyCounts(budget=n) for label, n in budgets.items()}
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.live_mode = self.console.is_terminal if live is None else live
        self.interval = float(interval if interval is not None else os.environ.get("LRSWEEP_PROGRESS_INTERVAL", 30))
        self.clock = clock
        self.began = clock()
        self.first_report: float | None = None
        self.tokens = 0  # trained this run (finished jobs and jobs in flight)
        self._job_tokens: dict[tuple[str, int], int] = {}  # in-flight job -> tokens so far
        self._last_line = self.began
        self._printed: str | None = None
        self._live: Live | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> SearchProgress:
        if self.enabled and self.live_mode:
            self._live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self.console.line()
        elif self.enabled and self.line() != self._printed:
            self._print_line()

    # ---- updates ------------------------------------------------------------------------
    def study(self, label: str, counts: StudyCounts) -> None:
        """The study's state after an ask, a job's end or a decision."""
        self.studies[label] = counts
        self._refresh()

    def job_tokens(self, label: str, trial: int, tokens: int, *, finished: bool = False) -> None:
        """Tokens a job of ``trial`` trained so far (``finished``: its total; the job is over)."""
        if tokens > 0 and self.first_report is None:
            self.first_report = self.clock()
        key = (label, trial)
        before = self._job_tokens.pop(key, 0)
        self.tokens += max(0, tokens - before)
        if not finished:
            self._job_tokens[key] = max(before, tokens)
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
    def total(self) -> StudyCounts:
        t = StudyCounts(budget=sum(s.budget for s in self.studies.values()))
        for s in self.studies.values():
            for name in ("asked", "running", "complete", "stopped", "failed"):
                setattr(t, name, getattr(t, name) + getattr(s, name))
        return t

    def rate(self) -> float:
        """Search tokens per second since the first job reported tokens (nan before)."""
        if self.first_report is None:
            return math.nan
        elapsed = self.clock() - self.first_report
        return self.tokens / elapsed if elapsed > 0 else math.nan

    def eta(self) -> float:
        left = sum(s.tokens_left() for s in self.studies.values())
        if left == 0 and all(s.finished >= s.budget for s in self.studies.values()):
            return 0.0
        rate = self.rate()
        return left / rate if rate and rate > 0 else math.nan

    # ---- views --------------------------------------------------------------------------
    def _counts_text(self, s: StudyCounts) -> list[str]:
        parts = [f"{s.asked}/{s.budget} trials asked", f"{s.running} running", f"{s.complete} complete",
                 f"{s.stopped} stopped"]
        if s.failed:
            parts.append(f"{s.failed} failed")
        return parts

    def line(self) -> str:
        rate = self.rate()
        tail = [f"{_count(self.tokens)} tokens", f"{_count(rate)} tokens/s" if math.isfinite(rate) else "- tokens/s",
                f"elapsed {format_duration(self.clock() - self.began)}", f"ETA {format_duration(self.eta())}"]
        if len(self.studies) == 1:
            (s,) = self.studies.values()
            head = ([f"wave {s.wave + 1}"] if s.wave >= 0 else []) + self._counts_text(s) + [f"best {_value(s.best)}"]
            return "lrsweep search: " + ", ".join(head + tail)
        per = [f"{label}: " + (f"wave {s.wave + 1}, " if s.wave >= 0 else "") + f"{s.asked}/{s.budget} asked, best {_value(s.best)}"
               for label, s in self.studies.items()]
        return "lrsweep search: " + ", ".join(self._counts_text(self.total()) + tail) + "; " + "; ".join(per)

    def render(self) -> Group:
        rate = self.rate()
        table = Table(title="lrsweep search", show_header=True, header_style="bold")
        for col in ("study", "wave", "asked", "running", "complete", "stopped", "failed", "best"):
            table.add_column(col, justify="left" if col == "study" else "right")
        rows = list(self.studies.items()) + ([("total", self.total())] if len(self.studies) > 1 else [])
        for label, s in rows:
            table.add_row(label or "-", str(s.wave + 1) if s.wave >= 0 else "-", f"{s.asked}/{s.budget}",
                          str(s.running), str(s.complete), str(s.stopped), str(s.failed), _value(s.best))
        totals = Table(show_header=True, header_style="bold", box=None)
        for col in ("tokens", "tokens/s", "elapsed", "ETA"):
            totals.add_column(col, justify="right")
        totals.add_row(f"{self.tokens:,}", _count(rate) if math.isfinite(rate) else "-",
                       format_duration(self.clock() - self.began), format_duration(self.eta()))
        jobs = [(label, n, job) for label, s in self.studies.items() for n, job in sorted(s.jobs.items())]
        if not jobs:
            return Group(table, totals)
        detail = Table(show_header=True, header_style="bold", box=None)
        for col, justify in (("study", "left"), ("trial", "right"), ("rung", "right"), ("setting", "left"),
                             ("tokens", "right")):
            detail.add_column(col, justify=justify)  # type: ignore[arg-type]
        for label, n, (rung, params, _) in jobs:
            detail.add_row(label or "-", str(n), str(rung), params, f"{self._job_tokens.get((label, n), 0):,}")
        return Group(table, totals, detail)
