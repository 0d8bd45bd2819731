"""Planned vs minimum vs naive steps, and what extending a finished sweep costs vs retraining.

1. For every ``examples/*.toml`` and a 1–32× Chinchilla grid with four WSD variants (two
   cooldown fractions × two shapes) plus constant and cosine: the planner's steps, the
   brute-force minimum (``tests/orchestrator_tests/brute_force.py``, independent of the
   planner) and the naive cost (every setting × horizon from scratch).
2. Extension, on local Ray (``run_sweep``, one Ray for all runs): a nano char-GPT sweep run at
   horizons [200, 400], then extended to [200, 400, 800] and to [200, 300, 400, 800]; each
   extension's steps and wall time vs a fresh run of the same final spec.

    python benchmarks/planning.py            # prints JSON
    python benchmarks/planning.py --no-run   # planning figures only (seconds)
    python benchmarks/planning.py --smoke    # CI: quickstart + Chinchilla grid; one extension, horizons / 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.planner import plan  # noqa: E402
from orchestrator.spec import load_spec, parse_spec  # noqa: E402
from tests.orchestrator_tests.brute_force import brute_force_minimum  # noqa: E402

CHINCHILLA = {
    "name": "chinchilla-grid", "warmup": 100, "batch_size": 32,
    "workload": {"name": "char_gpt", "sizes": ["nano", "micro", "small"]},
    "optimizers": [{"name": "adamw", "lr": [1e-3, 3e-3, 1e-2]}],
    "schedules": [{"name": "constant"}, {"name": "cosine"},
                  {"name": "wsd", "cooldown_fraction": [0.1, 0.2], "cooldown_shape": ["linear", "1-sqrt"]}],
    "horizons": {"chinchilla": [1, 2, 4, 8, 16, 32]},
    "resources": {"max_epochs": 2000},  # planned, never trained: 32x "small" is 1,497 epochs
}

SWEEP = """
name = "ext"
store = "{store}"
warmup = {warmup}
batch_size = 16
[workload]
name = "char_gpt"
sizes = ["nano"]
[[optimizers]]
name = "adamw"
lr = 3e-3
params = {{ weight_decay = 0.1 }}
[[schedules]]
name = "constant"
[[schedules]]
name = "wsd"
cooldown_fraction = 0.2
[[schedules]]
name = "cosine"
[horizons]
steps = {horizons}
[[averagers]]
kind = "ema"
half_life = 0.1
[[averagers]]
kind = "swa"
start_fraction = 0.5
[eval]
points_per_decade = 4
batches = 4
[resources]
cpu = 1
"""


def planning_figures(smoke: bool = False) -> dict:
    # an example whose token shards are not prepared (examples/llama_tokens.toml before
    # `lrsweep data prepare`) is planned on a small prepared corpus: the same grid otherwise
    from tests._examples import load_example

    paths = sorted((ROOT / "examples").glob("*.toml"))
    if smoke:  # the quickstart and the Chinchilla grid only
        paths = [p for p in paths if p.stem == "quickstart"]
    grids = {p.stem: load_example(p) for p in paths}
    grids["chinchilla_1-32x_4_wsd_variants"] = parse_spec(CHINCHILLA)
    out = {}
    for name, spec in grids.items():
        began = time.perf_counter()
        p = plan(spec)
        seconds = time.perf_counter() - began
        minimum = brute_force_minimum(spec)
        out[name] = {"lineages": len(p.lineages), "planned_steps": p.planned_steps, "minimum_steps": minimum,
                     "naive_steps": p.naive_steps, "planned_over_minimum": p.planned_steps / minimum,
                     "planned_over_naive": p.planned_steps / p.naive_steps, "plan_seconds": round(seconds, 3)}
    return out


def extension_figures(scale: int = 1) -> dict:
    """Extension vs retraining; ``scale`` divides every horizon (and the warmup) for a smoke run,
    which extends only to a longer horizon."""
    from orchestrator.execution import plan_against_store, run_sweep

    work = Path(tempfile.mkdtemp(prefix="lrsweep-bench-"))

    def spec_file(folder: Path, horizons: list[int]) -> Path:
        folder.mkdir(exist_ok=True)
        path = folder / "ext.toml"
        path.write_text(SWEEP.format(store=folder / "store", warmup=20 // scale,
                                     horizons=[h // scale for h in horizons]))
        return path

    def timed(path: Path) -> dict:
        spec = load_spec(path)
        steps = plan_against_store(spec, str(path.parent / "store")).run_steps
        began = time.perf_counter()
        outcome = run_sweep(path, progress=False)
        return {"steps": steps, "wall_s": round(time.perf_counter() - began, 2), "ran": outcome.ran}

    out = {}
    cases = (("longer_horizon", [200, 400, 800]), ("middle_and_longer", [200, 300, 400, 800]))
    for label, final in cases[:1] if scale > 1 else cases:
        base = spec_file(work / f"{label}-ext", [200, 400])
        run_sweep(base, progress=False)
        extended = timed(spec_file(work / f"{label}-ext", final))
        fresh = timed(spec_file(work / f"{label}-fresh", final))
        out[label] = {"horizons": [[h // scale for h in (200, 400)], [h // scale for h in final]], "extension": extended, "retrain": fresh,
                      "steps_ratio": extended["steps"] / fresh["steps"],
                      "wall_ratio": extended["wall_s"] / fresh["wall_s"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="planning figures only")
    parser.add_argument("--smoke", action="store_true",
                        help="CI: two grids planned, extension at horizons / 10")
    args = parser.parse_args()
    result = {"planning": planning_figures(args.smoke)}
    if not args.no_run:
        result["extension"] = extension_figures(10 if args.smoke else 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
