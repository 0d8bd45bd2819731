"""One BLAS thread around the small fits of :mod:`analysis`.

The fits solve problems of a few parameters over tens to thousands of points: BLAS threads
cost more to wake than the arithmetic they share. On a busy machine (a node running a sweep,
two processes on two cores) the default one-thread-per-core OpenBLAS made the Chinchilla fit
on Epoch AI's data take 2.6–15 s against 1.2 s with one thread (docs/platform.md §5, "BLAS threads
on a busy machine"). So every public fit runs inside :func:`single_blas_thread`, whatever the
caller's environment says; the limit is restored on exit (threadpoolctl), so a caller's own
numpy work keeps its threads. Entering costs ~0.3 ms (it rescans the loaded libraries, which
also catches scipy's own OpenBLAS once scipy is imported).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["single_blas_thread", "single_threaded"]

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit every loaded BLAS/OpenMP pool to one thread inside the block."""
    with threadpool_limits(limits=1):
        yield


def single_threaded(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` inside :func:`single_blas_thread`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with threadpool_limits(limits=1):
            return fn(*args, **kwargs)

    return wrapper
