"""The command line's manners: every option explains itself, ``--version``, and ``plan`` fits
100 columns unless ``--wide``."""

from __future__ import annotations

import argparse
import re

import pytest

from orchestrator import cli


def _walk(parser: argparse.ArgumentParser, path: str = "lrsweep"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_and_argument_has_help_text() -> None:
    missing = [
        f"{path}: {'/'.join(a.option_strings) or a.dest}"
        for path, a in _walk(cli.build_parser())
        if not a.help or a.help == argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
    ]
    assert missing == []
    # the walk reaches every subcommand's options (a walk that saw nothing would pass too)
    seen = {(p, "/".join(a.option_strings)) for p, a in _walk(cli.build_parser())}
    assert ("lrsweep report", "--force") in seen and ("lrsweep plan", "--wide") in seen
    assert len(seen) > 60


def test_version(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"lrsweep {version('lrsweep')}"


def test_plan_fits_100_columns_and_wide_shows_everything(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the default still keeps to 100
    spec = "examples/quickstart.toml"
    assert cli.main(["plan", spec, "--store", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    ids = re.findall(r"│ ([0-9a-f]{8}) ", out)
    assert ids and all("…" not in line for line in out.splitlines() if "│" in line)
    assert cli.main(["plan", spec, "--store", str(tmp_path / "s"), "--wide"]) == 0
    wide = capsys.readouterr().out
    assert "branches" in wide and "stored" in wide and "branches" not in out
