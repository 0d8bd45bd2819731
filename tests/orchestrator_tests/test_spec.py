"""Sweep files: every bad file fails with one line naming field and value; good files load."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import yaml

from orchestrator.spec import SpecError, gpt_param_count, load_spec, parse_spec, spec_hash
from tests._examples import load_example
from trials.errors import ConfigError

HERE = Path(__file__).parent
BAD = sorted(p for p in (HERE / "bad_specs").iterdir() if p.suffix in (".toml", ".yaml"))
EXAMPLES = sorted((HERE.parents[1] / "examples").glob("*.toml"))

MINIMAL = {
    "name": "t",
    "warmup": 10,
    "batch_size": 16,
    "workload": {"name": "char_gpt", "sizes": ["nano"]},
    "optimizers": [{"name": "adamw", "lr": [1e-3]}],
    "schedules": [{"name": "cosine"}],
    "horizons": {"steps": [100, 200]},
}


def _expected_fragments(path: Path) -> list[str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return [f.strip() for f in first.removeprefix("# expect: ").split(" | ")]


# ---------------------------------------------------------------------------------- bad files
def test_there_are_at_least_20_bad_files() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_fails_with_one_line_naming_field_and_value(path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for fragment in _expected_fragments(path):
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_spec_error_is_a_config_error_for_the_cli() -> None:
    assert issubclass(SpecError, ConfigError)
    with pytest.raises(ConfigError):
        parse_spec({**MINIMAL, "warmup": -1})


def test_field_and_value_are_attributes() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**MINIMAL, "optimizers": [{"name": "adamw", "lr": [1e-3, -2.0]}]})
    assert info.value.field == "optimizers[0].lr[1]"
    assert info.value.value == -2.0
    assert str(info.value) == "optimizers[0].lr[1] must be > 0, got -2.0"


def test_several_errors_are_still_one_line() -> None:
    with pytest.raises(SpecError, match=r"^warmup must be >= 0, got -1 \(and 1 more error\)$"):
        parse_spec({**MINIMAL, "warmup": -1, "batch_size": 0})


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError, match=r"nope\.toml: cannot read the sweep file: No such file"):
        load_spec(path)


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    path.write_text("{}")
    with pytest.raises(SpecError, match=r"must end in \.toml, \.yaml or \.yml, got 'sweep\.json'"):
        load_spec(path)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\noptimizers: [\n  {name: adamw\nhorizons: 3\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{path}: invalid YAML at line ")


def test_top_level_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match=r"must be a table of keys, got list"):
        load_spec(path)


# ---------------------------------------------------------------------------------- good files
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_loads_and_plans(path: Path) -> None:
    from orchestrator.planner import plan

    the_plan = plan(load_example(path))
    assert the_plan.lineages
    assert 0 < the_plan.planned_flops < the_plan.naive_flops


def test_examples_cover_the_recipes() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.toml", "constant_cooldown_vs_cosine.toml", "anytime_polynomial.toml",
            "linreg_theory.toml", "schedule_free_vs_adamw.toml"} <= names


def test_yaml_and_toml_give_the_same_spec(tmp_path: Path) -> None:
    toml_path = HERE.parents[1] / "examples" / "quickstart.toml"
    data = tomllib.loads(toml_path.read_text())
    text = yaml.safe_dump(data).replace("0.003", "3e-3")  # PyYAML alone would read 3e-3 as a string
    assert "3e-3" in text
    yaml_path = tmp_path / "quickstart.yml"
    yaml_path.write_text(text)
    assert spec_hash(load_spec(yaml_path)) == spec_hash(load_spec(toml_path))
    assert load_spec(yaml_path).optimizers[0].lr == [3e-3, 1e-2]


def test_dump_is_canonical_scalars_become_axes() -> None:
    spec = parse_spec({**MINIMAL, "seeds": 3, "optimizers": [
        {"name": "adamw", "lr": 1e-3, "params": {"weight_decay": 0.1, "betas": [0.9, 0.95]}}]})
    dump = spec.model_dump()
    assert dump["seeds"] == [3]
    assert dump["warmup"] == [10]
    assert dump["optimizers"][0]["lr"] == [1e-3]
    assert dump["optimizers"][0]["params"] == {"weight_decay": [0.1], "betas": [[0.9, 0.95]]}
    assert dump["resources"] == {"cpu": 1.0, "gpu": 0.0, "workers": 1, "concurrency": None, "retries": 2,
                                 "checkpoint_every": 0, "checkpoint_grid": 2.0, "memory_gb": None, "max_flops": 1e21,
                                 "max_epochs": 1000.0}
    assert dump["runtime"] == {"precision": "fp32", "compile": False}
    assert parse_spec(dump).model_dump() == dump  # a dump validates to itself


def test_betas_axis_is_a_list_of_lists() -> None:
    spec = parse_spec({**MINIMAL, "optimizers": [
        {"name": "adamw", "lr": 1e-3, "params": {"betas": [[0.9, 0.95], [0.9, 0.99]]}}]})
    assert [h["betas"] for _, h in spec.optimizers[0].settings()] == [[0.9, 0.95], [0.9, 0.99]]


def test_spec_hash_ignores_where_it_runs_but_not_what_it_asks() -> None:
    base = spec_hash(parse_spec(MINIMAL))
    assert base == spec_hash(parse_spec(dict(MINIMAL)))
    assert base == spec_hash(parse_spec({**MINIMAL, "store": "/elsewhere", "resources": {"cpu": 8}}))
    assert base == spec_hash(parse_spec({**MINIMAL, "warmup": [10]}))  # scalar == one-element axis
    assert base != spec_hash(parse_spec({**MINIMAL, "optimizers": [{"name": "adamw", "lr": [2e-3]}]}))
    assert len(base) == 12


def test_schedule_free_optimizer_is_simply_not_crossed_with_schedules() -> None:
    spec = parse_spec({**MINIMAL, "optimizers": [{"name": "adamw", "lr": 1e-3}, {"name": "sf_adamw", "lr": 1e-3}]})
    assert spec.optimizers[1].schedule_free
    # an explicit empty restriction is fine for a schedule-free optimizer
    parse_spec({**MINIMAL, "optimizers": [{"name": "adamw", "lr": 1e-3},
                                          {"name": "sf_sgd", "lr": 1e-3, "schedules": []}]})


def test_only_schedule_free_optimizers_need_no_schedules() -> None:
    data = {k: v for k, v in MINIMAL.items() if k != "schedules"}
    spec = parse_spec({**data, "optimizers": [{"name": "sf_adamw", "lr": [1e-3, 3e-3]}]})
    assert spec.schedules == []
    with pytest.raises(SpecError, match=r"^schedules: every optimizer is schedule-free"):
        parse_spec({**MINIMAL, "optimizers": [{"name": "sf_adamw", "lr": 1e-3}]})


def test_relative_corpus_resolves_against_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    corpus = tmp_path / "data" / "text.txt"
    corpus.write_text("hello world\n" * 100)  # long enough for nano windows of 65 characters
    path = tmp_path / "sweep.toml"
    path.write_text(
        'name = "c"\nwarmup = 10\n[workload]\nname = "char_gpt"\nsizes = ["nano"]\n'
        'params = { corpus = "data/text.txt" }\n[[optimizers]]\nname = "adamw"\nlr = 1e-3\n'
        '[[schedules]]\nname = "constant"\n[horizons]\nsteps = [100]\n'
    )
    assert load_spec(path).workload.params.corpus == str(corpus.resolve())


def test_size_tables_override_a_named_base() -> None:
    from orchestrator.planner import plan

    spec = parse_spec({**MINIMAL, "workload": {"name": "char_gpt", "params": {"dropout": 0.1},
                                               "sizes": ["nano", {"size": "nano", "block_size": 32}, {"n_layer": 1}]}})
    sizes = spec.workload.model_sizes()
    assert [s.label for s in sizes] == ["nano", "L2-d64-h4-ctx32", "L1-d128-h4-ctx128"]
    assert [s.block_size for s in sizes] == [64, 32, 128]
    assert sizes[2].n_params == gpt_param_count(1, 128, 128)
    assert [lin.workload_params for lin in plan(spec).lineages[::2]] == [
        {"size": "nano", "dropout": 0.1}, {"size": "nano", "block_size": 32, "dropout": 0.1},
        {"n_layer": 1, "dropout": 0.1}]


def test_eval_batches_go_to_the_workload() -> None:
    from orchestrator.planner import plan

    lineages = plan(parse_spec({**MINIMAL, "eval": {"batches": 3}})).lineages
    assert all(lin.workload_params == {"size": "nano", "eval_batches": 3} for lin in lineages)


def test_linreg_default_dimension_is_explicit_in_the_lineage() -> None:
    from orchestrator.planner import plan

    spec = parse_spec({**MINIMAL, "workload": {"name": "linreg", "params": {"capacity": 2.0}}})
    assert [lin.workload_params for lin in plan(spec).lineages][0] == {"capacity": 2.0, "dim": 1000}


def test_optimizer_hyperparameter_names_are_checked() -> None:
    with pytest.raises(SpecError, match=r"optimizers\[0\]\.params\.wieght_decay must be a hyperparameter of 'adamw'"):
        parse_spec({**MINIMAL, "optimizers": [{"name": "adamw", "lr": 1e-3, "params": {"wieght_decay": 0.1}}]})
