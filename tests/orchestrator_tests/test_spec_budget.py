"""Refuse before running (orchestrator.spec.budget): each bound at its exact boundary, computed by
hand — memory per trial, the compute lower bound, epochs of a corpus, int64 and step counts,
the corpus's vocabulary and splits, evaluation counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.planner import plan
from orchestrator.spec import SpecError, parse_spec
from orchestrator.spec import budget as budget_module
from tests._examples import load_example
from trials.catalog import gpt_param_count

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))
NANO_P = gpt_param_count(2, 64, 64, 84, non_embedding=False)  # 114,944 with embeddings and head
NANO_ACT_16 = 9_551_872  # gpt_activation_bytes of nano at batch 16 (test_catalog_accounting, by hand)


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "b", "warmup": 10, "batch_size": 16, "workload": {"name": "char_gpt", "sizes": ["nano"]},
        "optimizers": [{"name": "adamw", "lr": [1e-3]}], "schedules": [{"name": "cosine"}],
        "horizons": {"steps": [100, 200, 400]},
    }
    resources = over.pop("resources", {})
    return {**base, **over, "resources": {"memory_gb": 64, **resources}}


# ---------------------------------------------------------------------------------- memory
AVERAGERS = [{"kind": "ema", "half_life": 0.1}, {"kind": "swa", "start_fraction": 0.5}, {"kind": "lawa", "k": 5}]


@pytest.mark.parametrize(("optimizers", "floats_per_param"), [
    # 2 (weights, grads) + AdamW's 2 moments + averagers: EMA 1, SWA@0.5 one per horizon (3), LAWA k = 5
    ([{"name": "adamw", "lr": 1e-3}], 2 + 2 + 9),
    # + SF-AdamW: state 3 (z, v, inner momentum) and its evaluation point x
    ([{"name": "adamw", "lr": 1e-3}, {"name": "sf_adamw", "lr": 1e-3}], 2 + 3 + 9 + 1),
])
def test_memory_estimate_at_its_boundary(optimizers: list[dict[str, Any]], floats_per_param: int) -> None:
    need = 4 * NANO_P * floats_per_param + NANO_ACT_16  # bytes
    data = spec(optimizers=optimizers, averagers=AVERAGERS)
    parse_spec({**data, "resources": {"memory_gb": (need + 1) / 1e9}})  # one byte to spare
    with pytest.raises(SpecError, match=r"^batch_size: batch 16 with size nano needs about 0\.0 GB per trial "
                                        r"\(0\.0 GB of activations\), more than resources\.memory_gb = 0\.0$"):
        parse_spec({**data, "resources": {"memory_gb": (need - 1) / 1e9}})  # one byte short


def test_weights_alone_too_large_name_the_size() -> None:
    p = gpt_param_count(2, 4096, 64, 84, non_embedding=False)
    assert 4 * p * (2 + 2) == 6_459_490_304  # weights, gradients and AdamW's two moments
    data = spec(workload={"name": "char_gpt", "sizes": ["nano", {"size": "nano", "n_embd": 4096}]})
    with pytest.raises(SpecError, match=r"^workload\.sizes\[1\]: size L2-d4096-h4-ctx64 needs about 6\.5 GB per "
                                        r"trial for weights, gradients, optimizer state and averages"):
        parse_spec({**data, "resources": {"memory_gb": 6.4}})


def test_default_memory_is_this_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    total = budget_module.machine_memory_bytes()
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(next(line.split()[1] for line in meminfo.read_text().splitlines() if line.startswith("MemTotal:")))
        assert total == pytest.approx(kib * 1024, rel=0.01)
    data = spec()
    data["resources"] = {}
    parse_spec(data)
    monkeypatch.setattr(budget_module, "machine_memory_bytes", lambda: 10_000_000)
    with pytest.raises(SpecError, match=r"more than resources\.memory_gb = 0\.0 \(default: this machine's memory\)$"):
        parse_spec(data)


# ---------------------------------------------------------------------------------- compute
def test_compute_lower_bound_at_its_boundary_equals_a_schedule_free_plan() -> None:
    # 2 LRs x 2 seeds = 4 trunks, each 200 steps of 16 x 64 tokens: 6 N D = 6 * 100,096 * 4 * 200 * 1,024
    flops = 6 * 100_096 * 4 * 200 * 1024
    assert flops == 491_991_859_200
    data = spec(optimizers=[{"name": "sf_adamw", "lr": [1e-3, 3e-3]}], seeds=[0, 1], horizons={"steps": [100, 200]})
    data.pop("schedules")
    the_plan = plan(parse_spec({**data, "resources": {"memory_gb": 64, "max_flops": float(flops)}}))
    assert the_plan.planned_flops == flops  # each schedule-free trunk once to its longest horizon
    with pytest.raises(SpecError, match=r"^resources\.max_flops: the sweep needs at least 4\.92e\+11 FLOPs "
                                        r"\(6·N·tokens, 4 trunks each to its longest horizon\)"):
        parse_spec({**data, "resources": {"memory_gb": 64, "max_flops": float(flops - 1)}})


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_compute_bound_is_a_lower_bound_of_every_example_plan(path: Path) -> None:
    loaded = load_example(path)
    bound = sum(6.0 * size.n_params * size.tokens_per_step(batch) * steps
                * budget_module._trunks_per_size_and_batch(loaded)
                for (i, batch), steps in budget_module._longest_steps(loaded).items()
                for size in [loaded.workload.model_sizes()[i]])
    assert 0 < bound <= plan(loaded).planned_flops


# ---------------------------------------------------------------------------------- horizons
def test_epochs_at_their_boundary() -> None:
    # the shipped corpus has 4,551,588 training characters at val_fraction 0.1; 1,024 tokens a step
    ok, over = 4444, 4445
    assert ok * 1024 <= 4_551_588 < over * 1024
    parse_spec(spec(horizons={"steps": [100, ok]}, resources={"max_epochs": 1}))
    with pytest.raises(SpecError, match=r"^horizons\.steps\[1\]: 4445 is 1 epochs of the corpus's 4,551,588 "
                                        r"training tokens for size nano at batch 16, more than resources\.max_epochs = 1$"):
        parse_spec(spec(horizons={"steps": [100, over]}, resources={"max_epochs": 1}))


def test_int64_and_step_bounds_at_their_boundaries() -> None:
    data = spec(horizons={"tokens": [2**63 - 1]})
    with pytest.raises(SpecError, match=r"is 9,007,199,254,740,992 steps for size nano at batch 16; a lineage takes "
                                        r"at most 1,000,000,000 steps$"):
        parse_spec(data)
    with pytest.raises(SpecError, match=r"^horizons\.tokens: 9223372036854775808 is 9\.22e\+18 tokens .* int64"):
        parse_spec(spec(horizons={"tokens": [2**63]}))
    linreg = spec(workload={"name": "linreg", "sizes": [{"dim": 10}]}, batch_size=1, warmup=0)
    parse_spec({**linreg, "horizons": {"steps": [10**9]}})
    with pytest.raises(SpecError, match=r"^horizons\.steps: 1000000001 is 1,000,000,001 steps"):
        parse_spec({**linreg, "horizons": {"steps": [10**9 + 1]}})


def test_evaluations_per_lineage_at_their_boundary() -> None:
    linreg = spec(workload={"name": "linreg", "sizes": [{"dim": 10}]}, batch_size=1, warmup=0,
                  horizons={"steps": [2_000_000]})
    parse_spec({**linreg, "eval": {"every": 2}})
    with pytest.raises(SpecError, match=r"^eval\.every must be at least 2: .* 2,000,000 evaluations per lineage"):
        parse_spec({**linreg, "eval": {"every": 1}})


# ---------------------------------------------------------------------------------- corpus
def test_vocabulary_of_a_text_corpus(tmp_path: Path) -> None:
    (tmp_path / "text.txt").write_text("abcé" * 100)  # 4 distinct characters, one not ASCII
    data = spec(workload={"name": "char_gpt", "sizes": [{"size": "nano", "block_size": 8}],
                          "params": {"corpus": "text.txt", "vocab_size": 4}})
    parse_spec(data, base_dir=tmp_path)
    data["workload"]["params"]["vocab_size"] = 3
    with pytest.raises(SpecError, match=r"^workload\.params\.vocab_size must be at least the corpus's 4 characters, got 3$"):
        parse_spec(data, base_dir=tmp_path)


def test_vocabulary_of_token_shards(tmp_path: Path) -> None:
    import numpy as np

    (np.arange(10_000) % 301).astype("<u2").tofile(tmp_path / "train.bin")  # nanoGPT's raw uint16: ids 0 .. 300
    data = spec(workload={"name": "char_gpt", "sizes": ["nano"], "params": {"corpus": ".", "vocab_size": 301}})
    parse_spec(data, base_dir=tmp_path)
    data["workload"]["params"]["vocab_size"] = 300
    with pytest.raises(SpecError, match=r"vocab_size must be at least the corpus's 301 token ids \(largest id \+ 1\)"):
        parse_spec(data, base_dir=tmp_path)


def test_a_context_must_fit_both_splits(tmp_path: Path) -> None:
    (tmp_path / "text.txt").write_text("x" * 1000)  # held-out tail: ceil(0.1 * 1000) = 100 characters
    data = spec(workload={"name": "char_gpt", "params": {"corpus": "text.txt"},
                          "sizes": [{"size": "nano", "block_size": 99}, {"size": "nano", "block_size": 100}]},
                horizons={"steps": [20, 40]}, resources={"max_epochs": 1e6})
    with pytest.raises(SpecError, match=r"^workload\.sizes\[1\]: a context of 100 tokens needs 101-token windows; "
                                        r"the corpus's held-out split has 100 tokens \(val_fraction 0\.1\)$"):
        parse_spec(data, base_dir=tmp_path)
    data["workload"]["sizes"] = data["workload"]["sizes"][:1]
    parse_spec(data, base_dir=tmp_path)


def test_bfloat16_needs_a_gpu() -> None:
    data = spec(workload={"name": "char_gpt", "sizes": ["nano"], "params": {"dtype": "bfloat16"}})
    parse_spec({**data, "resources": {"memory_gb": 64, "gpu": 1}})
    with pytest.raises(SpecError, match=r"^workload\.params\.dtype must be 'float32' when resources\.gpu = 0"):
        parse_spec(data)


# ---------------------------------------------------------------------------------- name, store
def test_name_length_and_store() -> None:
    parse_spec(spec(name="n" * 64))
    with pytest.raises(SpecError, match=r"^name must be 1 to 64 letters, digits, '\.', '_' or '-', starting with a "
                                        r"letter or digit, got 'n{65}'$"):
        parse_spec(spec(name="n" * 65))
    for store in ("", "   "):
        with pytest.raises(SpecError, match=r"^store must be a directory path or URI \(an empty one would write"):
            parse_spec(spec(store=store))


# ---------------------------------------------------------------------------------- grid size
def test_grid_size_at_its_boundary_without_enumerating_it() -> None:
    # 1000 LRs x 1000 cosine floors x 2 seeds: refused in milliseconds, never enumerated
    data = spec(optimizers=[{"name": "adamw", "lr": [(i + 1) * 1e-5 for i in range(1000)]}],
                schedules=[{"name": "cosine", "final_fraction": [i / 1000 for i in range(1000)]}], seeds=[0, 1])
    with pytest.raises(SpecError, match=r"^the sweep: the grid has 2,000,000 settings .*, at most 1,000,000$"):
        parse_spec(data)
    with pytest.raises(SpecError, match=r"^averagers: 10,001 averagers ride along every lineage, at most 10,000$"):
        parse_spec(spec(averagers=[{"kind": "ema", "half_life": [i + 1 for i in range(10_001)]}]))
    entry = {"name": "adamw", "lr": [(i + 1) * 1e-6 for i in range(1001)],
             "params": {"weight_decay": [i / 1000 for i in range(1000)]}}
    with pytest.raises(SpecError, match=r"^optimizers\[0\]\.params: lr and the hyperparameter axes make 1,001,000"):
        parse_spec(spec(optimizers=[entry]))
    parse_spec(spec(averagers=[{"kind": "ema", "half_life": [i + 1 for i in range(10_000)]}], horizons={"steps": [100]},
                    resources={"memory_gb": 1e4}))
