"""Report generation time on synthetic sweeps of the quickstart's size and of ~1,000 lineages.

    python benchmarks/report_generation.py                 # both, JSON
    python benchmarks/report_generation.py --only quickstart --repeat 3
    python benchmarks/report_generation.py --store ./lrsweep-results --sweep quickstart
    python benchmarks/report_generation.py --smoke          # CI: the quickstart-sized sweep only

The *quickstart* sweep has the shape ``examples/quickstart.toml`` produces: one 0.1M-parameter
model, cosine / WSD (1-sqrt) / constant with AdamW and schedule-free AdamW, 2 peak LRs, one seed,
horizons 200/400/800, weights raw, ema@0.1, swa@0.5 (and x), 12 log-spaced eval points plus
every horizon, train rows at every step (12 lineages). The *1,000-lineage* sweep: 3 model sizes
× 6 settings families (cosine — one lineage per horizon; WSD with 1-sqrt and linear cooldowns — a
trunk and one branch per horizon; constant; polynomial; schedule-free AdamW) × peak LRs × 3 seeds
× 4 horizons, 3 weights variants, eval rows every 250 steps, train rows every 40 (a sub-sample:
the exact per-step LR is passed as the store glue rebuilds it); high LRs diverge.

Each report is timed in this process (imports excluded), with the time of each section, and
compared with the issue's 5 s budget for the quickstart. ``--store`` times a real store's sweep
the way ``lrsweep report`` does (the rebuilt LR sequences included).

What the report caps so its size stays sane (see ``analysis.figures``): curve figures draw only
each family's best setting (first seed), at most 80 traces of 300 points each; the regret
heatmap at most 40 candidates per scope (+ each family's best); at most 20 data-law fits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUDGET_S = 5.0  # issue 9: `lrsweep report` for the quickstart in < 5 s


@dataclass(frozen=True)
class Shape:
    """What a synthetic sweep looks like."""

    horizons: tuple[int, ...]
    sizes: dict[str, float]
    seeds: tuple[int, ...]
    families: tuple[tuple[str, str | None, dict], ...]
    weights: tuple[str, ...]
    tokens_per_step: int
    warmup: int
    eval_points: str  # "every:<n>" or "log:<n>" (log-spaced, plus every horizon)
    train_every: int
    lrs: tuple[float, ...] | None = None  # None: geomspace(3e-4, 1e-2) grown to min_lineages


THOUSAND = Shape(
    horizons=(500, 1000, 2000, 4000),
    sizes={"s": 2.0e5, "m": 6.0e5, "l": 2.0e6},
    seeds=(0, 1, 2),
    families=(
        ("cosine", "cosine", {}),
        ("wsd", "wsd", {"cooldown_shape": "1-sqrt"}),
        ("wsd", "wsd", {"cooldown_shape": "linear"}),
        ("constant", "constant", {}),
        ("polynomial", "polynomial", {"gamma": 0.5}),
        ("sf_adamw", None, {}),
    ),
    weights=("raw", "ema@0.05", "swa@0.2"),
    tokens_per_step=2048,
    warmup=50,
    eval_points="every:250",
    train_every=40,
)
QUICKSTART = Shape(
    horizons=(200, 400, 800),
    sizes={"nano": 1.04e5},
    seeds=(0,),
    families=(
        ("cosine", "cosine", {}),
        ("wsd", "wsd", {"cooldown_shape": "1-sqrt"}),
        ("constant", "constant", {}),
        ("sf_adamw", None, {}),
    ),
    weights=("raw", "ema@0.1", "swa@0.5"),
    tokens_per_step=1024,
    warmup=20,
    eval_points="log:12",
    train_every=1,
    lrs=(3e-3, 1e-2),
)


def _multiplier(
    schedule: str | None, params: dict, horizon: int, t: np.ndarray, warmup: int
) -> np.ndarray:
    warm = np.minimum(1.0, (t + 1) / warmup)
    if schedule == "cosine":
        p = np.clip((t - warmup) / (horizon - warmup), 0, 1)
        return np.where(t < warmup, warm, 0.1 + 0.9 * (1 + np.cos(np.pi * p)) / 2)
    if schedule == "wsd":
        start = horizon - round(0.2 * horizon)
        q = np.clip((t - start) / (horizon - start), 0, 1)
        shape = 1 - np.sqrt(q) if params["cooldown_shape"] == "1-sqrt" else 1 - q
        return np.where(t < start, warm, shape)
    if schedule == "polynomial":
        return warm * (1 + np.maximum(t - warmup, 0) / 500) ** -params["gamma"]
    return warm


def _loss(lr: np.ndarray, n_params: float, weights: str, lr_opt: float) -> np.ndarray:
    area = np.cumsum(lr) / 1e-3
    base = 1.6 + 60.0 * n_params**-0.3 + 3.0 * (1.0 + area) ** -0.35
    floor = 0.04 * lr / 1e-3 + 0.5 * np.maximum(np.log(lr.max() / lr_opt), 0) ** 2
    return base + {"raw": 1.0, "x": 0.35}.get(weights.split("@")[0], 0.45) * floor


def _eval_steps(shape: Shape, start: int, stop: int, answers: list[int]) -> np.ndarray:
    kind, n = shape.eval_points.split(":")
    longest = max(shape.horizons)
    if kind == "every":
        grid = set(range(max(start, int(n)), stop + 1, int(n)))
    else:
        grid = {int(x) for x in np.unique(np.geomspace(1, longest, int(n)).round())}
    steps = np.array(
        sorted({s for s in grid if s <= stop} | {h for h in answers if h <= stop}), dtype=int
    )
    return steps[steps > start] if start > 0 else steps


def synthetic_results(
    min_lineages: int = 0, seed: int = 0, shape: Shape = THOUSAND
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, dict]:
    """(lineages, curves, final_losses, plan, lr_sequences) of a synthetic sweep of ``shape``
    with ≥ ``min_lineages`` lineages (the LR grid grows until there are)."""
    rng = np.random.default_rng(seed)
    per_lr = (
        len(shape.sizes)
        * len(shape.seeds)
        * sum(len(shape.horizons) if sched == "cosine" else 1 for _, sched, _ in shape.families)
    )
    lrs = shape.lrs or tuple(np.geomspace(3e-4, 1e-2, max(2, math.ceil(min_lineages / per_lr))))
    lin_rows, curve_parts, final_rows, lr_seqs = [], [], [], {}
    longest = max(shape.horizons)
    tps, warmup = shape.tokens_per_step, shape.warmup
    for size, n_params in shape.sizes.items():
        lr_opt = 3e-3 * (n_params / 2e5) ** -0.3
        for family, schedule, sparams in shape.families:
            weights = shape.weights if schedule else ("x", *shape.weights[1:])
            for peak in lrs:
                for s in shape.seeds:
                    sid = f"{size}-{family}-{json.dumps(sparams, sort_keys=True)}-{peak:.3g}-{s}"
                    setting = dict(
                        sweep_id="bench", workload="shakespeare", model_size=size, n_params=n_params,
                        family=family, optimizer="sf_adamw" if schedule is None else "adamw",
                        optimizer_params="{}", schedule=schedule, schedule_params=json.dumps(sparams),
                        peak_lr=float(peak), warmup=warmup, batch_size=16, seed=s,
                        tokens_per_step=tps, setting_id=sid,
                    )  # fmt: skip
                    if schedule == "cosine":
                        branches = [
                            (f"{sid}-T{h}", "main", None, None, 0, h, h, [h])
                            for h in shape.horizons
                        ]
                    elif schedule == "wsd":
                        fork = {h: h - round(0.2 * h) for h in shape.horizons}
                        branches = [(sid, "trunk", None, None, 0, fork[longest], longest, [])]
                        branches += [
                            (sid, f"h={h}", "trunk", fork[h], fork[h], h, h, [h])
                            for h in shape.horizons
                        ]
                    else:
                        branches = [
                            (sid, "main", None, None, 0, longest, longest, list(shape.horizons))
                        ]
                    diverge = peak > 2.5 * lr_opt and rng.random() < 0.7
                    div_step = int(rng.integers(300, 3000)) if diverge else None
                    for lid, branch, parent, fork_step, start, end, sched_h, answers in branches:
                        lr = peak * _multiplier(schedule, sparams, sched_h, np.arange(end), warmup)
                        if schedule and branch != "trunk":
                            lr_seqs[(lid, branch)] = lr  # what orchestrator.reporting rebuilds
                        stop = end if div_step is None else min(end, div_step)
                        status = "completed" if stop == end else "diverged"
                        lin_rows.append(
                            {
                                **setting, "lineage_id": lid, "branch": branch, "parent": parent,
                                "fork_step": fork_step, "horizons": answers, "max_step": end,
                                "status": status, "error": None if status == "completed" else "loss is nan",
                                "wall_time_s": 0.05 * (stop - start), "steps_trained": stop - start,
                                "tokens_trained": (stop - start) * tps,
                                "flops_trained": 6.0 * n_params * (stop - start) * tps,
                            }
                        )  # fmt: skip
                        train_steps = np.arange(start, stop, shape.train_every)
                        raw = _loss(lr, n_params, "raw", lr_opt)
                        curve_parts.append(
                            pd.DataFrame(
                                {"lineage_id": lid, "branch": branch, "step": train_steps, "split": "train",
                                 "weights": "raw", "lr": lr[train_steps],
                                 "loss": raw[train_steps] + rng.normal(0, 0.02, len(train_steps))}
                            )
                        )  # fmt: skip
                        evals = _eval_steps(shape, start, stop, answers)
                        for w in weights:
                            lw = _loss(lr, n_params, w, lr_opt)
                            if len(evals):
                                curve_parts.append(
                                    pd.DataFrame(
                                        {"lineage_id": lid, "branch": branch, "step": evals, "split": "eval",
                                         "weights": w, "lr": lr[evals - 1],
                                         "loss": lw[evals - 1] + rng.normal(0, 0.003, len(evals))}
                                    )
                                )  # fmt: skip
                            for h in answers:
                                ok = h <= stop
                                final_rows.append(
                                    {**setting, "lineage_id": lid, "branch": branch, "horizon": h, "weights": w,
                                     "status": "completed" if ok else "diverged",
                                     "loss": lw[h - 1] + rng.normal(0, 0.003) if ok else math.nan}
                                )  # fmt: skip
    curves = pd.concat(curve_parts, ignore_index=True)
    curves["sweep_id"] = "bench"
    curves["tokens"] = curves["step"] * tps
    curves["flops"] = np.nan
    for col in ("lineage_id", "branch", "split", "weights"):
        curves[col] = curves[col].astype("category")  # as pyarrow reads dictionary columns
    lineages = pd.DataFrame(lin_rows)
    plan = {
        "planned_tokens": float(lineages["tokens_trained"].sum()),
        "naive_tokens": float(sum(sum(h) for h in lineages["horizons"]) * tps),
        "planned_flops": float(lineages["flops_trained"].sum()),
        "naive_flops": float(
            (6.0 * lineages["horizons"].map(sum) * tps * lineages["n_params"]).sum()
        ),
        "lineages": [],
    }
    return lineages, curves, pd.DataFrame(final_rows), plan, lr_seqs


def _time_report(results, repeat: int) -> dict:
    """Median wall time of a whole report (written to a temp file), and of each section once."""
    from analysis.answer import answer_html
    from analysis.report import _FIGURES, SweepResults, prepare, write_report
    from analysis.results_table import results_rows, results_table_html

    lin, cur, fl, plan, lrs = results
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            write_report(
                path,
                lin,
                cur,
                fl,
                plan,
                sweep={"sweep_id": "bench"},
                title="bench",
                lr_sequences=lrs,
            )
            times.append(time.perf_counter() - t0)
        text = path.read_text(encoding="utf-8")
    sections = {}
    t0 = time.perf_counter()
    d = prepare(SweepResults(lin, cur, fl, plan, None, lrs))
    sections["validate_and_label"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    answer_html(d)
    sections["answer_and_headline_tables"] = time.perf_counter() - t0
    for fig_id, _h, _c, build in _FIGURES:
        t0 = time.perf_counter()
        try:
            build(d)
        except Exception:  # a note in the report; its time still counts
            pass
        sections[fig_id] = time.perf_counter() - t0
    t0 = time.perf_counter()
    results_table_html(results_rows(d.table, d.seeds))
    sections["results_table"] = time.perf_counter() - t0
    import plotly.offline

    js_mb = len(plotly.offline.get_plotlyjs().encode()) / 2**20
    html_mb = len(text.encode()) / 2**20
    return {
        "n_lineages": int(lin["lineage_id"].nunique()),
        "n_branches": len(lin),
        "n_curve_rows": len(cur),
        "n_final_loss_rows": len(fl),
        "report_s_median": round(statistics.median(times), 2),
        "report_s_all": [round(t, 2) for t in times],
        "sections_s": {k: round(v, 3) for k, v in sections.items()},
        "html_mb": round(html_mb, 2),
        "figures_and_tables_mb": round(html_mb - js_mb, 2),
        "figures_drawn": text.count('class="lrsweep-figure-json"'),
        "figures_as_notes": re.findall(r'<p class="note">(Not drawn: [^<]{0,120})', text),
    }


def _store_results(store: str, sweep: str):
    from orchestrator.reporting import load_sweep_results

    r = load_sweep_results(store, sweep)
    return r.lineages, r.curves, r.final_losses, r.plan, r.lr_sequences


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("quickstart", "thousand"), help="run one sweep size")
    parser.add_argument("--lineages", type=int, default=1000, help="at least this many (thousand)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--store", help="also time this store's --sweep, as lrsweep report does")
    parser.add_argument("--sweep", default="quickstart")
    parser.add_argument("--smoke", action="store_true", help="CI: the quickstart-sized sweep only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.only, args.repeat = "quickstart", 1
    out: dict = {"budget_quickstart_s": BUDGET_S}
    runs = []
    if args.only in (None, "quickstart"):
        runs.append(("quickstart_synthetic", lambda: synthetic_results(shape=QUICKSTART)))
    if args.only in (None, "thousand"):
        runs.append(("thousand_lineages", lambda: synthetic_results(args.lineages)))
    if args.store:
        runs.append((f"store:{args.sweep}", lambda: _store_results(args.store, args.sweep)))
    for name, make in runs:
        t0 = time.perf_counter()
        results = make()
        generate = time.perf_counter() - t0
        out[name] = {"generate_or_load_s": round(generate, 2), **_time_report(results, args.repeat)}
    for name in ("quickstart_synthetic", f"store:{args.sweep}"):
        if name in out:
            out[name]["ratio_to_5s_budget"] = round(out[name]["report_s_median"] / BUDGET_S, 3)
    out["blas_threads"] = (
        "pinned to 1 inside every fit (threadpoolctl); environment: "
        + os.environ.get("OPENBLAS_NUM_THREADS", "default")
    )
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
