"""Live progress: totals that count running trials, an ETA from the measured rate, a line mode
for logs, and what a real sweep prints when its stderr is not a terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
from rich.console import Console

from orchestrator.progress import SweepProgress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def progress(**kw):
    clock, buf = Clock(), io.StringIO()
    console = Console(file=buf, width=400, force_terminal=False)
    p = SweepProgress([("aaaaaaaaaaaa", 1000, "constant+wsd lr=0.01 seed=0"), ("bbbbbbbbbbbb", 3000, "cosine")],
                      console=console, live=False, interval=10.0, clock=clock, **kw)
    return p, clock, buf


def test_totals_count_running_trials_and_the_eta_follows_the_measured_rate():
    p, clock, _ = progress()
    p.update("aaaaaaaaaaaa", state="running")
    clock.now = 102.0
    p.update("aaaaaaaaaaaa", tokens=400, branch="trunk", step=40, end=100, loss=2.5)  # first report at t=102
    clock.now = 112.0
    p.update("aaaaaaaaaaaa", tokens=800)
    p.update("bbbbbbbbbbbb", state="running", tokens=200)
    # 1,000 tokens in the 10 s since the first report: 100 tokens/s; 3,000 left: 30 s
    assert p.tokens_done == 1000 and p.rate() == 100.0 and p.eta() == 30.0
    p.update("aaaaaaaaaaaa", state="completed")  # a finished lineage counts all its tokens
    assert p.tokens_done == 1200 and p.counts()["completed"] == 1 and p.counts()["running"] == 1


def test_line_mode_prints_every_interval_and_at_the_end():
    p, clock, buf = progress()
    with p:
        p.update("aaaaaaaaaaaa", state="running", tokens=100, branch="h=800/1-sqrt@640", step=700, end=800, loss=2.1234)
        clock.now = 105.0
        p.update("aaaaaaaaaaaa", tokens=500)  # 5 s < 10 s: nothing printed yet
        assert buf.getvalue() == ""
        clock.now = 111.0
        p.update("aaaaaaaaaaaa", tokens=600)
        first = buf.getvalue().strip()
        assert first == ("lrsweep: 0/2 lineages done, 1 running, 600/4k tokens (15%), 55 tokens/s, elapsed 11s, "
                         "ETA 1m02s; aaaaaaaa h=800/1-sqrt@640@700/800 loss 2.123")
        clock.now = 115.0
        p.update("aaaaaaaaaaaa", state="completed")
        p.update("bbbbbbbbbbbb", state="diverged")
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("lrsweep: 2/2 lineages done, 0 running, 1 diverged, 4k/4k tokens (100%)")



def test_the_closing_line_is_not_repeated_when_the_last_interval_line_says_the_same():
    p, clock, buf = progress()
    with p:
        p.update("aaaaaaaaaaaa", state="completed")
        clock.now = 111.0
        p.update("bbbbbbbbbbbb", state="completed")  # the interval line: 2/2 done
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrsweep: 2/2 lineages done, 0 running, 4k/4k tokens (100%)")

def test_the_terminal_table_shows_each_running_lineage():
    clock, buf = Clock(), io.StringIO()
    p = SweepProgress([("aaaaaaaaaaaa", 1000, "constant+wsd lr=0.01 seed=0")], live=True, clock=clock,
                      console=Console(file=buf, width=200, force_terminal=True))
    p.update("aaaaaaaaaaaa", state="running", tokens=250, branch="trunk", step=25, end=100, loss=3.25)
    out = Console(file=io.StringIO(), width=200, record=True)
    out.print(p.render())
    text = out.export_text()
    assert "constant+wsd lr=0.01 seed=0" in text and "25/100" in text and "250/1,000" in text and "3.2500" in text


def test_format_duration():
    assert [format_duration(s) for s in (0, 59.4, 75, 3725, float("nan"))] == ["0s", "59s", "1m15s", "1h02m", "-"]


def test_a_sweep_logging_to_a_file_prints_progress_lines(tmp_path):
    """Not a terminal (a SLURM log): one line per interval and a final one with the totals."""
    spec = tmp_path / "p.toml"
    spec.write_text(f"""
