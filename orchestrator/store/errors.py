"""The domain exceptions of the results store.

Library code raises them with a one-line message; the CLI prints that line and exits with 2
(they derive from :class:`trials.errors.LrsweepError`, the base of every user error).
"""

from __future__ import annotations

from trials.errors import LrsweepError

__all__ = ["QueryError", "StoreError"]


class StoreError(LrsweepError):
    """The results store cannot do what was asked: empty store, unknown sweep, bad rows,
    a schema version this code does not read, a missing required column."""


class QueryError(StoreError):
    """A SQL query over the store failed (syntax error, unknown column, ...) or was refused
    (not one read-only statement, a file outside the store; see ``sandbox.py``)."""
