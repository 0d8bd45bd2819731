"""Synthetic ``final_losses`` frames with the store's columns (issue 7's data contract), for
tests whose answers are known by hand."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

TOKENS_PER_STEP = 1000
N_PARAMS = 5000.0  # 20·N = 1e5 tokens = 100 steps: horizons 100, 200, 400 are 1, 2, 4× Chinchilla

_SCHEDULE_FREE = {"sf_adamw", "sf_sgd", "sf_adamw_refined", "sf_normuon", "schedulefree_plus"}


def rows(
    family: str,
    lr: float,
    weights: str,
    losses: dict[int, list[float]],
    *,
    schedule_params: dict | None = None,
    optimizer_params: dict | None = None,
    warmup: int = 10,
    status: str | None = None,
    model_size: str = "s",
    n_params: float = N_PARAMS,
) -> list[dict]:
    """One row per (horizon, seed): ``losses[horizon][seed]``; NaN is a divergence unless a
    ``status`` is given. The schedule is the family unless it is a schedule-free optimizer."""
    sf = family in _SCHEDULE_FREE
    sparams = json.dumps(schedule_params or {}, sort_keys=True)
    oparams = json.dumps(optimizer_params or {}, sort_keys=True)
    out = []
    for horizon, per_seed in losses.items():
        for seed, loss in enumerate(per_seed):
            setting = f"{family}|{sparams}|{oparams}|{lr}|{warmup}|{seed}|{model_size}"
            sid = hashlib.sha1(setting.encode()).hexdigest()[:12]
            aware = family in ("cosine", "linear")
            lineage = f"{sid}-T{horizon}" if aware else sid
            branch = f"h={horizon}" if family == "wsd" else "main"
            out.append(
                {
                    "sweep_id": "synthetic",
                    "setting_id": sid,
                    "lineage_id": lineage,
                    "branch": branch,
                    "horizon": horizon,
                    "tokens": horizon * TOKENS_PER_STEP,
                    "weights": weights,
                    "loss": loss,
                    "flops": 6.0 * n_params * horizon * TOKENS_PER_STEP,
                    "status": status or ("completed" if np.isfinite(loss) else "diverged"),
                    "family": family,
                    "workload": "w",
                    "model_size": model_size,
                    "n_params": n_params,
                    "optimizer": family if sf else "adamw",
                    "optimizer_params": oparams,
                    "schedule": None if sf else family,
                    "schedule_params": sparams,
                    "peak_lr": lr,
                    "warmup": warmup,
                    "batch_size": 8,
                    "seed": seed,
                    "tokens_per_step": TOKENS_PER_STEP,
                    "parent": "trunk" if family == "wsd" else None,
                    "fork_step": int(0.8 * horizon) if family == "wsd" else None,
                }
            )
    return out


def frame(*parts: list[dict]) -> pd.DataFrame:
    """A final_losses frame from :func:`rows` lists."""
    return pd.DataFrame([r for part in parts for r in part])