name = "prog"
store = "{tmp_path / 'store'}"
batch_size = 4
[workload]
name = "linreg"
sizes = [{{ dim = 20 }}]
[[optimizers]]
name = "sgd"
lr = [0.05]
[[schedules]]
name = "constant"
[horizons]
steps = [3000]
[resources]
cpu = 1
""")
    out = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(spec)], capture_output=True, text=True,
                         timeout=600, env={**__import__("os").environ, "LRSWEEP_PROGRESS_INTERVAL": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("lrsweep: ")]
    assert lines, out.stderr[-2000:]
    assert re.match(r"lrsweep: 1/1 lineages done, 0 running, 12k/12k tokens \(100%\)", lines[-1]), lines[-1]


def test_search_lines_count_trials_per_study_and_estimate_what_is_left():
    from orchestrator.search.progress import SearchProgress, StudyCounts

    clock, buf = Clock(), io.StringIO()
    p = SearchProgress({"polynomial": 4, "wsd": 4}, console=Console(file=buf, width=400, force_terminal=False),
                       live=False, interval=10.0, clock=clock)
    with p:
        # polynomial: 2 finished trials that cost 300 and 100 tokens, one in flight with 50 so far
        p.study("polynomial", StudyCounts(budget=4, wave=1, asked=3, running=1, complete=1, stopped=1, best=0.0123,
                                          tokens_finished=400, tokens_unfinished=50, full_trial_tokens=1000))
        # wsd: nothing finished yet, so one trial's full plan (1,000 tokens) stands for each
        p.study("wsd", StudyCounts(budget=4, full_trial_tokens=1000))
        clock.now = 102.0
        p.job_tokens("polynomial", 2, 20)  # first tokens at t=102
        clock.now = 112.0
        p.job_tokens("polynomial", 2, 50)
        p.job_tokens("polynomial", 2, 450, finished=True)  # the job's total: 450 tokens this run
        assert p.tokens == 450 and p.rate() == 45.0
        # left: polynomial 2 x 200 - 50 = 350, wsd 4 x 1000 = 4000 -> 4350 / 45 per s
        assert p.eta() == pytest.approx(4350 / 45)
        clock.now = 120.0
        p.job_tokens("polynomial", 3, 0)
    lines = buf.getvalue().strip().splitlines()
    # the interval line at t=112 (50 tokens in 10 s: 5/s, 4350 left: 14m30s), then the closing one
    assert lines == [
        "lrsweep search: 3/8 trials asked, 1 running, 1 complete, 1 stopped, 50 tokens, 5 tokens/s, elapsed 12s, "
        "ETA 14m30s; polynomial: wave 2, 3/4 asked, best 0.0123; wsd: 0/4 asked, best -",
        "lrsweep search: 3/8 trials asked, 1 running, 1 complete, 1 stopped, 450 tokens, 25 tokens/s, elapsed 20s, "
        "ETA 2m54s; polynomial: wave 2, 3/4 asked, best 0.0123; wsd: 0/4 asked, best -"]


def test_a_single_study_line_shows_its_wave_and_best():
    from orchestrator.search.progress import SearchProgress, StudyCounts

    clock, buf = Clock(), io.StringIO()
    p = SearchProgress({"": 2}, console=Console(file=buf, width=400, force_terminal=False), live=False, clock=clock)
    p.study("", StudyCounts(budget=2, wave=0, asked=2, complete=2, best=0.5, tokens_finished=80))
    assert p.line() == ("lrsweep search: wave 1, 2/2 trials asked, 0 running, 2 complete, 0 stopped, best 0.5, "
                        "0 tokens, - tokens/s, elapsed 0s, ETA 0s")


def test_the_search_table_shows_each_study_a_total_and_each_job_in_flight():
    from orchestrator.search.progress import SearchProgress, StudyCounts

    p = SearchProgress({"polynomial": 4, "wsd": 4}, live=True, clock=Clock(),
                       console=Console(file=io.StringIO(), width=200, force_terminal=True))
    p.study("polynomial", StudyCounts(budget=4, wave=1, asked=3, running=1, complete=1, stopped=1, best=0.0123,
                                      jobs={2: (1, "lr=0.123, gamma=0.45", 0)}))
    p.study("wsd", StudyCounts(budget=4, wave=0, asked=2, complete=2, best=0.0456))
    p.job_tokens("polynomial", 2, 1234)
    out = Console(file=io.StringIO(), width=200, record=True)
    out.print(p.render())
    rows = [" ".join(line.replace("│", " ").split()) for line in out.export_text().splitlines()]
    assert "polynomial 2 3/4 1 1 1 0 0.0123" in rows and "wsd 1 2/4 0 2 0 0 0.0456" in rows
    assert "total - 5/8 1 3 1 0 -" in rows
    assert "polynomial 2 1 lr=0.123, gamma=0.45 1,234" in rows
