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

# The longest test files first (seconds they took with two test processes, longest first): the
# README's test command runs files on two processes (`-n 2 --dist loadfile`), which hand out files
# in collection order; starting with the long ones keeps one of them from running alone at the
# end. Order between files only; every file's tests keep their own order.
_LONGEST_FIRST = (
    "tests/orchestrator_tests/test_execution.py",
    "tests/test_benchmarks_smoke.py",
    "tests/clusters_tests/test_object_store_sweeps.py",
    "tests/orchestrator_tests/test_search.py",
    "tests/orchestrator_tests/test_search_resume.py",
    "tests/orchestrator_tests/test_plugin_sweep.py",
    "tests/clusters_tests/test_multinode_sweep.py",
    "tests/orchestrator_tests/test_signals.py",
    "tests/orchestrator_tests/test_search_per.py",
    "tests/orchestrator_tests/test_ray_local.py",
    "tests/clusters_tests/test_jobs_cluster.py",
    "tests/analysis_tests/test_report_cli.py",
    "tests/analysis_tests/test_report.py",
    "tests/orchestrator_tests/test_throughput_store.py",
    "tests/trials_tests/test_data_parallel.py",
    "tests/orchestrator_tests/test_progress.py",
    "tests/orchestrator_tests/test_store_scaling.py",
)


def pytest_collection_modifyitems(session, config, items) -> None:  # noqa: ANN001
    rank = {path: k for k, path in enumerate(_LONGEST_FIRST)}
    root = str(config.rootpath)

    def key(item) -> int:  # noqa: ANN001
        path = os.path.relpath(str(item.path), root).replace(os.sep, "/")
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the rest keep pytest's order
