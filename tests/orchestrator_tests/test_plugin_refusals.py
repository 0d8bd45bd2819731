"""A broken workload plugin is refused by `lrsweep plan` and `lrsweep run` in one line naming the
plugin and what is wrong: exit code 2, nothing written, Ray never imported (so never started).

One interpreter (a subprocess) runs both commands through the CLI's own ``main`` on every case,
each in a fresh empty folder, with ``tests/orchestrator_tests/plugins`` on ``PYTHONPATH``; the
tests below read its record, one test per broken part of the contract (docs/workloads.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"

SPEC = """
name = "broken"
batch_size = 4
[workload]
name = "{plugin}"
{extra}
[[optimizers]]
name = "sgd"
lr = 0.1
[[schedules]]
name = "constant"
[horizons]
steps = [10]
"""

# case -> (plugin, extra [workload] keys, what the one line must say)
CASES = {
    "import_error": ("no_such_module_zz:Model", "",
                     "workload.name: plugin 'no_such_module_zz:Model': cannot be imported: ModuleNotFoundError"),
    "missing_attribute": ("broken_plugins:Nope", "",
                          "plugin 'broken_plugins:Nope': module 'broken_plugins' has no attribute 'Nope'"),
    "missing_method": ("broken_plugins:NoEval", "",
                       "plugin 'broken_plugins:NoEval': lacks the method `eval_loss` of the workload contract"),
    "wrong_return_type": ("broken_plugins:LossAsFloat", "",
                          "plugin 'broken_plugins:LossAsFloat': `loss(batch)` must return a torch.Tensor, got float"),
    "history_dependent_batches": ("broken_plugins:StreamingBatches", "",
                                  "plugin 'broken_plugins:StreamingBatches': `batch(5)` differs between a fresh run "
                                  "and a resume at step 5"),
    "card_accepts_what_the_model_refuses": ("broken_plugins:CardTooWide", "sizes = [{ width = 4 }, { width = 3 }]",
                                            "workload.sizes[1]: plugin 'broken_plugins:CardTooWide': refuses {'vocab': 8, 'width': 3}, "
                                            "which its card accepts: ValueError: width must be even, got 3"),
    "unknown_name": ("no_such_plugin", "", "workload.name must be one of ['char_gpt', 'linreg', 'llama'], an installed plugin"),
    # weights, gradients and SGD's state (4 * 72 * 3 = 864 bytes) fit in 1,500 bytes; with the
    # activations measured in the dry run (236 bytes a sample, batch 4) they do not
    "memory_with_measured_activations": ("broken_plugins:Good", "[resources]\nmemory_gb = 1.5e-6",
                                         "batch_size: batch 4 with size width=4 needs about"),
    "card_range": ("broken_plugins:Good", "params = { vocab = 1 }", "workload.params.vocab must be an integer >= 2, got 1"),
}

GOOD_SIZES = "sizes = [{ width = 4 }, { width = 6 }]"

_RUNNER = """
import contextlib, io, json, os, sys, tempfile
from orchestrator.cli import main
base, results = os.getcwd(), {}
for case, (text, commands) in json.loads(sys.argv[1]).items():
    for command in commands:
        with tempfile.TemporaryDirectory(dir=base) as d:
            with open(os.path.join(d, "sweep.toml"), "w") as f:
                f.write(text)
            os.chdir(d)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main([*command.split(), "sweep.toml", "--store", "store"])
                except BaseException as exc:  # noqa: BLE001 - reported, never swallowed
                    rc = repr(exc)
            left = sorted(set(os.listdir(d)) - {"sweep.toml"})
            os.chdir(base)
        results[f"{case} {command}"] = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue(),
                                        "left": left, "ray": "ray" in sys.modules}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("refusals")
    specs = {case: (SPEC.format(plugin=plugin, extra=extra), ["plan", "run"]) for case, (plugin, extra, _) in CASES.items()}
    specs["good"] = (SPEC.format(plugin="broken_plugins:Good", extra=GOOD_SIZES), ["plan --json"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(specs)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_plugin_is_refused_in_one_line_before_anything_runs(refusals, case):
    expected = CASES[case][2]
    for command in ("plan", "run"):
        r = refusals[f"{case} {command}"]
        assert r["rc"] == 2, (command, r)
        lines = r["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lrsweep: error: sweep.toml: "), (command, r)
        assert expected in lines[0], (command, lines[0])
        assert "Traceback" not in r["stderr"] and not r["stdout"], (command, r)
        assert r["left"] == [], (command, r)  # no store, nothing else written
        assert not r["ray"], (command, r)  # ray never imported, so never started


def test_the_working_plugin_passes_the_same_checks(refusals):
    """The baseline the broken ones derive from is accepted (so each refusal is about its flaw)."""
    r = refusals["good plan --json"]
    assert r["rc"] == 0 and not r["stderr"], r
    plan = json.loads(r["stdout"])
    # one constant trunk per size; N = vocab * width (embedding) + width * vocab + vocab (linear)
    assert sorted(row["n_params"] for row in plan["lineages"]) == [8 * 4 * 2 + 8, 8 * 6 * 2 + 8]
    assert r["left"] == []
