"""Stopping a sweep on SIGINT (Ctrl-C) or SIGTERM with an exit code that says so.

Left alone, Ray Tune catches SIGINT and ends the run "gracefully": ``tuner.fit()`` returns as if
the sweep had finished, so ``lrsweep run X && lrsweep report X`` went on to report half a sweep;
and ``ray.init`` turns SIGTERM into ``sys.exit`` wherever the driver happens to be. Within
:func:`stop_on_signals` (the CLI's ``run``):

- while a Tune run is under way, the first SIGINT or SIGTERM is handed to Tune's own graceful
  stop (:func:`hand_to_tune`, called from the sweep's Tune callback once Tune has installed its
  handler): running trials are stopped, nothing half-written is read later;
- when Tune returns, :func:`raise_if_interrupted` raises :class:`SweepInterrupted`, so neither
  the search nor anything else starts after it;
- outside a Tune run (planning, compaction) the signal raises :class:`SweepInterrupted` at once.

:class:`SweepInterrupted` derives from ``BaseException`` so no ``except Exception`` on the way
swallows it; the CLI turns it into one line and exit code ``128 + signal`` (130 for SIGINT, 143
for SIGTERM). What the trials wrote stays: every store write is atomic and a lineage resumes from
its last checkpoint (the guarantee a killed driver already has), so rerunning the same command
finishes the sweep.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SweepInterrupted", "hand_to_tune", "raise_if_interrupted", "reinstall", "stop_on_signals", "take_back",
           "tune_callback"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Tune's loggers that announce the graceful stop and print `Tuner.restore(...)` advice: the
# CLI's one line says what to do instead
_TUNE_LOGGERS = ("ray.tune.tune", "ray.tune.tuner", "ray.tune.impl.tuner_internal",
                 "ray.tune.execution.tune_controller", "ray.train._internal.session")


class SweepInterrupted(BaseException):
    """The driver received ``signum`` while a sweep ran."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    active = False
    signum: int | None = None
    tune_handler: Callable[..., Any] | None = None


def _handler(signum: int, frame: Any) -> None:
    first = _State.signum is None
    if first:
        _State.signum = signum
    tune = _State.tune_handler
    if tune is not None:  # inside a Tune run: Tune stops its trials, then fit() returns
        if first:
            tune(signal.SIGINT, frame)
        return
    if first:
        raise SweepInterrupted(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def reinstall() -> None:
    """Put this module's handler back on both signals (``ray.init`` replaces SIGTERM's)."""
    if _State.active and _main_thread():
        for s in _SIGNALS:
            signal.signal(s, _handler)


def hand_to_tune() -> None:
    """Called when a Tune run starts: the next signal goes to Tune's own SIGINT handler."""
    if not (_State.active and _main_thread()):
        return
    current = signal.getsignal(signal.SIGINT)
    if callable(current) and current is not _handler:
        _State.tune_handler = current
    for name in _TUNE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    reinstall()


def tune_callback() -> Any:
    """A Tune callback whose ``setup`` calls :func:`hand_to_tune` (Ray imported only here)."""
    from ray.tune import Callback

    class _HandToTune(Callback):
        def setup(self, **info: Any) -> None:
            hand_to_tune()

    return _HandToTune()


def take_back() -> None:
    """Called when the Tune run has returned."""
    _State.tune_handler = None
    reinstall()


def raise_if_interrupted() -> None:
    """Raise :class:`SweepInterrupted` if a signal arrived during the block."""
    if _State.active and _State.signum is not None:
        raise SweepInterrupted(_State.signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the sweep run inside the block (see the module docstring).
    Outside the main thread it does nothing."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    _State.active, _State.signum, _State.tune_handler = True, None, None
    reinstall()
    try:
        yield
        raise_if_interrupted()
    finally:
        _State.active, _State.tune_handler = False, None
        for s, h in previous.items():
            signal.signal(s, h)
