"""``python -m trials SETTING.toml``: run one setting's lineage with no Ray and write its curve.

The file names one setting (no grid)::

    workload = "linreg"
    workload_params = { dim = 50 }
    optimizer = "sgd"                  # optimizer_params = { ... } optional
    peak_lr = 0.05
    schedule = "wsd"                   # omit for a schedule-free optimizer
    schedule_params = { cooldown_fraction = 0.2 }
    warmup = 0
    batch_size = 4
    seed = 0
    horizons = [40, 80]                # steps
    points_per_decade = 4              # eval grid (optional)
    [[averagers]]                      # optional, as in a sweep file
    kind = "ema"
    half_life = 0.1

It is planned by the same function as a sweep (:func:`trials.lineage_plan.plan_lineages`), so
its lineage and branch ids are the ids ``lrsweep plan`` shows for the same setting.
``lrsweep trial SWEEP.toml --lineage ID`` runs one lineage of a planned sweep instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from trials.errors import ConfigError
from trials.lineage_plan import AveragerPoint, PlanConfig, TrialSetting, plan_lineages
from trials.lineage_spec import LineageSpec

__all__ = ["averager_point", "lineage_from_mapping", "load_lineage_file", "main", "run_and_write"]

_REQUIRED = ("workload", "optimizer", "peak_lr", "warmup", "batch_size", "seed", "horizons")
_OPTIONAL = ("workload_params", "optimizer_params", "schedule", "schedule_params", "averagers",
             "points_per_decade", "eval_every", "checkpoint_every", "log_every", "divergence_factor", "device",
             "precision", "compile", "workers")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    if not path.is_file():
        raise ConfigError("spec", str(path), "an existing readable TOML file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("spec", str(path), f"valid TOML ({exc})") from None


def _format_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def averager_point(entry: dict[str, Any], where: str = "averagers") -> AveragerPoint:
    """One averager table as in a sweep file (``kind`` plus its parameters; ``swa`` takes
    ``start`` or ``start_fraction``), labelled exactly as the sweep planner labels it."""
    from trials.averaging import default_label

    if not isinstance(entry, dict) or "kind" not in entry:
        raise ConfigError(where, entry, "a table with a `kind`")
    params = {k: v for k, v in entry.items() if k != "kind"}
    if entry["kind"] == "swa" and "start_fraction" in params:
        f = params.pop("start_fraction")
        if not (isinstance(f, (int, float)) and 0 < f < 1):
            raise ConfigError(f"{where}.start_fraction", f, "a number in (0, 1)")
        default_label("swa", {**params, "start": 0})  # validates the other parameters
        every = params.get("every", 1)
        tail = "" if every == 1 else f"/{every}"
        return AveragerPoint(kind="swa", params={"every": every}, label=f"swa@{_format_number(f)}{tail}",
                             start_fraction=float(f))
    if entry["kind"] == "lawa":
        params.setdefault("every", 1)
    return AveragerPoint(kind=entry["kind"], params=params, label=default_label(entry["kind"], params))


def lineage_from_mapping(data: dict[str, Any]) -> LineageSpec:
    """The one lineage answering the setting ``data`` describes (module docstring)."""
    from trials.optimizers import OPTIMIZERS
    from trials.optimizers import is_schedule_free as is_schedule_free_name
    from trials.schedules import build_schedule

    for key in data:
        if key not in _REQUIRED + _OPTIONAL:
            raise ConfigError(key, data[key], f"a setting field: one of {sorted(_REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if key not in data:
            raise ConfigError(key, None, "given (a required setting field)")
    horizons = data["horizons"]
    if not isinstance(horizons, list) or not horizons or not all(isinstance(h, int) and h > 0 for h in horizons):
        raise ConfigError("horizons", horizons, "a non-empty list of step counts > 0")
    if not (isinstance(data["peak_lr"], (int, float)) and data["peak_lr"] > 0):
        raise ConfigError("peak_lr", data["peak_lr"], "a number > 0")
    if data["optimizer"] not in OPTIMIZERS:
        raise ConfigError("optimizer", data["optimizer"], f"one of {sorted(OPTIMIZERS)}")
    schedule_free = is_schedule_free_name(data["optimizer"])
    schedule = data.get("schedule")
    if schedule_free and schedule is not None:
        raise ConfigError("schedule", schedule, f"absent: {data['optimizer']!r} is schedule-free")
    if not schedule_free and schedule is None:
        raise ConfigError("schedule", None, f"a schedule name for optimizer {data['optimizer']!r}")
    schedule_params: dict[str, Any] = {}
    if schedule is not None:
        built = build_schedule(schedule, warmup=int(data["warmup"]), **data.get("schedule_params", {}))
        schedule_params = {k: v for k, v in built.params().items() if k != "warmup"}
    setting = TrialSetting(
        workload=data["workload"], workload_params=dict(data.get("workload_params", {})),
        optimizer=data["optimizer"], optimizer_params=dict(data.get("optimizer_params", {})),
        schedule_free=schedule_free, schedule=schedule, schedule_params=schedule_params,
        peak_lr=float(data["peak_lr"]), warmup=int(data["warmup"]), batch_size=int(data["batch_size"]),
        seed=int(data["seed"]), horizons=tuple(sorted(set(horizons))),
    )
    points = tuple(averager_point(a, f"averagers[{i}]") for i, a in enumerate(data.get("averagers", [])))
    config = PlanConfig(
        points_per_decade=int(data.get("points_per_decade", 4)), eval_every=int(data.get("eval_every", 0)),
        averagers=points, checkpoint_every=int(data.get("checkpoint_every", 0)),
        log_every=int(data.get("log_every", 1)), divergence_factor=float(data.get("divergence_factor", 5.0)),
        device=str(data.get("device", "cpu")), precision=str(data.get("precision", "fp32")),
        compile=bool(data.get("compile", False)), workers=int(data.get("workers", 1)),
    )
    lineages, _ = plan_lineages([setting], config)
    if len(lineages) != 1:
        raise ConfigError("schedule", schedule, "a schedule answered by one trunk here (cosine and linear "
                                                "need one lineage per horizon: give one horizon)")
    return lineages[0]


def load_lineage_file(path: str | Path) -> LineageSpec:
    return lineage_from_mapping(_read_toml(Path(path)))


def run_and_write(spec: LineageSpec, out: str | Path, *, checkpoint_dir: str | None = None,
                  threads: int = 1) -> dict[str, Any]:
    """Run ``spec`` without Ray; write every curve row to ``out`` (.csv or .parquet).

    With ``checkpoint_dir`` the rows and checkpoints are kept there, and a rerun resumes.
    """
    import pandas as pd
    import torch

    from trials.checkpoint import CheckpointStore
    from trials.lineage import run_lineage
    from trials.sinks import DirectorySink, MemorySink

    torch.set_num_threads(max(1, threads))  # a busy 2-core machine: 1 thread is ~5x faster
    checkpoints = None
    sink: MemorySink = MemorySink()
    if checkpoint_dir:
        sink = DirectorySink(Path(checkpoint_dir) / spec.lineage_id)
        checkpoints = CheckpointStore(Path(checkpoint_dir) / spec.lineage_id / "checkpoints", spec.lineage_id)
    began = time.perf_counter()
    result = run_lineage(spec, sink=sink, checkpoints=checkpoints,
                         stored=sink.stored(checkpoints) if checkpoint_dir else None)
    frame = pd.DataFrame(sink.rows())
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(out)
    return {"status": result.status, "rows": len(frame), "wall_time_s": time.perf_counter() - began,
            "branches": sorted(sink.results), "path": str(out), "lineage_id": spec.lineage_id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trials", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("-o", "--output", default="curve.csv")
    parser.add_argument("--checkpoint-dir")
    args = parser.parse_args(argv)
    try:
        summary = run_and_write(load_lineage_file(args.spec), args.output, checkpoint_dir=args.checkpoint_dir)
    except ConfigError as exc:
        print(f"python -m trials: error: {exc}", file=sys.stderr)
        return 2
    print(f"lineage {summary['lineage_id']} {summary['status']}: {summary['rows']} curve rows in "
          f"{summary['wall_time_s']:.1f} s -> {summary['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
