"""A third-party workload plugin end to end, on a real local Ray and the real Parquet store.

``examples/plugin_workload`` (a separate package written from docs/workloads.md) is installed
with pip into a folder of its own (offline: no build isolation, no dependencies), found through
its entry point, swept under constant + WSD + cosine with two averagers by ``lrsweep run``, and
reported by ``lrsweep report``; its WSD fork is compared bit for bit with a straight run; a
``[search]`` over it tunes the plugin like a built-in. The docs page's own example (the
``package.module:Object`` spelling) runs as the page says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orchestrator.planner import plan
from orchestrator.query import final_losses, load_curve_rows, load_lineages, load_runs, load_sweeps
from orchestrator.spec import load_spec
from trials.lineage import _averagers, _build, _evaluate, _train_step, _update_averagers

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin_workload"
DOCS = ROOT / "docs/workloads.md"


# One interpreter, one embedded Ray: `lrsweep run` on the example package's sweep, `lrsweep report`
# on it, then `lrsweep run` on the docs page's example in the folder it was pasted into — each
# through the CLI's own `main`; exit codes and output come back as JSON.
_RUNNER = """
import contextlib, io, json, os, sys
from orchestrator.cli import main
spec, store, html, docs, search = sys.argv[1:6]
out = {}
for key, folder, argv in (("run", None, ["run", spec, "--store", store, "--quiet"]),
                          ("report", None, ["report", "markov-mlp", "--store", store, "-o", html]),
                          ("search", None, ["run", search, "--store", store, "--quiet"]),
                          ("docs", docs, ["run", "bigram.toml", "--quiet"])):
    if folder:
        os.chdir(folder)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    out[key] = {"rc": rc, "stdout": buf.getvalue()}
print(json.dumps(out))
"""


# A search over the plugin: three random trials of peak LR and WSD cooldown fraction, unstopped.
SEARCH = """
[search]
n_trials = 3
sampler = "random"
seed = 1
concurrency = 2
stopping = "none"

[search.space]
lr = { low = 0.003, high = 0.03, log = true }
"schedules.wsd.cooldown_fraction" = { low = 0.1, high = 0.5 }
"""


def _docs_blocks() -> tuple[str, str]:
    text = DOCS.read_text()
    module = re.search(r"A plugin in one file, `bigram.py`.*?```python\n(.*?)```", text, re.S)
    sweep = re.search(r"A sweep over it, `bigram.toml`.*?```toml\n(.*?)```", text, re.S)
    assert module and sweep
    return module.group(1), sweep.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example package pip-installed into its own site folder (a copy: the build leaves
    files next to the sources); on ``sys.path`` here for the in-process checks."""
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(EXAMPLE, work / "src")
    site = work / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(work / "src")],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-3000:]
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))


@pytest.fixture(scope="module")
def swept(installed, tmp_path_factory) -> dict:
    """Both sweeps and the report; PYTHONPATH holds the installed package's site folder and,
    as docs/workloads.md says (`PYTHONPATH=.`), the folder the docs example was pasted into."""
    work = tmp_path_factory.mktemp("sweep")
    docs = work / "docs"
    docs.mkdir()
    module, sweep = _docs_blocks()
    (docs / "bigram.py").write_text(module)
    (docs / "bigram.toml").write_text(sweep)
    spec = work / "sweep.toml"
    shutil.copy(EXAMPLE / "sweep.toml", spec)
    search = work / "search.toml"
    search.write_text(spec.read_text().replace('name = "markov-mlp"', 'name = "markov-mlp-search"') + SEARCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(docs)])}
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(spec), str(work / "store"), str(work / "r.html"),
                           str(docs), str(search)], capture_output=True, text=True, timeout=900, env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"spec": spec, "search_spec": search, "store": work / "store", "html": work / "r.html", "docs_dir": docs,
            **out}


def test_the_installed_plugin_sweeps_like_a_built_in_workload(swept):
    assert swept["run"]["rc"] == 0, swept["run"]
    spec_path, store = swept["spec"], swept["store"]
    spec = load_spec(spec_path)
    the_plan = plan(spec)
    lineages = load_lineages(str(store), "markov-mlp")
    assert set(lineages["status"]) == {"completed"}
    assert set(lineages["workload"]) == {"markov_mlp"} and set(lineages["model_size"]) == {"tiny"}
    assert set(lineages["family"]) == set(lineages["schedule"]) == {"constant", "wsd", "cosine"}
    # constant and WSD share one trunk; cosine needs one lineage per horizon: 1 + 2 lineages
    assert len(the_plan.lineages) == 3 and lineages["lineage_id"].nunique() == 3
    # every update of every trunk and cooldown stored exactly once
    runs = load_runs(str(store), "markov-mlp")
    train = load_curve_rows(str(store), "markov-mlp", split="train")
    assert not train.duplicated(["lineage_id", "branch", "step"]).any()
    assert len(train) == int(runs["steps_trained"].sum()) == the_plan.planned_steps
    # the plugin's own accounting reached the store: vocab 16, embed 8, hidden 32
    n = 16 * 8 + (2 * 8 * 32 + 32) + (32 * 16 + 16)
    assert set(runs["n_params"]) == {n} and set(runs["tokens_per_step"]) == {8 * 16}
    # both averagers ride along: EMA everywhere, the SWA window at each horizon
    fl = final_losses(str(store), "markov-mlp")
    assert {"raw", "ema@0.1", "swa@0.5"} <= set(fl["weights"])
    assert set(fl["horizon"]) == {40, 80}
    # the sweep's provenance names the distribution and version that provided the plugin
    assert _stored_plan(store, "markov-mlp")["workload_source"] == {
        "name": "markov_mlp", "distribution": "lrsweep-markov-mlp", "version": "0.1.0"}


