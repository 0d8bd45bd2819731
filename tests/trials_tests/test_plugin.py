"""A workload plugin inside one lineage, no Ray: the loop's guarantees hold for it unchanged.

The plugin is ``examples/plugin_workload`` named by its dotted path (``markov_mlp:MarkovMLP``).
Checked here: parameters refused as a built-in's are, a kill and rerun equals an uninterrupted
run bit for bit (checkpoints and resume), extending the horizons trains only what is missing and
ends equal to a fresh run, the divergence rule ends a diverging plugin lineage, and the dry-run
probe's numbers are the plugin's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from trials.checkpoint import CheckpointStore
from trials.errors import ConfigError
from trials.lineage import run_lineage
from trials.lineage_plan import AveragerPoint, PlanConfig, TrialSetting, plan_lineages
from trials.plugin import PluginError, check_plugin
from trials.sinks import MemorySink
from trials.workloads import build_workload

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin_workload"
PLUGIN = "markov_mlp:MarkovMLP"
AVERAGERS = (AveragerPoint(kind="ema", params={"half_life": 0.1}, label="ema@0.1"),)


@pytest.fixture(autouse=True)
def _importable():
    sys.path.insert(0, str(EXAMPLE))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
    sys.path.remove(str(EXAMPLE))


def lineage(horizons=(30, 60), lr=1e-2, optimizer="adamw", **config):
    setting = TrialSetting(workload=PLUGIN, workload_params={"vocab": 12, "embed": 4, "hidden": 16},
                           optimizer=optimizer, optimizer_params={}, schedule_free=False, schedule="wsd",
                           schedule_params={"cooldown_fraction": 0.25, "cooldown_shape": "1-sqrt", "final_fraction": 0.0},
                           peak_lr=lr, warmup=3, batch_size=4, seed=1, horizons=tuple(horizons))
    lineages, _ = plan_lineages([setting], PlanConfig(averagers=AVERAGERS, **config))
    assert len(lineages) == 1
    return lineages[0]


def rows_of(sink: MemorySink) -> list[tuple]:
    return sorted((r["branch"], r["step"], r["split"], r["weights"], r["loss"], r["lr"]) for r in sink.rows())


def test_plugin_parameters_are_refused_like_a_built_in_workloads():
    with pytest.raises(ConfigError, match=r"workload.vocab must be an integer in \[2, 1024\], got 1"):
        build_workload(PLUGIN, seed=0, batch_size=2, vocab=1)
    with pytest.raises(ConfigError, match=r"workload.vocabs must be a parameter of 'markov_mlp:MarkovMLP': one of"):
        build_workload(PLUGIN, seed=0, batch_size=2, vocabs=4)
    with pytest.raises(PluginError, match=r"plugin 'markov_mlp:Missing': module 'markov_mlp' has no attribute"):
        build_workload("markov_mlp:Missing", seed=0, batch_size=2)


def test_the_probe_reports_the_plugins_own_accounting():
    facts = check_plugin(PLUGIN, vocab=12, embed=4, hidden=16, seq_len=10)
    n = 12 * 4 + (2 * 4 * 16 + 16) + (16 * 12 + 12)  # embedding, hidden layer, output layer
    assert facts == {"n_params": n, "total_params": n, "tokens_per_sample": 8, "flops_per_sample": 6.0 * n * 8,
                     "activation_bytes_per_sample": None}  # the plugin estimates its own activations


def test_a_killed_plugin_lineage_resumes_equal_to_an_uninterrupted_run(tmp_path):
    spec = lineage(checkpoint_every=10, checkpoint_grid=0)
    straight = MemorySink()
    run_lineage(spec, sink=straight)

    class Killed(MemorySink):
        alive = False  # dies writing its third segment

        def segment(self, branch, key, rows):
            if not self.alive and len(self.segments) >= 2:
                raise KeyboardInterrupt("simulated kill")
            super().segment(branch, key, rows)

    ck = CheckpointStore(tmp_path / "ck", spec.lineage_id)
    sink = Killed()
    with pytest.raises(KeyboardInterrupt):
        run_lineage(spec, sink=sink, checkpoints=ck)
    sink.alive = True
    result = run_lineage(spec, sink=sink, checkpoints=ck, stored=sink.stored(ck))  # the rerun
    assert result.resumed_from == 20  # continued from the checkpoint, not from scratch
    assert rows_of(sink) == rows_of(straight)  # exact: same floats


def test_extending_a_plugin_lineage_trains_only_what_is_missing(tmp_path):
    short, longer = lineage(horizons=(30,)), lineage(horizons=(30, 60))
    assert short.lineage_id == longer.lineage_id  # the horizon is not part of the trunk's identity
    ck = CheckpointStore(tmp_path / "ck", short.lineage_id)
    sink = MemorySink()
    run_lineage(short, sink=sink, checkpoints=ck)
    result = run_lineage(longer, sink=sink, checkpoints=ck, stored=sink.stored(ck))
    fresh = MemorySink()
    run_lineage(longer, sink=fresh)
    assert result.run_steps < longer.planned_steps  # the trunk continued; the first cooldown not rerun
    assert rows_of(sink) == rows_of(fresh)


def test_the_divergence_rule_ends_a_diverging_plugin_lineage():
    sink = MemorySink()
    result = run_lineage(lineage(lr=1e4, optimizer="sgd"), sink=sink)
    assert result.status == "diverged"
    trunk = sink.results["trunk"]
    assert trunk["status"] == "diverged" and trunk["max_step"] < 60  # stopped early, rows kept
    assert len([r for r in sink.rows() if r["branch"] == "trunk" and r["split"] == "train"]) == trunk["max_step"]


@pytest.mark.parametrize("shape", [dict(vocab=16, embed=8, hidden=32, seq_len=18),
                                   dict(vocab=64, embed=16, hidden=128, seq_len=66)])
def test_measured_activation_bytes_match_the_plugins_own_count(shape):
    """Without ``activation_bytes`` the probe measures what autograd saves for one sample; the
    example counts the same tensors by hand (context, ReLU output, log-softmax, int64 tokens).
    Counting a tensor twice (the ReLU output is saved by two ops) would be ~30-45% off."""
    from markov_mlp import MarkovMLP

    from trials.workloads import plugin_params
    from trials.workloads.plugin_probe import probe_plugin

    class Measured(MarkovMLP):
        activation_bytes = None  # the probe measures instead

    params = plugin_params(PLUGIN, MarkovMLP.card, shape)
    measured = probe_plugin("measured", Measured, params).activation_bytes_per_sample
    assert measured == pytest.approx(MarkovMLP.activation_bytes(params, 1), rel=0.05)


def test_a_dotted_plugins_folder_is_what_ray_workers_need_on_their_path():
    """``lrsweep run`` hands this folder to an embedded Ray's workers (orchestrator/execution.py)."""
    from trials.workloads.plugin_loader import import_root, load_plugin

    load_plugin(PLUGIN)
    package = Path(sys.modules["markov_mlp"].__file__).resolve()  # .../<folder>/markov_mlp/__init__.py
    assert import_root(PLUGIN) == str(package.parents[1])  # the folder holding the package
    assert import_root("markov_mlp") is None  # an entry-point name: installed, nothing to hand over
    assert import_root("json:JSONDecoder") is None  # the standard library is not a user's folder
