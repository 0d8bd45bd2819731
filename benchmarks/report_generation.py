"""Report generation on a synthetic ~1,000-lineage sweep: time and HTML size, printed as JSON.

    python benchmarks/report_generation.py [--lineages 1000] [--repeat 3] [--out report.html]
    OPENBLAS_NUM_THREADS=1 python benchmarks/report_generation.py   # see "openblas_num_threads"

The synthetic sweep has the results store's three frames: 3 model sizes × 6 settings families
(cosine — one lineage per horizon; WSD with 1-sqrt and linear cooldowns — a trunk and one branch
per horizon; constant; polynomial; schedule-free AdamW) × peak LRs × 3 seeds × 4 horizons, with 3
weights variants, eval rows every 250 steps and train rows every 40 steps (a sub-sample, as the
store keeps for big sweeps); high LRs diverge. The peak-LR grid grows until there are at least
``--lineages`` lineages.

What the report caps so its size stays sane (see ``analysis.figures``): curve figures draw only
each family's best setting (first seed), at most 80 traces of 300 points each; the regret
heatmap at most 40 candidates per scope (+ each family's best); at most 16 data-law fits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import write_report  # noqa: E402
from analysis.figures import MAX_CURVE_TRACES, MAX_HEATMAP_ROWS, MAX_LAW_FITS, MAX_POINTS_PER_TRACE  # noqa: E402

HORIZONS = (500, 1000, 2000, 4000)
SIZES = {"s": 2.0e5, "m": 6.0e5, "l": 2.0e6}
SEEDS = (0, 1, 2)
TOKENS_PER_STEP = 2048
WARMUP = 50
EVAL_EVERY = 250
TRAIN_EVERY = 40
FAMILIES = (
    ("cosine", "cosine", {}),
    ("wsd", "wsd", {"cooldown_shape": "1-sqrt"}),
    ("wsd", "wsd", {"cooldown_shape": "linear"}),
    ("constant", "constant", {}),
    ("polynomial", "polynomial", {"gamma": 0.5}),
    ("sf_adamw", None, {}),
)
LINEAGES_PER_LR = len(SIZES) * len(SEEDS) * (len(HORIZONS) + 5)  # cosine: one per horizon


def _multiplier(schedule: str | None, params: dict, horizon: int, t: np.ndarray) -> np.ndarray:
    warm = np.minimum(1.0, (t + 1) / WARMUP)
    if schedule == "cosine":
        p = np.clip((t - WARMUP) / (horizon - WARMUP), 0, 1)
        return np.where(t < WARMUP, warm, 0.1 + 0.9 * (1 + np.cos(np.pi * p)) / 2)
    if schedule == "wsd":
        start = int(0.8 * horizon)
        q = np.clip((t - start) / (horizon - start), 0, 1)
        shape = 1 - np.sqrt(q) if params["cooldown_shape"] == "1-sqrt" else 1 - q
        return np.where(t < start, warm, shape)
    if schedule == "polynomial":
        return warm * (1 + np.maximum(t - WARMUP, 0) / 500) ** -params["gamma"]
    return warm


def _loss(lr: np.ndarray, n_params: float, weights: str, lr_opt: float) -> np.ndarray:
    area = np.cumsum(lr) / 1e-3
    base = 1.6 + 60.0 * n_params**-0.3 + 3.0 * (1.0 + area) ** -0.35
    floor = 0.04 * lr / 1e-3 + 0.5 * np.maximum(np.log(lr.max() / lr_opt), 0) ** 2
    return base + {"raw": 1.0, "x": 0.35}.get(weights, 0.45) * floor


def synthetic_results(
    min_lineages: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """(lineages, curves, final_losses, plan) of a synthetic sweep with ≥ ``min_lineages`` lineages."""
    rng = np.random.default_rng(seed)
    n_lrs = max(2, math.ceil(min_lineages / LINEAGES_PER_LR))
    lrs = np.geomspace(3e-4, 1e-2, n_lrs)
    lin_rows, curve_parts, final_rows = [], [], []
    longest = max(HORIZONS)
    for size, n_params in SIZES.items():
        lr_opt = 3e-3 * (n_params / 2e5) ** -0.3
        for family, schedule, sparams in FAMILIES:
            weights = (
                ("x", "ema@0.05", "swa@0.2") if schedule is None else ("raw", "ema@0.05", "swa@0.2")
            )
            for peak in lrs:
                for s in SEEDS:
                    sid = f"{size}-{family}-{json.dumps(sparams, sort_keys=True)}-{peak:.3g}-{s}"
                    setting = dict(
                        sweep_id="bench",
                        workload="shakespeare",
                        model_size=size,
                        n_params=n_params,
                        family=family,
                        optimizer="sf_adamw" if schedule is None else "adamw",
                        optimizer_params="{}",
                        schedule=schedule,
                        schedule_params=json.dumps(sparams),
                        peak_lr=float(peak),
                        warmup=WARMUP,
                        batch_size=16,
                        seed=s,
                        tokens_per_step=TOKENS_PER_STEP,
                        setting_id=sid,
                    )
                    if schedule == "cosine":
                        branches = [
                            (f"{sid}-T{h}", "main", None, None, 0, h, h, [h]) for h in HORIZONS
                        ]
                    elif schedule == "wsd":
                        branches = [(sid, "trunk", None, None, 0, int(0.8 * longest), longest, [])]
                        branches += [
                            (sid, f"h={h}", "trunk", int(0.8 * h), int(0.8 * h), h, h, [h])
                            for h in HORIZONS
                        ]
                    else:
                        branches = [(sid, "main", None, None, 0, longest, longest, list(HORIZONS))]
                    diverge = peak > 2.5 * lr_opt and rng.random() < 0.7
                    div_step = int(rng.integers(300, 3000)) if diverge else None
                    for lid, branch, parent, fork, start, end, sched_h, answers in branches:
                        t = np.arange(end)
                        lr = peak * _multiplier(schedule, sparams, sched_h, t)
                        stop = end if div_step is None else min(end, div_step)
                        status = "completed" if stop == end else "diverged"
                        lin_rows.append(
                            {
                                **setting,
                                "lineage_id": lid,
                                "branch": branch,
                                "parent": parent,
                                "fork_step": fork,
                                "horizons": answers,
                                "max_step": end,
                                "status": status,
                                "error": None if status == "completed" else "loss is nan",
                                "wall_time_s": 0.05 * (stop - start),
                                "steps_trained": stop - start,
                                "tokens_trained": (stop - start) * TOKENS_PER_STEP,
                                "flops_trained": 6.0 * n_params * (stop - start) * TOKENS_PER_STEP,
                            }
                        )
                        train_steps = np.arange(start, stop, TRAIN_EVERY)
                        raw = _loss(lr, n_params, "raw", lr_opt)
                        curve_parts.append(
                            pd.DataFrame(
                                {
                                    "lineage_id": lid,
                                    "branch": branch,
                                    "step": train_steps,
                                    "split": "train",
                                    "weights": "raw",
                                    "lr": lr[train_steps],
                                    "loss": raw[train_steps]
                                    + rng.normal(0, 0.02, len(train_steps)),
                                }
                            )
                        )
                        evals = np.array(
                            sorted(
                                {
                                    *range(max(start, EVAL_EVERY), stop + 1, EVAL_EVERY),
                                    *[h for h in answers if h <= stop],
                                }
                            ),
                            dtype=int,
                        )
                        evals = evals[evals > start] if start > 0 else evals
                        for w in weights:
                            lw = _loss(lr, n_params, w, lr_opt)
                            if len(evals):
                                curve_parts.append(
                                    pd.DataFrame(
                                        {
                                            "lineage_id": lid,
                                            "branch": branch,
                                            "step": evals,
                                            "split": "eval",
                                            "weights": w,
                                            "lr": lr[evals - 1],
                                            "loss": lw[evals - 1]
                                            + rng.normal(0, 0.003, len(evals)),
                                        }
                                    )
                                )
                            for h in answers:
                                ok = h <= stop
                                final_rows.append(
                                    {
                                        **setting,
                                        "lineage_id": lid,
                                        "branch": branch,
                                        "horizon": h,
                                        "weights": w,
                                        "status": "completed" if ok else "diverged",
                                        "loss": lw[h - 1] + rng.normal(0, 0.003)
                                        if ok
                                        else math.nan,
                                    }
                                )
    curves = pd.concat(curve_parts, ignore_index=True)
    curves["sweep_id"] = "bench"
    curves["tokens"] = curves["step"] * TOKENS_PER_STEP
    curves["flops"] = np.nan
    for col in ("lineage_id", "branch", "split", "weights"):
        curves[col] = curves[col].astype("category")  # as pyarrow reads dictionary columns
    lineages = pd.DataFrame(lin_rows)
    naive = float(sum(sum(h) for h in lineages["horizons"]) * TOKENS_PER_STEP)
    plan = {
        "planned_tokens": float(lineages["tokens_trained"].sum()),
        "naive_tokens": naive,
        "planned_flops": float(lineages["flops_trained"].sum()),
        "naive_flops": float(
            (6.0 * lineages["horizons"].map(sum) * TOKENS_PER_STEP * lineages["n_params"]).sum()
        ),
        "lineages": [],
    }
    return lineages, curves, pd.DataFrame(final_rows), plan


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lineages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="keep the report here")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    lineages, curves, finals, plan = synthetic_results(args.lineages)
    generate_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.out or Path(tmp) / "report.html"
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            write_report(
                path,
                lineages,
                curves,
                finals,
                plan,
                sweep={"sweep_id": "bench"},
                title="benchmark sweep",
            )
            times.append(time.perf_counter() - t0)
        text = path.read_text(encoding="utf-8")
    import plotly.offline

    js_mb = len(plotly.offline.get_plotlyjs().encode()) / 2**20
    html_mb = len(text.encode()) / 2**20
    result = {
        "n_lineages": int(lineages["lineage_id"].nunique()),
        "n_branches": len(lineages),
        "n_curve_rows": len(curves),
        "n_final_loss_rows": len(finals),
        "generate_s": round(generate_s, 2),
        "report_s_median": round(statistics.median(times), 2),
        "report_s_all": [round(t, 2) for t in times],
        "html_mb": round(html_mb, 2),
        "plotly_js_mb": round(js_mb, 2),
        "figures_and_tables_mb": round(html_mb - js_mb, 2),
        "figures_drawn": text.count('class="lrsweep-figure-json"'),
        "figures_as_notes": text.count('class="lrsweep-figure lrsweep-unavailable"'),
        # OpenBLAS spins its threads: on a loaded 2-core machine the scaling-law fits run up to
        # 6x slower with the default thread count than with OPENBLAS_NUM_THREADS=1.
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "caps": {
            "curve_traces_per_figure": MAX_CURVE_TRACES,
            "points_per_trace": MAX_POINTS_PER_TRACE,
            "heatmap_rows_per_scope": MAX_HEATMAP_ROWS,
            "data_law_fits": MAX_LAW_FITS,
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
