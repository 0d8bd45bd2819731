"""The spec's torch-free corpus facts (orchestrator.spec.corpus) equal what the trial's loader
(trials.workloads.corpus) builds: tokens, the train/held-out split and the vocabulary needed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from orchestrator.spec.corpus import corpus_facts
from trials.workloads.corpus import load_corpus


def _headered(path: Path, tokens: np.ndarray) -> None:
    """A modded-nanogpt shard: 256 int32 header (magic, version, count), then uint16 tokens."""
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(tokens))
    path.write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())


def _cases(tmp: Path) -> dict[str, str | None]:
    (tmp / "ascii.txt").write_text("to be, or not to be: that is the question.\n" * 40)
    (tmp / "accents.txt").write_text("¿Qué será, será? Whatever will be, will be. " * 30)
    (tmp / "packed.txt.gz").write_bytes(gzip.compress(b"All the world's a stage.\n" * 50))
    (np.arange(3000) % 97).astype("<u2").tofile(tmp / "raw.bin")
    (tmp / "shards").mkdir()
    _headered(tmp / "shards" / "train_000.bin", np.arange(4000) % 500)
    _headered(tmp / "shards" / "train_001.bin", np.arange(2500) % 700)
    _headered(tmp / "shards" / "val_000.bin", np.arange(900) % 300)
    return {"shipped": None, "ascii": str(tmp / "ascii.txt"), "accents": str(tmp / "accents.txt"),
            "gzip": str(tmp / "packed.txt.gz"), "raw shard": str(tmp / "raw.bin"),
            "shard directory": str(tmp / "shards"), "shard glob": str(tmp / "shards" / "train_*.bin")}


@pytest.mark.parametrize("val_fraction", [0.1, 0.37])
def test_corpus_facts_equal_the_loader(tmp_path: Path, val_fraction: float) -> None:
    for name, path in _cases(tmp_path).items():
        facts, corpus = corpus_facts(path), load_corpus(path, val_fraction=val_fraction)
        train, val = corpus.train.n_tokens, corpus.val.n_tokens
        assert (facts.train_tokens(val_fraction), facts.val_tokens(val_fraction)) == (train, val), name
        assert facts.tokens == train + val, name
        if corpus.kind == "text":
            assert facts.min_vocab == corpus.vocab_size, name
        else:
            ids = [int(s.max()) for s in (*corpus.train.segments, *corpus.val.segments) if len(s)]
            assert facts.min_vocab == max(ids) + 1, name


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "a corpus with tokens (not an empty file)"),
    (b"\xff\xfe not utf-8", "UTF-8 text (or .bin token shards)"),
    (None, "shards including at least one training file (name without 'val')"),
])
def test_a_corpus_the_loader_refuses_is_refused_at_load(tmp_path: Path, content: bytes | None, expected: str) -> None:
    from orchestrator.spec import SpecError, parse_spec

    if content is None:
        (tmp_path / "data").mkdir()
        (np.arange(500) % 7).astype("<u2").tofile(tmp_path / "data" / "val.bin")
        corpus = "data"
    else:
        (tmp_path / "text.txt").write_bytes(content)
        corpus = "text.txt"
    data = {"name": "c", "workload": {"name": "char_gpt", "sizes": ["nano"], "params": {"corpus": corpus}},
            "optimizers": [{"name": "sf_adamw", "lr": 1e-3}], "horizons": {"steps": [10]}}
    with pytest.raises(SpecError, match=rf"^workload\.params\.corpus must be {expected.replace('(', '[(]').replace(')', '[)]')}"):
        parse_spec(data, base_dir=tmp_path)
    from trials.errors import ConfigError
    from trials.workloads import build_workload

    with pytest.raises(ConfigError):  # the trial refuses it too
        build_workload("char_gpt", seed=0, batch_size=2, size="nano", corpus=str(tmp_path / corpus))
