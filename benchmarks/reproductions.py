"""Small-scale reproductions of the seed papers (issue 8): run the ``examples/repro_*.toml`` sweeps
and print their numbers as JSON, whichever way they fall.

    python benchmarks/reproductions.py [--only linreg anytime wsd schedule_free] [--store DIR]
                                       [--seeds N] [--smoke]

``--smoke`` (CI): the linreg reproduction only, on a copy of its file with 2 seeds and horizons
64/128/256; the same JSON keys.

Each sweep runs with :func:`orchestrator.execution.run_sweep` (embedded local Ray, one core per
trial) into a fresh store under a temp dir (or ``--store``), and is read back with
:func:`orchestrator.query.final_losses`. Per reproduction the JSON holds the final loss of every
setting at every horizon (``final_losses``: setting → weights → horizon → loss), the
comparison the paper makes, each against its baseline measured in the same sweep, and the wall
time:

- ``linreg`` (seed 000, theory): the averaged risk per decay exponent and horizon (mean over
  seeds) next to the exact expected risk, the best exponent per horizon and the fitted slope vs
  the predicted ``gamma* = max(1 - a/b, 0)`` and rate ``-(1 - 1/b)``.
- ``anytime`` (seed 000, LM): every horizon-free setting (polynomial decay or constant, each LR,
  raw or anytime-EMA weights) vs the per-horizon-tuned cosine envelope; the best single setting
  (overall and per schedule) is the one whose worst ratio over the horizons is smallest.
- ``wsd`` (seed 004): WSD (20%, 1-sqrt) vs cosine, each tuned over the LRs per horizon and LR by
  LR; an SWA window as long as the cooldown, and an anytime EMA, on the constant trunk vs the
  cooled model (the share of the cooldown's gain they recover).
- ``schedule_free`` (seeds 001-003): each schedule-free optimizer (one configuration, evaluated at
  its ``x``) vs the per-horizon-tuned AdamW + cosine envelope.

Ratios are loss / baseline loss (below 1: better than the baseline), gaps are loss - baseline in
nats. An envelope takes, per horizon, the LR with the best seed-mean loss. The LM files train one
seed per setting; ``--seeds N`` runs copies of the files with seeds 0..N-1 (losses are then seed
means, and ``seed_spread_nats`` is the mean over settings and horizons of the across-seed
standard deviation of the final loss: the noise floor of every gap). A run here: 619 s for all
four; ``--seeds 2`` 787 s for the three GPT sweeps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomllib

from orchestrator.execution import run_sweep
from orchestrator.query import final_losses
from trials.workloads.linreg_recursion import averaged_risk_recursion

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCHEDULE_FREE = ("sf_adamw", "sf_adamw_refined", "sf_plus", "sf_normuon")
MIN_GAIN = 0.01  # nats: below this a cooldown's gain is too small to take shares of


# --------------------------------------------------------------------------------- helpers
def label(row: pd.Series) -> str:
    """A readable setting name: optimizer[/schedule(params)]/lr=…[/seed=…]."""
    parts = [row["optimizer"]]
    if isinstance(row["schedule"], str) and row["schedule"]:
        params = json.loads(row["schedule_params"] or "{}")
        inner = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
        parts.append(f"{row['schedule']}({inner})" if inner else row["schedule"])
    parts.append(f"lr={row['peak_lr']:g}")
    return "/".join(parts)


def nested_losses(df: pd.DataFrame) -> dict[str, dict[str, dict[int, float]]]:
    """setting label → weights → horizon → loss (completed rows; seeds averaged)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for (name, weights, horizon), loss in df.groupby(["setting", "weights", "horizon"])["loss"].mean().items():
        out.setdefault(name, {}).setdefault(weights, {})[int(horizon)] = round(float(loss), 5)
    return out


def envelope(df: pd.DataFrame) -> dict[int, dict[str, float]]:
    """Per horizon, the best seed-mean loss over the rows' peak LRs (and which LR)."""
    means = df.groupby(["horizon", "peak_lr"], as_index=False)["loss"].mean()
    best = means.loc[means.groupby("horizon")["loss"].idxmin()]
    return {int(r.horizon): {"loss": round(float(r.loss), 5), "peak_lr": float(r.peak_lr)} for r in best.itertuples()}