def _stored_plan(store, sweep: str) -> dict:
    sweeps = load_sweeps(str(store)).set_index("sweep_id")
    return json.loads(sweeps.loc[sweep, "plan_json"])


def _straight_wsd(spec, horizon: int, fork: int) -> dict[tuple[int, str], float]:
    """The WSD setting trained straight to ``horizon``: no trunk, no fork, no checkpoint."""
    c = _build(spec)
    averagers = _averagers(c, spec, [a.key for a in spec.averagers if a.eval_at is None])
    branch = next(b for b in spec.branches if b.end == horizon)
    out = {}
    for t in range(horizon):
        mult = branch.multiplier(t) if t >= fork else (min(1.0, (t + 1) / spec.warmup) if spec.warmup else 1.0)
        _train_step(c, t, mult)
        _update_averagers(c, averagers, t + 1)
        labels = ["raw"] + [averagers.weights_label(k) for k in averagers.labels if averagers.is_ready(k, t + 1)]
        for row in _evaluate(c, spec, averagers, "ref", t + 1, 0.0, labels):
            out[(t + 1, row["weights"])] = row["loss"]
    return out


def test_a_wsd_fork_of_the_plugin_equals_its_straight_run_bit_for_bit(swept):
    spec_path, store = swept["spec"], swept["store"]
    torch.set_num_threads(1)
    trunk = next(lin for lin in plan(load_spec(spec_path)).lineages if lin.branches)
    rows = load_curve_rows(str(store), "markov-mlp", split="eval", lineage_id=trunk.lineage_id)
    stored = {(r.branch, int(r.step), r.weights): r.loss for r in rows.itertuples()}
    branch = max(trunk.branches, key=lambda b: b.end)
    ref = _straight_wsd(trunk, branch.end, branch.fork_step)
    compared = 0
    for (step, weights), loss in ref.items():
        where = "trunk" if step <= branch.fork_step else branch.name
        if (where, step, weights) in stored:
            assert stored[(where, step, weights)] == loss, (where, step, weights)  # exact, not approximate
            compared += 1
    assert (branch.name, branch.end, "raw") in stored and compared >= 8


def test_lrsweep_report_reads_the_plugin_sweep(swept):
    assert swept["report"]["rc"] == 0 and swept["report"]["stdout"].startswith("report: "), swept["report"]
    html = swept["html"].read_text()
    assert "sweep markov-mlp · 3 lineages" in html  # what it read: the sweep's three lineages
    findings = html[html.index('id="findings"'):][:4000]
    # the answer names the only horizon-free family as the anytime candidate, with its LR
    assert "best anytime candidate by mean: constant lr=0.01" in findings


def test_the_docs_example_runs_as_written_with_a_dotted_name(swept):
    """docs/workloads.md's bigram.py and bigram.toml, pasted into a folder and run as the page
    says: `package.module:Object` resolves in the driver and in the Ray workers."""
    assert swept["docs"]["rc"] == 0, swept["docs"]
    assert "2 lineages planned" in swept["docs"]["stdout"]  # as the page's `lrsweep plan` comment says
    lineages = load_lineages(str(swept["docs_dir"] / "lrsweep-results"), "bigram-demo")
    assert set(lineages["status"]) == {"completed"} and set(lineages["workload"]) == {"bigram:Bigram"}
    assert set(lineages["model_size"]) == {"small", "large"}
    assert set(lineages["branch"]) == {"trunk", "h=100/1-sqrt@80", "h=200/1-sqrt@160"}  # WSD forks of each trunk
    # a plugin from the user's own folder is recorded by that folder, with no distribution
    source = _stored_plan(swept["docs_dir"] / "lrsweep-results", "bigram-demo")["workload_source"]
    assert source == {"name": "bigram:Bigram", "distribution": None, "version": None,
                      "path": str(swept["docs_dir"].resolve())}


def test_a_search_tunes_the_plugin_like_a_built_in_workload(swept):
    """``[search]`` over the plugin: each trial's sampled setting is trained through the plugin to
    every horizon and stored once, under the schedule and peak LR the sampler chose."""
    from orchestrator.search.study import open_studies

    assert swept["search"]["rc"] == 0, swept["search"]
    store = str(swept["store"])
    (study,) = open_studies(load_spec(swept["search_spec"]), store).values()
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    fl = final_losses(store, "markov-mlp-search")
    lineages = load_lineages(store, "markov-mlp-search")
    assert set(lineages["workload"]) == {"markov_mlp"} and set(lineages["status"]) == {"completed"}
    train = load_curve_rows(store, "markov-mlp-search", split="train")
    assert not train.duplicated(["lineage_id", "branch", "step"]).any()
    for t in trials:
        mine = fl[fl["setting_id"].isin(t.user_attrs["lrsweep.setting_ids"]) & (fl["weights"] == "raw")]
        (schedule,) = set(mine["schedule"])
        # a trial picks one of the grid's schedules; the cooldown fraction is asked only for WSD
        assert 0.003 <= t.params["lr"] <= 0.03 and set(mine["peak_lr"]) == {t.params["lr"]}
        assert schedule in t.params["grid_point"]
        assert ("schedules.wsd.cooldown_fraction" in t.params) == (schedule == "wsd")
        assert set(mine["status"]) == {"completed"} and set(mine["horizon"]) == {40, 80}
