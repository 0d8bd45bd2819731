"""Cost of the query sandbox: the final-loss query on a confined vs an unconfined connection.

Builds the 1M-row store of ``benchmarks/query_latency.py`` (1,000 lineages, 2,000 fragment
files), then times connect + ``SELECT count(*) FROM final_losses`` + close, median of
``--repeats`` (run alternately), on ``orchestrator.store.sql.connect`` (the views alone: the baseline) and on
``orchestrator.store.sandbox.run`` (views, ``allowed_paths`` listing every file, the locked
settings, the retry wrapper), fragmented and then compacted.

Usage: ``python benchmarks/query_sandbox.py [--lineages 1000] [--repeats 11] [--smoke]``; prints
JSON (``--smoke``: 20 lineages, 3 repeats).
Measured here (two runs): fragmented 1.40 s unconfined vs 1.49 s confined (1.06x both runs),
compacted 0.160/0.133 s vs 0.163/0.141 s (1.02x, 1.06x).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from query_latency import SWEEP, build  # noqa: E402

from orchestrator.store import ResultsStore, sandbox, sql  # noqa: E402

QUERY = "SELECT count(*) FROM final_losses"


def _medians(a, b, repeats: int) -> tuple[float, float]:
    """Median times of ``a`` and ``b``, run alternately so that load drifts hit both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            began = time.perf_counter()
            fn()
            out.append(time.perf_counter() - began)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lineages", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--smoke", action="store_true", help="CI: 20 lineages, 3 repeats")
    args = parser.parse_args()
    if args.smoke:
        args.lineages, args.repeats = 20, 3
    root = Path(tempfile.mkdtemp()) / "store"
    try:
        build(root, args.lineages)

        def unconfined() -> None:
            con = sql.connect(ResultsStore(str(root)))
            con.execute(QUERY).fetchall()
            con.close()

        def confined() -> None:
            sandbox.run(ResultsStore(str(root)), lambda con: con.execute(QUERY).fetchall())

        out = {}
        for label in ("fragmented", "compacted"):
            if label == "compacted":
                ResultsStore(str(root)).compact(SWEEP)
            base, ours = _medians(unconfined, confined, args.repeats)
            out[label] = {"unconfined_s": round(base, 3), "confined_s": round(ours, 3),
                          "confined_over_unconfined": round(ours / base, 2)}
        print(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
