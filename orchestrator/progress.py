"""Live progress of a sweep (rich): lineages done/running/failed, tokens trained, ETA."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["SweepProgress"]


class SweepProgress:
    """Counts lineages by state and tokens by lineage; renders one small table."""

    def __init__(self, lineages: list[Any], *, console: Console | None = None, enabled: bool = True) -> None:
        self.planned_tokens = {l.lineage_id: t for l, t in lineages}
        self.total_tokens = sum(self.planned_tokens.values())
        self.state: dict[str, str] = {lid: "pending" for lid in self.planned_tokens}
        self.tokens: dict[str, int] = {lid: 0 for lid in self.planned_tokens}
        self.began = time.perf_counter()
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._live: Live | None = None

    def __enter__(self) -> SweepProgress:
        if self.enabled:
            self._live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(*exc)
            self.console.line()

    def update(self, lineage_id: str, *, state: str | None = None, tokens: int | None = None) -> None:
        if lineage_id not in self.state:
            return
        if state is not None:
            self.state[lineage_id] = state
        if tokens is not None:
            self.tokens[lineage_id] = min(tokens, self.planned_tokens[lineage_id])
        if state in ("completed", "diverged"):
            self.tokens[lineage_id] = self.planned_tokens[lineage_id]
        if self._live is not None:
            self._live.update(self.render())

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("pending", "running", "completed", "diverged", "failed")}
        for s in self.state.values():
            out[s] = out.get(s, 0) + 1
        return out

    def render(self) -> Table:
        c = self.counts()
        done = sum(self.tokens.values())
        elapsed = time.perf_counter() - self.began
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total_tokens - done) / rate if rate > 0 else float("nan")
        table = Table(title="lrsweep", show_header=True, header_style="bold")
        for col in ("lineages", "running", "done", "diverged", "failed", "tokens", "elapsed", "ETA"):
            table.add_column(col, justify="right")
        table.add_row(
            str(len(self.state)), str(c["running"]), str(c["completed"]), str(c["diverged"]), str(c["failed"]),
            f"{done:,}/{self.total_tokens:,}", f"{elapsed:,.0f}s", "-" if eta != eta else f"{eta:,.0f}s",
        )
        return table
