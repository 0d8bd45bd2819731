"""Suite-wide settings.

One torch thread per test process: on these 2-core machines two threads under any other load
slow a small model's step ~45x (measured: nano GPT 23 ms -> 1,017 ms), and Ray trials in the
end-to-end tests already take a core each.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
