"""Search vs grid: lineages and tokens to come within 1% of the grid's best, and sampler overhead.

For linreg and a tiny char_gpt (nano), side by side in one run on one local Ray:

- **grid** (the baseline): a dense peak LR × polynomial gamma grid, every lineage to every horizon;
  its best mean loss over the horizons is the target;
- **search + halving**: a seeded TPE search over the same box, judged at horizon rungs;
- **search, no stopping**: the same search, every trial to its last horizon.

Both searches get the same generous budget of trials; what is compared is what each had spent
(lineages, tokens) when a trial first came within 1% of the grid's best (in trial order;
``null`` if none did), and in total, with ratios to the grid.
Then the sampler's overhead per trial (ask + tell on the study's journal, no training) for every
sampler, against the mean training time of a linreg trial.

**Equal budgets** (``equal_budget`` per workload): two families, polynomial (peak LR × gamma) and
WSD (peak LR × cooldown fraction), each with its own dense grid (its best mean loss is that
family's target), searched two ways with the same total budget: one **shared** study of
``2n`` trials (the family a categorical choice) against ``[search] per = "family"``, two studies
of ``n`` trials each. Per family: how many trials it got, its best against its grid optimum, and
the search tokens spent when one of its trials first came within 1% of it (``null``: never).

    python benchmarks/search.py             # ~25 min on 2 busy cores; prints JSON
    python benchmarks/search.py --quick     # linreg only, a 5x5 grid, 12 trials
    python benchmarks/search.py --smoke     # linreg rows at toy sizes (the CI check)
    python benchmarks/search.py --equal-budget   # only the equal-budget rows, both workloads
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.execution import run_sweep  # noqa: E402
from orchestrator.query import final_losses, load_runs  # noqa: E402
from orchestrator.search.study import open_study  # noqa: E402
from orchestrator.spec import load_spec  # noqa: E402

WORKLOADS = {
    "linreg": {
        "head": 'batch_size = 8\n[workload]\nname = "linreg"\nsizes = [{ dim = 100 }]\n'
                '[[optimizers]]\nname = "sgd"\nlr = LRS\n',
        "horizons": [100, 300, 1000], "lr": (0.05, 2.0), "n_lr": 7, "n_gamma": 7, "n_trials": 40,
    },
    "chargpt": {
        "head": 'batch_size = 16\n[workload]\nname = "char_gpt"\nsizes = ["nano"]\n'
                '[[optimizers]]\nname = "adamw"\nlr = LRS\n[eval]\nbatches = 2\n',
        "horizons": [40, 120, 360], "lr": (1e-3, 3e-2), "n_lr": 5, "n_gamma": 5, "n_trials": 24,
    },
}
TAIL = '[[schedules]]\nname = "polynomial"\ngamma = GAMMAS\nt0 = 10.0\n[horizons]\nsteps = HORIZONS\n'
SEARCH = ('[search]\nn_trials = {n}\nsampler = "tpe"\nseed = 0\nobjective = "mean"\nstopping = "{stopping}"\n'
          '[search.space]\nlr = {{ low = {lo}, high = {hi}, log = true }}\n'
          '"schedules.polynomial.gamma" = {{ low = 0.0, high = 1.0 }}\n')


WSD = '[[schedules]]\nname = "wsd"\ncooldown_fraction = FRACTIONS\n'
SHARED = ('[search]\nn_trials = {n}\nsampler = "tpe"\nseed = 0\nobjective = "mean"\n{per}'
          '[search.space]\nlr = {{ low = {lo}, high = {hi}, log = true }}\n'
          '"schedules.polynomial.gamma" = {{ low = 0.0, high = 1.0 }}\n'
          '"schedules.wsd.cooldown_fraction" = {{ low = 0.05, high = 0.5 }}\n')


def spec_text(name: str, store: Path, cfg: dict, lrs: list[float], gammas: list[float], search: str = "",
              fractions: list[float] | None = None) -> str:
    head = cfg["head"].replace("LRS", json.dumps(lrs))
    tail = TAIL.replace("GAMMAS", json.dumps(gammas)).replace("HORIZONS", json.dumps(cfg["horizons"]))
    if fractions is not None:  # a WSD family beside the polynomial one
        tail = WSD.replace("FRACTIONS", json.dumps(fractions)) + tail
    return f'name = "{name}"\nstore = "{store}"\n{head}{tail}{search}'


def run_grid(tmp: Path, wl: str, cfg: dict) -> dict:
    lo, hi = cfg["lr"]
    lrs = [lo * (hi / lo) ** (i / (cfg["n_lr"] - 1)) for i in range(cfg["n_lr"])]
    gammas = [i / (cfg["n_gamma"] - 1) for i in range(cfg["n_gamma"])]
    path = tmp / f"{wl}-grid.toml"
    path.write_text(spec_text(f"{wl}-grid", tmp / "store", cfg, lrs, gammas))
    began = time.perf_counter()
    run_sweep(path, progress=False)
    wall = time.perf_counter() - began
    fl = final_losses(str(tmp / "store"), f"{wl}-grid")
    fl = fl[fl["weights"] == "raw"]
    means = fl.groupby("setting_id")["loss"].mean()  # NaN (diverged) never wins
    runs = load_runs(str(tmp / "store"), f"{wl}-grid")
    return {"lineages": int(runs["lineage_id"].nunique()), "tokens": int(runs["tokens_trained"].sum()),
            "best": float(means.min()), "wall_s": round(wall, 1)}


def run_search(tmp: Path, wl: str, cfg: dict, stopping: str, target: float) -> dict:
    lo, hi = cfg["lr"]
    name = f"{wl}-search-{stopping}"
    path = tmp / f"{name}.toml"
    search = SEARCH.format(n=cfg["n_trials"], stopping=stopping, lo=lo, hi=hi)
    # the grid part of a search sweep: one point (the box's geometric centre), counted too
    path.write_text(spec_text(name, tmp / "store", cfg, [math.sqrt(lo * hi)], [0.5], search))
    began = time.perf_counter()
    outcome = run_sweep(path, progress=False)
    wall = time.perf_counter() - began
    runs = load_runs(str(tmp / "store"), name)
    spec = load_spec(path)
    study = open_study(spec, str(tmp / "store"))
    trials = sorted((t for t in study.get_trials() if t.params), key=lambda t: t.number)
    grid_tokens = int(runs["tokens_trained"].sum()) - outcome.search.tokens_trained
    reached, tokens, lineages, best = None, grid_tokens, 1, math.inf
    for t in trials:
        tokens += int(t.user_attrs.get("lrsweep.tokens", 0))
        lineages += 1  # a polynomial setting is one lineage
        if t.state.name == "COMPLETE":
            best = min(best, float(t.value))
        if reached is None and best <= target * 1.01:
            reached = {"trial": t.number, "lineages": lineages, "tokens": tokens}
    return {"lineages": int(runs["lineage_id"].nunique()), "tokens": int(runs["tokens_trained"].sum()),
            "best": best, "best_vs_grid": round(best / target, 4), "to_within_1pct": reached,
            "trials": outcome.search.trials, "jobs": outcome.search.jobs_run, "wall_s": round(wall, 1)}


def family_grid_best(tmp: Path, wl: str, cfg: dict) -> dict:
    """Each family's dense grid (polynomial: LR x gamma, WSD: LR x cooldown fraction) in one sweep;
    per family its best mean loss over the horizons (raw weights) and its tokens."""
    lo, hi = cfg["lr"]
    lrs = [lo * (hi / lo) ** (i / (cfg["n_lr"] - 1)) for i in range(cfg["n_lr"])]
    gammas = [i / (cfg["n_gamma"] - 1) for i in range(cfg["n_gamma"])]
    fractions = [0.05 + 0.45 * i / (cfg["n_gamma"] - 1) for i in range(cfg["n_gamma"])]
    name = f"{wl}-families"
    path = tmp / f"{name}.toml"
    path.write_text(spec_text(name, tmp / "store", cfg, lrs, gammas, fractions=fractions))
    run_sweep(path, progress=False)
    fl = final_losses(str(tmp / "store"), name)
    fl = fl[fl["weights"] == "raw"]
    means = fl.groupby(["family", "setting_id"])["loss"].mean()
    return {fam: float(means.loc[fam].min()) for fam in ("polynomial", "wsd")}


def equal_budget(tmp: Path, wl: str, cfg: dict, target: dict, per: bool) -> dict:
    """A shared study of 2n trials, or one study of n per family (``per``), against each family's grid."""
    from orchestrator.search.study import open_studies

    lo, hi = cfg["lr"]
    n = cfg["n_trials"] // 2
    name = f"{wl}-{'per-family' if per else 'shared'}"
    path = tmp / f"{name}.toml"
    search = SHARED.format(n=n if per else 2 * n, per='per = "family"\n' if per else "", lo=lo, hi=hi)
    path.write_text(spec_text(name, tmp / "store", cfg, [math.sqrt(lo * hi)], [0.5], search, fractions=[0.2]))
    began = time.perf_counter()
    outcome = run_sweep(path, progress=False)
    wall = time.perf_counter() - began
    families: dict[str, dict] = {}
    for group, study in open_studies(load_spec(path), str(tmp / "store")).items():
        tokens = 0  # per-family: the family's own study's tokens; shared: the one study's, in trial order
        for t in sorted((t for t in study.get_trials() if t.params), key=lambda t: t.number):
            fam = group or ("wsd" if "schedule=wsd" in str(t.params.get("grid_point")) else "polynomial")
            row = families.setdefault(fam, {"trials": 0, "best": math.inf, "to_within_1pct": None})
            tokens += int(t.user_attrs.get("lrsweep.tokens", 0))
            row["trials"] += 1
            if t.state.name == "COMPLETE":
                row["best"] = min(row["best"], float(t.value))
            if row["to_within_1pct"] is None and row["best"] <= target[fam] * 1.01:
                row["to_within_1pct"] = {"trial": t.number, "tokens": tokens}
    for fam, row in families.items():
        row["best_vs_grid"] = round(row["best"] / target[fam], 4) if math.isfinite(row["best"]) else None
        row["best"] = row["best"] if math.isfinite(row["best"]) else None
    return {"n_trials": 2 * n, "tokens": outcome.search.tokens_trained, "families": families,
            "wall_s": round(wall, 1)}


