"""``python -m trials LINEAGE.toml``: run one lineage with no Ray and write its curve.

The file holds the fields of :class:`trials.lineage_spec.LineageSpec` (``lineage_id``,
``setting_id`` and ``eval_steps`` optional). ``lrsweep trial SWEEP.toml --lineage ID`` does the
same for one lineage of a planned sweep.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

from trials.errors import ConfigError
from trials.lineage_spec import AveragerSpec, LineageSpec, canonical_hash

__all__ = ["load_lineage_file", "lineage_from_mapping", "run_and_write", "run_trial_file", "main"]


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


def default_eval_steps(horizons: tuple[int, ...], points: int = 8) -> tuple[int, ...]:
    """Every horizon plus ``points`` log-spaced steps up to the longest."""
    longest = max(horizons)
    logs = {max(1, round(math.exp(math.log(longest) * (i + 1) / points))) for i in range(points)}
    return tuple(sorted(logs | set(horizons)))


def lineage_from_mapping(data: dict[str, Any]) -> LineageSpec:
    """A :class:`LineageSpec` from plain values, with ids and eval steps filled in when absent."""
    names = {f.name for f in dataclasses.fields(LineageSpec)}
    for key in data:
        if key not in names:
            raise ConfigError(key, data[key], f"a lineage field: one of {sorted(names)}")
    data = dict(data)
    data.setdefault("workload_params", {})
    data.setdefault("optimizer_params", {})
    data.setdefault("schedule_params", {})
    data.setdefault("schedule", None)
    for key in ("workload", "optimizer", "peak_lr", "warmup", "batch_size", "seed", "horizons"):
        if key not in data:
            raise ConfigError(key, None, "given (a required lineage field)")
    if not isinstance(data["horizons"], list) or not data["horizons"]:
        raise ConfigError("horizons", data["horizons"], "a non-empty list of steps")
    data["horizons"] = tuple(sorted(int(h) for h in data["horizons"]))
    data["eval_steps"] = tuple(sorted(data["eval_steps"])) if "eval_steps" in data else default_eval_steps(data["horizons"])
    averagers = []
    for i, a in enumerate(data.get("averagers", [])):
        if not isinstance(a, dict) or "kind" not in a:
            raise ConfigError(f"averagers[{i}]", a, "a table with a `kind`")
        averagers.append(AveragerSpec(**a))
    data["averagers"] = tuple(averagers)
    if not (isinstance(data["peak_lr"], (int, float)) and data["peak_lr"] > 0):
        raise ConfigError("peak_lr", data["peak_lr"], "a number > 0")
    setting = {k: v for k, v in data.items() if k not in ("lineage_id", "setting_id", "horizons", "eval_steps")}
    data.setdefault("setting_id", canonical_hash({**setting, "averagers": [dataclasses.asdict(a) for a in averagers]}))
    data.setdefault("lineage_id", canonical_hash({"setting": data["setting_id"], "horizons": data["horizons"],
                                                  "eval_steps": data["eval_steps"]}))
    return LineageSpec(**data)


def load_lineage_file(path: str | Path) -> LineageSpec:
    return lineage_from_mapping(_read_toml(Path(path)))


def run_and_write(spec: LineageSpec, out: str | Path, *, checkpoint_dir: str | None = None) -> dict[str, Any]:
    """Run ``spec`` without Ray; write every curve row to ``out`` (.csv or .parquet)."""
    import pandas as pd

    from trials.checkpoint import FileCheckpointer, NullCheckpointer
    from trials.lineage import run_lineage

    segments: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def report(segment: Any) -> None:  # keyed like the store: a resumed run overwrites
        segments[(segment.branch, segment.key)] = segment.rows

    checkpointer = FileCheckpointer(checkpoint_dir) if checkpoint_dir else NullCheckpointer()
    began = time.perf_counter()
    result = run_lineage(spec, report=report, checkpointer=checkpointer)
    rows = [row for key in sorted(segments) for row in segments[key]]
    frame = pd.DataFrame(rows)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(out)
    return {"status": result.status, "rows": len(frame), "wall_time_s": time.perf_counter() - began,
            "branches": [b.branch for b in result.branches], "path": str(out)}


def run_trial_file(spec: str, *, out: str, lineage: str | None = None, checkpoint_dir: str | None = None) -> int:
    if lineage is not None:
        raise ConfigError("--lineage", lineage, "used with a sweep file through `lrsweep trial`")
    summary = run_and_write(load_lineage_file(spec), out, checkpoint_dir=checkpoint_dir)
    print(f"lineage {summary['status']}: {summary['rows']} curve rows in {summary['wall_time_s']:.1f} s -> {summary['path']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trials", description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("-o", "--output", default="curve.csv")
    parser.add_argument("--checkpoint-dir")
    args = parser.parse_args(argv)
    try:
        return run_trial_file(args.spec, out=args.output, checkpoint_dir=args.checkpoint_dir)
    except ConfigError as exc:
        print(f"python -m trials: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
