"""The one rule for sweep names, shared by the sweep file (``name``) and the results store
(``sweep_id``, a directory name ``sweep_id=<name>`` in every table).

Pure Python: the spec checks it without importing the store (pyarrow), the store without
importing the spec (pydantic).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SWEEP_NAME_MAX", "SWEEP_NAME_RULE", "is_sweep_name"]

SWEEP_NAME_MAX = 64  # characters; a path segment anywhere, and short enough to read in a table
SWEEP_NAME_RULE = (
    f"1 to {SWEEP_NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit"
)
_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{SWEEP_NAME_MAX - 1}}}")


def is_sweep_name(value: Any) -> bool:
    """Whether ``value`` follows :data:`SWEEP_NAME_RULE`."""
    return isinstance(value, str) and _PATTERN.fullmatch(value) is not None