def sampler_overhead(tmp: Path, n: int = 30) -> dict:
    """ms per trial of ask + tell through the driver's path (fresh sampler per ask, journal)."""
    import optuna

    from orchestrator.search.space import SearchSpace
    from orchestrator.search.study import _storage, sampler_for, study_path
    from orchestrator.spec import parse_spec

    out = {}
    for sampler in ("tpe", "random", "cmaes", "gp", "nsga2"):
        data = {"name": f"ovh-{sampler}", "workload": {"name": "linreg", "sizes": [{"dim": 10}]},
                "optimizers": [{"name": "sgd", "lr": 0.1}],
                "schedules": [{"name": "polynomial", "gamma": 0.5, "t0": 10.0}], "horizons": {"steps": [10, 30]},
                "search": {"sampler": sampler, "n_trials": n, "seed": 0,
                           "space": {"lr": {"low": 1e-3, "high": 1.0, "log": True},
                                     "schedules.polynomial.gamma": {"low": 0.0, "high": 1.0}}}}
        sweep = parse_spec(data)
        store = str(tmp / "ovh")
        storage = _storage(study_path(store, sweep.name))
        study = open_study(sweep, store, storage=storage)
        space = SearchSpace(sweep)
        began = time.perf_counter()
        for number in range(n):
            asking = optuna.load_study(study_name=study.study_name, storage=storage, sampler=sampler_for(sweep, number))
            trial = asking.ask()
            p = space.suggest(trial)
            asking.tell(trial, (math.log10(p["lr"]) + 1) ** 2 + (p["schedules.polynomial.gamma"] - 0.5) ** 2)
        out[sampler] = round(1000 * (time.perf_counter() - began) / n, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="linreg only, a 5x5 grid, 12 trials")
    ap.add_argument("--smoke", action="store_true", help="linreg rows at toy sizes (the CI check)")
    ap.add_argument("--equal-budget", action="store_true",
                    help="only the equal-budget rows (family grids, shared vs per-family studies)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from orchestrator.ray_local import init_ray

    init_ray(None)
    result: dict = {"workloads": {}}
    with tempfile.TemporaryDirectory(prefix="lrsweep-bench-search-") as d:
        tmp = Path(d)
        for wl, cfg in WORKLOADS.items():
            if (args.quick or args.smoke) and wl != "linreg":
                continue
            if args.quick:
                cfg = {**cfg, "n_lr": 5, "n_gamma": 5, "n_trials": 12}
            if args.smoke:
                cfg = {**cfg, "n_lr": 2, "n_gamma": 2, "n_trials": 2, "horizons": [4, 12]}
            row: dict = {}
            if not args.equal_budget:
                row["grid"] = grid = run_grid(tmp, wl, cfg)
            for stopping in () if args.equal_budget else ("halving", "none"):
                s = run_search(tmp, wl, cfg, stopping, grid["best"])
                s["tokens_vs_grid"] = round(s["tokens"] / grid["tokens"], 3)
                s["lineages_vs_grid"] = round(s["lineages"] / grid["lineages"], 3)
                if s["to_within_1pct"]:
                    s["to_within_1pct"]["tokens_vs_grid"] = round(s["to_within_1pct"]["tokens"] / grid["tokens"], 3)
                    s["to_within_1pct"]["lineages_vs_grid"] = round(s["to_within_1pct"]["lineages"] / grid["lineages"], 3)
                row[f"search_{stopping}"] = s
            target = family_grid_best(tmp, wl, cfg)
            shared, per = equal_budget(tmp, wl, cfg, target, per=False), equal_budget(tmp, wl, cfg, target, per=True)
            per["tokens_vs_shared"] = round(per["tokens"] / shared["tokens"], 3) if shared["tokens"] else None
            row["equal_budget"] = {"grid_best": target, "shared": shared, "per_family": per}
            result["workloads"][wl] = row
        if args.equal_budget:
            print(json.dumps(result, indent=2, default=str))
            return
        lin = result["workloads"]["linreg"]["search_none"]
        per_trial_s = lin["wall_s"] / max(1, sum(lin["trials"].values()))
        ovh = sampler_overhead(tmp, n=4 if args.smoke else 30)
        result["sampler_overhead_ms_per_trial"] = ovh
        result["sampler_overhead_vs_linreg_trial_wall"] = {k: round(v / 1000 / per_trial_s, 4) for k, v in ovh.items()}
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
