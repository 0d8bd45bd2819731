"""The glue between the store and `analysis` (orchestrator.reporting) and the `lrsweep report`
and `lrsweep fit` commands, on synthetic sweeps written into a real Parquet store."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.reporting import LRSequences
from orchestrator.store import ResultsStore
from tests.analysis_tests._sweep import lr_sequence, make_results

W = 20


def test_lr_sequences_are_rebuilt_exactly_from_the_schedule():
    fl = pd.DataFrame(
        [
            {"setting_id": "c", "lineage_id": "L1", "branch": "main", "schedule": "cosine",
             "schedule_params": json.dumps({"final_fraction": 0.1}), "warmup": W, "peak_lr": 0.01, "horizon": 200},
            {"setting_id": "w", "lineage_id": "L2", "branch": "h=400", "schedule": "wsd",
             "schedule_params": json.dumps({"cooldown_fraction": 0.2, "cooldown_shape": "1-sqrt"}),
             "warmup": W, "peak_lr": 0.003, "horizon": 400},
            {"setting_id": "k", "lineage_id": "L2", "branch": "main", "schedule": "constant",
             "schedule_params": "{}", "warmup": W, "peak_lr": 0.003, "horizon": 200},
            {"setting_id": "k", "lineage_id": "L2", "branch": "main", "schedule": "constant",
             "schedule_params": "{}", "warmup": W, "peak_lr": 0.003, "horizon": 800},
            {"setting_id": "s", "lineage_id": "L3", "branch": "main", "schedule": None,
             "schedule_params": "{}", "warmup": W, "peak_lr": 0.003, "horizon": 800},
        ]
    )  # fmt: skip
    seqs = LRSequences(fl)
    t = np.arange(200)
    # cosine (docs/equations.md §5.3): warmup (t + 1)/W, then f + (1 − f)(1 + cos(π p))/2, p = (t − W)/(T − W)
    p = (t - W) / (200 - W)
    want = 0.01 * np.where(t < W, (t + 1) / W, 0.1 + 0.9 * (1 + np.cos(np.pi * p)) / 2)
    np.testing.assert_allclose(seqs[("c", "L1", "main")], want, rtol=1e-12)
    assert seqs[("L1", "main")] is seqs[("c", "L1", "main")]  # an old store's key finds it too
    # WSD 1-sqrt: S = T − round(0.2 T) = 320; s = 1 − sqrt((t − S)/(T − S)) in the cooldown
    t = np.arange(400)
    q = np.clip((t - 320) / 80, 0, 1)
    want = 0.003 * np.where(t < W, (t + 1) / W, np.where(t < 320, 1.0, 1 - np.sqrt(q)))
    np.testing.assert_allclose(seqs[("w", "L2", "h=400")], want, rtol=1e-12)
    # constant over its longest horizon; schedule-free: no schedule, no sequence
    assert len(seqs[("k", "L2", "main")]) == 800 and seqs[("k", "L2", "main")][-1] == 0.003
    assert ("s", "L3", "main") not in seqs and seqs.get(("s", "L3", "main")) is None
    # the synthetic sweep's own sequences (what the report tests pass) agree with trials
    np.testing.assert_allclose(
        seqs[("w", "L2", "h=400")], lr_sequence("wsd", 0.003, 400, 400), rtol=1e-12
    )


def _physical(branch: str, family: str, horizon: int) -> str:
    """The store's branch name of a curve: a WSD cooldown is its own run, the rest a trunk."""
    if family == "wsd":
        return f"h={horizon}/1-sqrt@{horizon - round(0.2 * horizon)}"
    return "trunk"


def _write_store(root: str, sweep_id: str, shift: float, seeds: tuple[int, ...]) -> None:
    """A synthetic sweep written the way a run writes it (schema 2): physical runs (a constant
    trunk shared by the constant setting and every WSD cooldown, a run per cosine horizon), the
    settings table saying which setting each run answers, and the curve rows of each run once."""
    lin, cur, fl, plan, _ = make_results(seeds=seeds, whole=True, sweep_id=sweep_id, shift=shift)
    store = ResultsStore(root)
    store.write_sweep(sweep_id, name=sweep_id, spec_text=f'name = "{sweep_id}"\n', plan_json=plan,
                      code_version="lrsweep test")  # fmt: skip
    fam = lin.drop_duplicates("setting_id").set_index("setting_id")
    cur = cur.merge(fam[["family", "max_step"]], left_on="setting_id", right_index=True)
    settings, runs, written = [], {}, set()
    for r in lin.to_dict("records"):
        r = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        horizon = int(r["max_step"])
        branch = _physical(r["branch"], r["family"], horizon)
        fork = horizon - round(0.2 * horizon) if r["family"] == "wsd" else None
        settings.append(
            {k: r[k] for k in ("setting_id", "lineage_id", "family", "workload", "model_size",
                               "optimizer", "optimizer_params", "schedule", "schedule_params",
                               "peak_lr", "warmup", "batch_size", "seed", "tokens_per_step")}
            | {"branch": branch, "fork_step": fork, "horizons": list(r["horizons"]), "n_params": int(r["n_params"])}
        )  # fmt: skip
        rule = "constant" if r["family"] in ("wsd", "constant") else (r["schedule"] or r["family"])
        runs[(r["lineage_id"], branch)] = {
            "lineage_id": r["lineage_id"], "branch": branch, "parent": None if fork is None else "trunk",
            "fork_step": fork, "rule": rule, "rule_params": "{}", "cooldown_shape": "1-sqrt" if fork else None,
            "final_fraction": 0.0 if fork else None, "workload": r["workload"], "model_size": r["model_size"],
            "n_params": int(r["n_params"]), "optimizer": r["optimizer"], "optimizer_params": r["optimizer_params"],
            "peak_lr": r["peak_lr"], "warmup": r["warmup"], "batch_size": r["batch_size"], "seed": r["seed"],
            "tokens_per_step": r["tokens_per_step"], "max_step": horizon, "status": r["status"],
            "error": r["error"], "wall_time_s": r["wall_time_s"], "steps_trained": r["steps_trained"],
            "tokens_trained": r["tokens_trained"], "flops_trained": r["flops_trained"], "replayed_steps": 0,
            "finished_at": dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc),
        }  # fmt: skip
        key = (r["lineage_id"], branch)
        if key in written:
            continue
        written.add(key)
        rows = cur.loc[(cur["setting_id"] == r["setting_id"]) & (cur["lineage_id"] == r["lineage_id"])
                       & (cur["branch"] == r["branch"])]  # fmt: skip
        if fork is not None:
            rows = rows.loc[rows["step"] >= fork]
        rows = rows.drop(columns=["sweep_id", "setting_id", "family", "max_step"]).assign(
            branch=branch
        )
        store.write_curves(sweep_id, r["lineage_id"], branch, "0", rows.to_dict("records"))
    store.write_runs(sweep_id, list(runs.values()))
    store.write_settings(sweep_id, settings)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("store") / "results")
    _write_store(root, "s1", 0.0, (0, 1))
    _write_store(root, "s2", 0.02, (0,))
    return root