def versus(losses: dict[int, float], baseline: dict[int, dict[str, float]]) -> dict[str, Any]:
    """Ratio and gap of ``losses`` to a per-horizon baseline, and their worst values."""
    ratio = {h: round(losses[h] / baseline[h]["loss"], 4) for h in baseline if h in losses}
    gap = {h: round(losses[h] - baseline[h]["loss"], 4) for h in baseline if h in losses}
    return {"ratio": ratio, "gap_nats": gap, "worst_ratio": max(ratio.values()) if ratio else None}


def per_horizon(df: pd.DataFrame, lr: float, weights: str | None = None) -> dict[int, float]:
    """horizon → loss of the rows at peak LR ``lr`` (and ``weights``), seeds averaged."""
    rows = df[df["peak_lr"] == lr]
    if weights is not None:
        rows = rows[rows["weights"] == weights]
    return {int(h): float(v) for h, v in rows.groupby("horizon")["loss"].mean().items()}


def not_completed(df: pd.DataFrame) -> list[dict[str, Any]]:
    bad = df[df["status"] != "completed"]
    return [{"setting": s, "horizon": int(h), "status": st}
            for s, h, st in bad[["setting", "horizon", "status"]].drop_duplicates().itertuples(index=False)]


def slope(horizons: list[int], values: list[float]) -> float:
    return round(float(np.polyfit(np.log(horizons), np.log(values), 1)[0]), 3)


