"""CLI error paths: every user error is ONE line on stderr and exit code 2, from one base
exception; anything else is a bug and is not swallowed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_query import build  # the hand-built store of the query tests

from orchestrator import cli
from orchestrator.execution import StaleResultsError
from orchestrator.jobs import ClusterError
from orchestrator.spec import SpecError
from orchestrator.store import QueryError, ResultsStore, StoreError
from trials.errors import ConfigError, LrsweepError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(str(tmp_path / "results"))
    build(s)
    return s


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(err: str) -> str:
    assert err.startswith("lrsweep: error: ") and err.count("\n") == 1, repr(err)
    assert len(err) < 300 and "Traceback" not in err
    return err.removeprefix("lrsweep: error: ").rstrip("\n")


def test_every_user_error_derives_from_one_base():
    for kind in (ConfigError, SpecError, StaleResultsError, StoreError, QueryError, ClusterError):
        assert issubclass(kind, LrsweepError), kind
    assert issubclass(ConfigError, ValueError)  # callers catching ValueError keep working


def test_compact_of_an_unknown_sweep_exits_2(capsys, store):
    code, out, err = run(capsys, "compact", "nosuch", "--store", store.base)
    assert code == 2 and out == ""
    assert one_line(err) == f"sweep_id 'nosuch' is not in results store {store.base!r}; sweeps there: s1"


def test_compact_of_an_empty_store_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "compact", "s1", "--store", str(tmp_path / "none"))
    assert code == 2 and one_line(err).endswith("is empty: no sweep has written results yet")
    assert not (tmp_path / "none").exists()


def test_compact_of_a_known_sweep_says_what_it_merged(capsys, store):
    code, out, _ = run(capsys, "compact", "s1", "--store", store.base)
    assert (code, out) == (0, "compacted s1: 5 curves fragments, 6 runs fragments\n")
    code, out, _ = run(capsys, "compact", "s1", "--store", store.base)
    assert (code, out) == (0, "compacted s1: 0 curves fragments, 0 runs fragments\n")


def test_export_of_an_unknown_branch_exits_2(capsys, store):
    code, _, err = run(capsys, "export", "s1", "cos", "--branch", "h=999", "--store", store.base)
    assert code == 2
    assert one_line(err) == "--branch must be one of ['trunk'] (or a unique prefix), got 'h=999'"


def test_an_unwritable_output_exits_2(capsys, store, tmp_path):
    code, _, err = run(capsys, "export", "s1", "cos", "-o", str(tmp_path / "no" / "x.csv"),
                       "--store", store.base)
    assert code == 2 and "No such file or directory" in one_line(err)


def test_a_long_user_error_is_cut_to_one_short_line(capsys, monkeypatch):
    def fail(args):
        raise StoreError("sweep " + "x" * 100_000 + " is\nbroken")

    monkeypatch.setattr(cli, "cmd_status", fail)
    code, _, err = run(capsys, "status")
    message = one_line(err)
    assert code == 2 and message.startswith("sweep xxx") and message.endswith("x is broken")
    assert "…" in message


def test_a_bug_is_not_turned_into_a_user_error(capsys, monkeypatch):
    def fail(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "cmd_status", fail)
    with pytest.raises(KeyError):
        cli.main(["status"])


def test_cli_subprocess_compact_nosuch(store):
    out = subprocess.run([sys.executable, "-m", "orchestrator", "compact", "nosuch", "--store", store.base],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == "" and one_line(out.stderr).startswith("sweep_id 'nosuch'")


def test_trial_with_a_corrupt_checkpoint_is_one_line_and_never_unpickled(capsys, tmp_path):
    """``lrsweep trial --checkpoint-dir`` over a planted file: one line naming it, exit 2."""
    from trials.__main__ import lineage_from_mapping

    setting = tmp_path / "one.toml"
    setting.write_text('workload = "linreg"\nworkload_params = { dim = 8 }\noptimizer = "sgd"\npeak_lr = 0.05\n'
                       'schedule = "constant"\nwarmup = 0\nbatch_size = 4\nseed = 0\nhorizons = [40]\n')
    spec = lineage_from_mapping(__import__("tomllib").loads(setting.read_text()))
    trunk = tmp_path / "ck" / spec.lineage_id / "checkpoints" / "trunk"
    trunk.mkdir(parents=True)
    (trunk / "0000000032.pt").write_bytes(b"\x80\x04not a checkpoint")
    (trunk / "0000000032.json").write_text(
        json.dumps({"format": 2, "lineage_id": spec.lineage_id, "step": 32, "branch": None, "averagers": []}))
    code, _, err = run(capsys, "trial", str(setting), "--checkpoint-dir", str(tmp_path / "ck"),
                       "-o", str(tmp_path / "c.csv"))
    assert code == 2
    message = one_line(err)
    assert message.startswith("checkpoint ") and "0000000032.pt cannot be used: not a safe lrsweep checkpoint" in message
    assert not (tmp_path / "c.csv").exists()
