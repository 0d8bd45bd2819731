"""The one exception type for bad user input inside a trial.

The CLI turns it into a single line and exit code 2; library code raises it and never prints.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A user-supplied value is invalid.

    Args:
        field: dotted path of the offending field, e.g. ``"schedule.cooldown_fraction"``.
        value: the value that was given.
        expected: what would have been accepted, phrased to follow "must be".
    """

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field} must be {expected}, got {value!r}")
