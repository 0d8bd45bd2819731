"""Equal tuning budgets and warm starts, end to end on a real local Ray over linreg:

- ``[search] per = "family"`` runs one study per family with the same ``n_trials`` each; each
  study's tuned optimum is stored (``final_losses``) at every horizon with the value it was told;
  the search phase prints progress lines; a rerun trains nothing; changing ``per`` is refused;
- ``[search] warm_start`` asks another sweep's best settings first and trains none of their steps.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.execution import run_sweep
from orchestrator.query import final_losses, load_runs, load_sweeps
from orchestrator.run_summary import summary_lines
from orchestrator.search.searcher import STEPS, TOKENS, WARM
from orchestrator.search.study import open_studies, study_path
from orchestrator.spec import load_spec

HEAD = """
name = "{name}"
store = "{store}"
batch_size = 4
[workload]
name = "linreg"
sizes = [{{ dim = 20 }}]
[[optimizers]]
name = "sgd"
lr = {lrs}
[[schedules]]
name = "polynomial"
gamma = {gammas}
t0 = 10.0
{extra}
[horizons]
steps = [40, 120]
"""
SEARCH = """
[search]
n_trials = {n}
sampler = "random"
seed = 2
stopping = "none"
{more}
[search.space]
lr = {{ low = 0.05, high = 0.8, log = true }}
"schedules.polynomial.gamma" = {{ low = 0.0, high = 1.0 }}
"""
CONSTANT = '[[schedules]]\nname = "constant"'


@pytest.fixture(scope="module", autouse=True)
def ray_once():
    """One embedded Ray for the module, shut down at the end (ours only)."""
    import ray

    from orchestrator.ray_local import init_ray

    started = not ray.is_initialized()
    init_ray(None)
    yield
    if started:
        ray.shutdown()


def write(tmp_path: Path, name: str, *, lrs="0.1", gammas="0.5", extra="", search: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(HEAD.format(name=name, store=tmp_path / "store", lrs=lrs, gammas=gammas, extra=extra) + search)
    return path


def test_one_study_per_family_with_equal_budgets_resumes_and_refuses_a_changed_per(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LRSWEEP_PROGRESS_INTERVAL", "0")  # a progress line at every event
    path = write(tmp_path, "fam", extra=CONSTANT, search=SEARCH.format(n=3, more='per = "family"'))
    outcome = run_sweep(path, progress=True)
    spec, store = load_spec(path), str(tmp_path / "store")
    studies = open_studies(spec, store)
    assert sorted(studies) == ["constant", "polynomial"]
    fl = final_losses(store, "fam")
    for family, study in studies.items():
        trials = study.get_trials()
        # the same budget: n_trials settings each, every one of its own family, all told
        assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
        ids = {sid for t in trials for sid in t.user_attrs["lrsweep.setting_ids"]}
        assert set(fl[fl["setting_id"].isin(ids)]["family"]) == {family}
        # the tuned optimum is stored at both horizons, with the mean loss the study was told
        best = min(trials, key=lambda t: t.value)
        mine = fl[fl["setting_id"] == best.user_attrs["lrsweep.setting_ids"][0]]
        assert sorted(mine["horizon"]) == [40, 120] and set(mine["status"]) == {"completed"}
        assert mine["loss"].mean() == pytest.approx(best.value, rel=1e-12)
        assert outcome.search.studies[family]["best"]["number"] == best.number
        assert outcome.search.studies[family]["budget"] == 3
    assert "gamma" not in str(studies["constant"].trials[0].params)  # a range applies only to its family
    # the report's answer ranks each family's tuned settings: both families are named
    from analysis import loss_table, seed_losses, summary_sentences

    per_family = [s for s in summary_sentences(loss_table(fl), seed_losses(fl)) if s.startswith("best anytime per family")]
    assert len(per_family) == 1 and "constant " in per_family[0] and "polynomial " in per_family[0], per_family
    # the answer names both tuned optima, each with its budget; grid and search counted apart
    lines = summary_lines(outcome)
    assert lines[1].startswith("grid: 2 lineages planned, 0 already done, 2 completed (240 steps, 960 tokens")
    assert lines[2].startswith(f"search: 6 trials (6 complete); 6 jobs ({6 * 120} steps, {6 * 120 * 4 / 1000:.3g}k tokens")
    for family in ("constant", "polynomial"):
        assert sum(line.startswith(f"best {family}: trial ") and "[budget 3 trials" in line for line in lines) == 1
    # progress lines of the search phase: waves, trials asked, best so far, tokens
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lrsweep search: ")]
    assert any("1 running" in line for line in err), err[-3:]
    last = err[-1]
    assert last.startswith("lrsweep search: 6/6 trials asked, 0 running, 6 complete, 0 stopped, 2.88k tokens"), last
    best = {f: f"{outcome.search.studies[f]['best']['value']:.4g}" for f in studies}
    assert f"constant: wave 3, 3/3 asked, best {best['constant']}" in last and "ETA 0s" in last
    assert f"polynomial: wave 3, 3/3 asked, best {best['polynomial']}" in last

    # a rerun finds every study finished: nothing is trained, no job runs
    runs_before = load_runs(store, "fam").sort_values(["lineage_id", "branch"]).reset_index(drop=True)
    again = run_sweep(path, progress=False)
    assert (again.ran, again.search.jobs_run, again.search.steps_trained) == (0, 0, 0)
    runs_after = load_runs(store, "fam").sort_values(["lineage_id", "branch"]).reset_index(drop=True)
    assert runs_after[["lineage_id", "branch", "steps_trained", "finished_at"]].equals(
        runs_before[["lineage_id", "branch", "steps_trained", "finished_at"]])

    # changing `per` under the stored search: one line, exit 2, nothing written
    journal = study_path(store, "fam").read_bytes()
    spec_text = load_sweeps(store).set_index("sweep_id").loc["fam", "spec_text"]
    path.write_text(path.read_text().replace('per = "family"', 'per = "optimizer"'))
    out = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("lrsweep: error: search must be the study of this [search] section"), out.stderr
    assert study_path(store, "fam").read_bytes() == journal
    assert load_sweeps(store).set_index("sweep_id").loc["fam", "spec_text"] == spec_text


def test_a_warm_start_asks_the_other_sweeps_best_settings_first_and_retrains_none_of_their_steps(tmp_path):
    pilot = write(tmp_path, "pilot", lrs="[0.1, 0.3, 0.6]", gammas="[0.5, 0.8]")
    run_sweep(pilot, progress=False)
    store = str(tmp_path / "store")
    fl = final_losses(store, "pilot")
    means = fl[fl["weights"] == "raw"].groupby(["peak_lr", "schedule_params"])["loss"].mean().sort_values()
    top = [(lr, __import__("json").loads(sp)["gamma"], loss) for (lr, sp), loss in means.iloc[:2].items()]
    # its grid point (lr 0.05) is not one of the pilot's: only what is new trains
    path = write(tmp_path, "warm", lrs="0.05", search=SEARCH.format(n=1, more='warm_start = "pilot"\nwarm_start_k = 2'))
    outcome = run_sweep(path, progress=False)
    (study,) = open_studies(load_spec(path), store).values()
    trials = study.get_trials()
    warm = [t for t in trials if WARM in t.user_attrs]
    # the pilot's two best settings, asked first, told the pilot's own mean losses
    assert [(t.params["lr"], t.params["schedules.polynomial.gamma"]) for t in warm] == [(lr, g) for lr, g, _ in top]
    assert [t.number for t in warm] == [0, 1]
    for t, (_, _, loss) in zip(warm, top, strict=True):
        assert t.state.name == "COMPLETE" and t.value == pytest.approx(loss, rel=1e-12)
        assert (t.user_attrs[STEPS], t.user_attrs[TOKENS]) == (0, 0)  # nothing retrained
    # the one budgeted trial trained its 120 steps, and nothing else did
    assert len(trials) == 3 and outcome.search.steps_trained == 120
    assert outcome.search.studies[""]["warm_starts"] == 2
    runs = load_runs(store, "warm")
    reused = runs[runs["lineage_id"].isin(set(load_runs(store, "pilot")["lineage_id"]))]
    assert len(reused) == 2 and (reused["steps_trained"] == 0).all() and (reused["max_step"] == 120).all()
    assert runs["steps_trained"].sum() == 120 + 120  # the warm sweep's grid point + its one new trial