# --------------------------------------------------------------------------------- comparisons
def summarize_linreg(df: pd.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
    params = spec["workload"]["params"]
    a, b, sigma = params["capacity"], params["source"], params["noise"]
    dim = spec["workload"]["sizes"][0]["dim"]
    (schedule,) = spec["schedules"]
    eta, t0 = float(spec["optimizers"][0]["lr"]), float(schedule["t0"])
    horizons = sorted(int(h) for h in df["horizon"].unique())
    df = df.assign(gamma=[json.loads(p)["gamma"] for p in df["schedule_params"]])
    averaged = df[df["weights"].str.startswith("poly@")]
    measured = averaged.groupby(["gamma", "horizon"])["loss"].mean()
    se = averaged.groupby(["gamma", "horizon"])["loss"].sem()  # over seeds
    gammas = sorted(df["gamma"].unique())
    lrs = np.stack([eta * (1 + np.arange(horizons[-1]) / t0) ** -g for g in gammas])
    _, exact = averaged_risk_recursion(lrs, horizons, dim=dim, capacity=a, source=b, noise=sigma,
                                       batch_size=int(spec["batch_size"]))
    table = {
        f"gamma={g:g}": {
            h: {"measured": round(float(measured[g, h]), 6), "se": round(float(se[g, h]), 6),
                "exact": round(float(exact[i, n]), 6), "ratio": round(float(measured[g, h] / exact[i, n]), 3)}
            for n, h in enumerate(horizons)
        }
        for i, g in enumerate(gammas)
    }
    gamma_star = max(1 - a / b, 0.0)
    star = gammas.index(gamma_star) if gamma_star in gammas else None
    return {
        "problem": {"capacity": a, "source": b, "noise": sigma, "dim": dim, "lr": eta, "t0": t0,
                    "seeds": int(df["seed"].nunique())},
        "averaged_risk": table,
        "best_gamma_measured": {h: float(measured.xs(h, level="horizon").idxmin()) for h in horizons},
        "best_gamma_exact": {h: float(gammas[int(np.argmin(exact[:, n]))]) for n, h in enumerate(horizons)},
        "gamma_star_predicted": gamma_star,
        "slope_at_gamma_star": None if star is None else {
            "measured": slope(horizons, [measured[gamma_star, h] for h in horizons]),
            "exact": slope(horizons, list(exact[star])),
            "predicted": round(-(1 - 1 / b), 3),
        },
    }


def summarize_anytime(df: pd.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
    cosine = df[(df["schedule"] == "cosine") & (df["weights"] == "raw")]
    base = envelope(cosine)
    candidates = []
    anytime = df[df["schedule"].isin(["polynomial", "constant"])]
    for (name, weights), rows in anytime.groupby(["setting", "weights"]):
        losses = {int(h): float(v) for h, v in rows.groupby("horizon")["loss"].mean().items()}
        candidates.append({"setting": name, "weights": weights, **versus(losses, base)})
    candidates.sort(key=lambda c: c["worst_ratio"])
    best_by_schedule = {}
    for c in candidates:  # sorted: the first of each schedule is its best
        best_by_schedule.setdefault(c["setting"].split("/")[1].split("(")[0], c)
    return {
        "cosine_envelope": base,
        "best_anytime": candidates[0],
        "best_by_schedule": best_by_schedule,
        "anytime_vs_envelope": candidates,
    }


def summarize_wsd(df: pd.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
    raw = df[df["weights"] == "raw"]
    cosine, wsd = raw[raw["schedule"] == "cosine"], raw[raw["schedule"] == "wsd"]
    constant = df[df["schedule"] == "constant"]
    by_lr: dict[str, Any] = {}
    for lr in sorted(df["peak_lr"].unique()):
        w, c, k = per_horizon(wsd, lr), per_horizon(cosine, lr), per_horizon(constant, lr, "raw")
        entry: dict[str, Any] = {"wsd_minus_cosine_nats": {h: round(w[h] - c[h], 4) for h in w if h in c}}
        for weights in sorted(set(constant["weights"]) - {"raw"}):
            avg = per_horizon(constant, lr, weights)
            entry[f"constant+{weights}"] = {
                "minus_cooled_nats": {h: round(avg[h] - w[h], 4) for h in avg if h in w},
                # share of the cooldown's gain over the constant run that the average recovers
                # (None where that gain is under MIN_GAIN nats: a ratio of noise)
                "share_of_cooldown_gain": {h: round((k[h] - avg[h]) / (k[h] - w[h]), 3)
                                           if k[h] - w[h] >= MIN_GAIN else None
                                           for h in avg if h in w and h in k},
            }
        by_lr[f"lr={lr:g}"] = entry
    cos_env, wsd_env = envelope(cosine), envelope(wsd)
    averaged_env = {
        weights: versus({h: v["loss"] for h, v in envelope(constant[constant["weights"] == weights]).items()}, wsd_env)
        for weights in sorted(set(constant["weights"]) - {"raw"})
    }
    return {
        "cosine_envelope": cos_env,
        "wsd_envelope": wsd_env,
        "wsd_vs_cosine": versus({h: v["loss"] for h, v in wsd_env.items()}, cos_env),
        "constant_raw_vs_wsd": versus({h: v["loss"] for h, v in envelope(constant[constant["weights"] == "raw"]).items()}, wsd_env),
        "averaged_constant_vs_wsd": averaged_env,
        "by_lr": by_lr,
    }


def summarize_schedule_free(df: pd.DataFrame, spec: dict[str, Any]) -> dict[str, Any]:
    adamw = df[(df["optimizer"] == "adamw") & (df["weights"] == "raw")]
    base = envelope(adamw)
    out: dict[str, Any] = {"adamw_cosine_envelope": base}
    for name in SCHEDULE_FREE:
        rows = df[(df["optimizer"] == name) & (df["weights"] == "x")]
        if rows.empty:
            continue
        losses = {int(h): float(v) for h, v in rows.groupby("horizon")["loss"].mean().items()}
        out[name] = {"setting": rows["setting"].iloc[0], "at_x": {h: round(v, 5) for h, v in losses.items()},
                     **versus(losses, base)}
    return out


Summary = Callable[[pd.DataFrame, dict[str, Any]], dict[str, Any]]
REPRODUCTIONS: dict[str, tuple[str, Summary]] = {
    "linreg": ("repro_linreg_anytime.toml", summarize_linreg),
    "anytime": ("repro_anytime_nano.toml", summarize_anytime),
    "wsd": ("repro_wsd_nano.toml", summarize_wsd),
    "schedule_free": ("repro_schedule_free_nano.toml", summarize_schedule_free),
}


def with_seeds(path: Path, seeds: int, folder: Path) -> Path:
    """A copy of the sweep file ``path`` in ``folder`` whose top-level ``seeds`` is 0..seeds-1."""
    text, count = re.subn(r"(?m)^seeds = .*$", f"seeds = {list(range(seeds))}", path.read_text(), count=1)
    if count != 1:
        raise SystemExit(f"{path}: no top-level 'seeds = ...' line to replace for --seeds")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / path.name
    copy.write_text(text)
    return copy


def smoke_copy(path: Path, folder: Path) -> Path:
    """A copy of the sweep file ``path`` in ``folder`` with 2 seeds and horizons 64/128/256 (CI)."""
    text = path.read_text()
    for pattern, line in ((r"(?m)^seeds = .*$", "seeds = [0, 1]"), (r"(?m)^steps = .*$", "steps = [64, 128, 256]")):
        text, count = re.subn(pattern, line, text, count=1)
        if count != 1:
            raise SystemExit(f"{path}: no {line.split()[0]!r} line to replace for --smoke")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"smoke_{path.name}"
    copy.write_text(text)
    return copy


def seed_spread(df: pd.DataFrame) -> float | None:
    """Mean over (setting, weights, horizon) of the across-seed standard deviation of the loss."""
    if df["seed"].nunique() < 2:
        return None
    return round(float(df.groupby(["setting", "weights", "horizon"])["loss"].std().mean()), 4)


def reproduce(name: str, store: Path, seeds: int | None, scratch: Path, smoke: bool = False) -> dict[str, Any]:
    file, summarize = REPRODUCTIONS[name]
    path = EXAMPLES / file
    if seeds is not None:
        path = with_seeds(path, seeds, scratch)
    if smoke:
        path = smoke_copy(path, scratch)
    spec = tomllib.loads(path.read_text())
    began = time.perf_counter()
    outcome = run_sweep(path, store=str(store), progress=False)
    wall = time.perf_counter() - began
    df = final_losses(str(store), outcome.sweep_id)
    df = df.assign(setting=[label(r) for _, r in df.iterrows()])
    done = df[df["status"] == "completed"]
    return {
        "example": f"examples/{file}",
        "wall_s": round(wall, 1),
        "lineages": outcome.planned,
        "run_steps": outcome.run_steps,
        "seeds": int(df["seed"].nunique()),
        "seed_spread_nats": seed_spread(done) if name != "linreg" else None,  # linreg: "se" per cell
        "not_completed": not_completed(df),
        **summarize(done, spec),
        "final_losses": nested_losses(done),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(REPRODUCTIONS), default=list(REPRODUCTIONS))
    parser.add_argument("--store", type=Path, help="results store (default: a temp dir, deleted after)")
    parser.add_argument("--seeds", type=int, help="run the files with seeds 0..N-1 instead of theirs")
    parser.add_argument("--smoke", action="store_true",
                        help="CI: linreg only, 2 seeds, horizons 64/128/256 (a copy of its file)")
    args = parser.parse_args()
    if args.smoke:
        args.only = ["linreg"]
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    root = args.store or Path(tempfile.mkdtemp(prefix="lrsweep-repro-"))
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="lrsweep-repro-specs-"))  # the --seeds copies
    began = time.perf_counter()
    try:
        # Ray forwards the trials' log lines to the driver's stdout: keep stdout for the JSON.
        with contextlib.redirect_stdout(sys.stderr):
            results = {name: reproduce(name, root, args.seeds, scratch, args.smoke) for name in args.only}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if args.store is None:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({
        "benchmark": "reproductions",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "wall_s": round(time.perf_counter() - began, 1),
        "reproductions": results,
    }, indent=1))


if __name__ == "__main__":
    main()