def test_report_of_one_sweep_prints_its_warnings(store, tmp_path, capsys):
    out = tmp_path / "one.html"
    assert main(["report", "s1", "--store", store, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"report: {out}")
    assert "warning: s1: [shakespeare small] grid edge: " in printed
    assert "widen the peak_lr axis above 0.003" in printed
    html = out.read_text()
    # the curve law ran on the store's curves with the LR rebuilt from each schedule
    assert 'id="fig-curve-law"' in html and "no exact per-step LR" not in html
    assert "lrsweep test" in html  # the code version of the sweep, from the store


def test_report_of_two_sweeps_puts_them_side_by_side(store, tmp_path, capsys):
    for argv in (["report", "s1", "s2"], ["report", "s1", "--compare", "s2"]):
        out = tmp_path / "two.html"
        assert main([*argv, "--store", store, "-o", str(out)]) == 0
        printed = capsys.readouterr().out
        assert printed.startswith(f"report: {out} (2 sweeps side by side)")
        assert "warning: s2: " in printed and "n/a (1 seed)" in printed
        html = out.read_text()
        assert re.findall(r'<section class="compare-sweep" data-sweep="([^"]+)">', html) == [
            "s1",
            "s2",
        ]


def test_report_of_an_unknown_sweep_is_one_line_and_exit_2(store, tmp_path, capsys):
    assert main(["report", "s1", "nope", "--store", store, "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrsweep: error: ") and "'nope'" in err[0]


def test_fit_prints_the_fits_their_flags_and_the_warnings(store, capsys):
    assert main(["fit", "s1", "--store", store, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fits = {(f["family"], f["weights"], f["model_size"]): f for f in out["fits"]}
    ok = fits[("constant", "ema@0.05", "small")]
    assert ok["points"] == 4 and math.isfinite(ok["E"]) and isinstance(ok["flags"], list)
    assert any(w.startswith("[shakespeare small] grid edge") for w in out["warnings"])
    assert main(["fit", "s1", "--store", store]) == 0
    text = capsys.readouterr().out
    assert (
        "data laws L(D) = E + B / D^beta" in text
        and "warning: [shakespeare small] grid edge" in text
    )


def test_report_refuses_a_foreign_file_and_prints_the_answer_as_the_answer(store, tmp_path, capsys):
    from orchestrator.report_output import check_output

    mine = tmp_path / "notes.html"
    mine.write_text("<html>my own notes</html>")
    for argv in (["report", "s1"], ["report", "s1", "s2"], ["report", "s1", "--compare", "s2"]):
        assert main([*argv, "--store", store, "-o", str(mine)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not written by lrsweep" in err[0] and "--force" in err[0]
        assert mine.read_text() == "<html>my own notes</html>"  # nothing written
    assert main(["report", "s1", "--store", store, "-o", str(mine), "--force"]) == 0
    assert '<meta name="generator" content="lrsweep">' in mine.read_text()[:2000]
    check_output(mine)  # now lrsweep's own: replaced without --force
    lines = capsys.readouterr().out.splitlines()
    head = lines.index("answer (s1):")
    answer = []
    for line in lines[head + 1:]:
        if not line.startswith("  "):
            break
        answer.append(line.strip())
    assert answer and re.match(r"(\[[^]]+\] )?(anytime-optimal|best anytime candidate by mean): ", answer[0])
    assert any("best horizon-aware setting: " in a for a in answer)
    assert not any(line.startswith("warning:") and ("anytime-optimal: " in line or "best anytime" in line)
                   for line in lines)
    assert all(line.startswith(("report:", "answer", "  ", "warning: s1: ")) for line in lines)


def test_status_and_fit_fit_100_columns(store, capsys):
    for argv in (["status", "--store", store], ["fit", "s1", "--store", store]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 100, out
    assert main(["status", "--store", store, "--wide"]) == 0
    assert "tokens_trained" in capsys.readouterr().out
