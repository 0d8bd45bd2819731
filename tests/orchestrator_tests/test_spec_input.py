"""Hostile or careless sweep files (``orchestrator/spec_input.py``): duplicate YAML keys, alias
bombs, deep nesting, 100,000-character values, names the store would refuse, an empty store.
Every bad file in ``bad_specs/`` goes through the real CLI: exit 2, one line under 300
characters, no traceback, nothing written, Ray never imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.spec import SpecError, load_spec, parse_spec
from orchestrator.spec_input import MAX_YAML_VALUES
from orchestrator.store import ResultsStore, StoreError
from orchestrator.sweep_name import SWEEP_NAME_MAX

HERE = Path(__file__).parent
REPO = HERE.parents[1]
BAD = sorted(p for p in (HERE / "bad_specs").iterdir() if p.suffix in (".toml", ".yaml"))
LONG = "a" * 100_000

BODY = """
[workload]
name = "char_gpt"
sizes = ["nano"]

[[optimizers]]
name = "adamw"
lr = 1e-3

[[schedules]]
name = "cosine"

[horizons]
steps = [100, 200]
"""

MINIMAL = {
    "name": "t",
    "workload": {"name": "char_gpt", "sizes": ["nano"]},
    "optimizers": [{"name": "adamw", "lr": [1e-3]}],
    "schedules": [{"name": "cosine"}],
    "horizons": {"steps": [100, 200]},
}

# 100,000-character values in different places of a sweep file: (file text, field named).
LONG_VALUES = {
    "name": (f'name = "{LONG}"\n{BODY}', "name must be"),
    "key": (f'name = "t"\n{LONG} = 1\n{BODY}', "unknown key"),
    "optimizer": (f'name = "t"\n{BODY}'.replace('name = "adamw"', f'name = "{LONG}"'), "optimizers[0].name"),
    "lr": (f'name = "t"\n{BODY}'.replace("lr = 1e-3", f'lr = "{LONG}"'), "optimizers[0].lr"),
    "store": (f'name = "t"\nstore = "{" " * 100_000}"\n{BODY}', "store must be"),
}


def write_long(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"long_{case}.toml"
    path.write_text(LONG_VALUES[case][0])
    return path


# ---------------------------------------------------------------------------------- lines
@pytest.mark.parametrize("case", sorted(LONG_VALUES))
def test_long_values_are_cut_and_the_line_stays_short(tmp_path, case):
    path = write_long(tmp_path, case)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message and len(message) <= 280
    where = message.split(": ", 1)[0]  # the file, unless the line's length budget cut its middle
    assert (where == str(path) or ("…" in where and str(path).endswith(where.split("…")[1]))) and LONG_VALUES[case][1] in message
    assert "…" in message or case == "store"
    assert info.value.value is not None  # the full value stays available to code


# ---------------------------------------------------------------------------------- YAML
def test_yaml_anchors_within_bounds_still_load(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(textwrap.dedent("""
        name: anchors
        workload: {name: char_gpt, sizes: [nano]}
        optimizers:
          - &base {name: adamw, lr: [0.001, 0.003]}
          - <<: *base
            lr: 0.01
        schedules: [{name: cosine}]
        horizons: {steps: [100, 200]}
    """))
    spec = load_spec(path)
    assert [o.lr for o in spec.optimizers] == [[0.001, 0.003], [0.01]]


def test_a_duplicate_key_deep_inside_is_named_with_its_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: t\nhorizons:\n  steps: [1]\n  steps: [2]\n")
    with pytest.raises(SpecError, match=r"dup\.yaml: duplicate key 'steps' at line 4 \(first at line 3\)$"):
        load_spec(path)


def test_alias_expansion_is_bounded_exactly(tmp_path):
    # root + keys a, b + a's list (1 + 9 strings) + b's list + n aliases of 10 values each
    def text(n: int) -> str:
        return "a: &a [x, x, x, x, x, x, x, x, x]\nb: [" + ", ".join(["*a"] * n) + "]\n"

    most = (MAX_YAML_VALUES - 14) // 10
    ok = tmp_path / "ok.yaml"
    ok.write_text(text(most))  # 14 + 10 * most <= MAX_YAML_VALUES: parsed, then validated
    with pytest.raises(SpecError, match="unknown key 'a' in the sweep file"):
        load_spec(ok)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text(most + 1))
    with pytest.raises(SpecError, match=rf"expand the file to {14 + 10 * (most + 1):,} values"):
        load_spec(bad)


def test_a_large_file_without_aliases_is_not_an_alias_bomb(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nseeds: [" + ", ".join(str(i) for i in range(MAX_YAML_VALUES + 10)) + "]\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "aliases" not in str(info.value) and "workload is required" in str(info.value)


# ---------------------------------------------------------------------------------- names
NAMES = ["q", "quickstart", "my_sweep", "v1.2-b_3", "9lives", "A" * SWEEP_NAME_MAX,
         "A" * (SWEEP_NAME_MAX + 1), "_x", "-x", ".x", "my sweep", "a/b", "a=b", "", "é", LONG]


@pytest.mark.parametrize("name", NAMES, ids=[n[:12] or "empty" for n in NAMES])
def test_the_spec_and_the_store_accept_exactly_the_same_names(tmp_path, name):
    try:
        parse_spec({**MINIMAL, "name": name})
        spec_ok = True
    except SpecError as exc:
        spec_ok = False
        assert str(exc).startswith("name must be") and len(str(exc)) <= 280
    store = ResultsStore(str(tmp_path / "r"))
    try:
        store.write_sweep(name, name=name, spec_text="", plan_json="{}", code_version="t")
        store_ok = True
    except StoreError as exc:
        store_ok = False
        assert str(exc).startswith("sweep_id must be") and len(str(exc)) <= 280
    assert spec_ok == store_ok
    if store_ok:
        assert store.sweep_ids() == [name]


def test_an_underscore_name_runs_through_the_store(tmp_path):
    spec = parse_spec({**MINIMAL, "name": "my_sweep"})
    store = ResultsStore(str(tmp_path / "r"))
    store.write_sweep(spec.name, name=spec.name, spec_text="", plan_json="{}", code_version="t")
    assert store.sweep_ids() == ["my_sweep"]


# ---------------------------------------------------------------------------------- the CLI
HARNESS = textwrap.dedent(
    r"""
    import contextlib, io, json, sys, traceback
    from orchestrator.cli import main

    out = {}
    for spec, store in json.loads(sys.argv[1]):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(["run", spec, "--store", store, "--quiet"])
        except BaseException:
            code, err = "escaped", io.StringIO(traceback.format_exc())
        out[spec] = [code, err.getvalue()]
    out["_ray_imported"] = "ray" in sys.modules
    print(json.dumps(out))
    """
)


def test_every_bad_spec_through_the_cli_is_one_short_line_and_exit_2(tmp_path):
    specs = [*BAD, *(write_long(tmp_path, case) for case in sorted(LONG_VALUES))]
    stores = {str(p): tmp_path / "stores" / p.stem for p in specs}
    args = json.dumps([[spec, str(store)] for spec, store in stores.items()])
    proc = subprocess.run([sys.executable, "-c", HARNESS, args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    assert results.pop("_ray_imported") is False  # Ray never started
    assert len(results) == len(specs) >= 60
    for spec, (code, err) in results.items():
        assert code == 2, f"{spec}: exit {code}: {err[-2000:]}"
        assert err.startswith("lrsweep: error: ") and err.count("\n") == 1, f"{spec}: {err!r}"
        assert len(err) < 300 and "Traceback" not in err, f"{spec}: {err!r}"
        assert not stores[spec].exists(), f"{spec}: wrote {stores[spec]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in tmp_path.glob("long_*.toml"))
