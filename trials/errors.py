"""The user-error base every lrsweep package shares, and the trial's own bad-input error.

Every mistake a user can make (a bad value in a sweep file, an unknown sweep, refused SQL, an
unreachable cluster) raises a subclass of :class:`LrsweepError`; the CLI turns exactly these
into one line on stderr and exit code 2. Library code raises them and never prints.
This module sits in ``trials`` because ``trials`` imports nothing of ``orchestrator``, while
``orchestrator`` imports ``trials``: it is the one place both can reach.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_MESSAGE", "ConfigError", "LrsweepError", "one_line", "short_repr"]

# The longest message a user error prints; with the CLI's "lrsweep: error: " prefix a line
# stays under 300 characters.
MAX_MESSAGE = 280
_ELLIPSIS = "…"


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)``, its middle cut to ``…`` when longer than ``limit`` characters."""
    text = repr(value)
    if len(text) <= limit:
        return text
    head = (limit - 1) * 2 // 3
    return text[:head] + _ELLIPSIS + text[len(text) - (limit - 1 - head) :]


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one line of at most ``limit`` characters.

    Whitespace runs (newlines included) become one space. While the line is too long its
    longest word (a 100,000-character value, a long path) is cut in the middle to ``…``, so
    the words around it (the field, what was expected) survive — the first two words (where:
    a file, a field) only when nothing else is long; a line of many short words is finally cut
    at the end.
    """
    words = str(text).split()
    length = len(" ".join(words))
    # the first two words say where (a file, a field): cut them last
    candidates = range(2, len(words)) if len(words) > 2 else range(len(words))
    while length > limit and words:
        i = max(candidates, key=lambda k: len(words[k]))
        if len(words[i]) <= 16 and len(words) > 2:
            candidates = range(len(words))
            i = max(candidates, key=lambda k: len(words[k]))
        word = words[i]
        keep = max(len(word) - (length - limit) - 1, 16)
        if keep >= len(word) - 1:
            break
        head = keep * 2 // 3
        words[i] = word[:head] + _ELLIPSIS + word[len(word) - (keep - head) :]
        length = len(" ".join(words))
    line = " ".join(words)
    return line if len(line) <= limit else line[: limit - 1] + _ELLIPSIS


class LrsweepError(Exception):
    """Base of every user error: the CLI prints ``str(exc)`` as one line and exits with 2.

    ``str()`` is always a single line of at most :data:`MAX_MESSAGE` characters, however long
    the values a subclass put in its message.
    """

    def __str__(self) -> str:
        return one_line(super().__str__())


class ConfigError(LrsweepError, ValueError):
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
        super().__init__(f"{field} must be {expected}, got {short_repr(value)}")
