"""Bad token data is one line before training: ``lrsweep plan``/``run`` exit 2, nothing written,
Ray not started. One test per case, on a corpus ``lrsweep data prepare`` wrote (or raw shards)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.data_prepare import prepare
from trials.workloads import write_shard

pytest.importorskip("tokenizers")

TEXT = "".join(f"Line {i}: the quality of mercy is not strained; it droppeth as the gentle rain.\n"
               for i in range(300))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "t.txt").write_text(TEXT)
    prepare([str(root / "t.txt")], str(root / "bpe"), vocab_size=300, progress=False)
    return root / "bpe"


def sweep(tmp_path, corpus, *, horizons="[20]", extra="") -> str:
    spec = tmp_path / "s.toml"
    spec.write_text(f"""
name = "bad-data"
store = "{tmp_path / 'store'}"
batch_size = 2
[workload]
name = "llama"
sizes = ["nano"]
params = {{ corpus = "{corpus}" }}
[[optimizers]]
name = "adamw"
lr = 1e-3
[[schedules]]
name = "constant"
[horizons]
steps = {horizons}
[resources]
cpu = 1
{extra}
""")
    return str(spec)


def refused(tmp_path, capsys, spec: str, needle: str, command: str = "plan") -> None:
    assert main([command, spec]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err, err
    assert err.count("\n") == 0 and err.startswith("lrsweep: error:")
    assert not (tmp_path / "store").exists()
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def copy(prepared, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(prepared, out)
    return out


def test_a_good_corpus_plans(prepared, tmp_path, capsys) -> None:
    assert main(["plan", "--json", sweep(tmp_path, prepared)]) == 0
    plan = json.loads(capsys.readouterr().out)
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert plan["corpus_hash"] == manifest["content_hash"]


def test_missing_shard(prepared, tmp_path, capsys) -> None:
    corpus = copy(prepared, tmp_path)
    (corpus / "val_000000.bin").unlink()
    refused(tmp_path, capsys, sweep(tmp_path, corpus), "val_000000.bin: an existing shard (the manifest lists it)",
            command="run")


def test_empty_shard(tmp_path, capsys) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "train.bin").write_bytes(b"")
    write_shard(tmp_path / "raw" / "val.bin", np.arange(200), header=False)
    refused(tmp_path, capsys, sweep(tmp_path, tmp_path / "raw"), "train.bin: a shard with tokens (it is empty)")


def test_shard_without_the_header_in_a_prepared_corpus(prepared, tmp_path, capsys) -> None:
    corpus = copy(prepared, tmp_path)
    shard = corpus / "train_000000.bin"
    shard.write_bytes(shard.read_bytes()[1024:])  # the same tokens, raw
    refused(tmp_path, capsys, sweep(tmp_path, corpus), "a shard with the header (magic 20240520)")


def test_unknown_dtype_version_in_the_header(prepared, tmp_path, capsys) -> None:
    corpus = copy(prepared, tmp_path)
    shard = corpus / "train_000000.bin"
    blob = bytearray(shard.read_bytes())
    blob[4:8] = np.array([7], "<i4").tobytes()
    shard.write_bytes(bytes(blob))
    refused(tmp_path, capsys, sweep(tmp_path, corpus), "header version 1 (uint16) or 2 (uint32), its header says 7")


def test_header_claiming_more_tokens_than_the_file_holds(tmp_path, capsys) -> None:
    (tmp_path / "raw").mkdir()
    write_shard(tmp_path / "raw" / "train.bin", np.arange(300))
    write_shard(tmp_path / "raw" / "val.bin", np.arange(200))
    blob = bytearray((tmp_path / "raw" / "train.bin").read_bytes())
    blob[8:12] = np.array([400], "<i4").tobytes()
    (tmp_path / "raw" / "train.bin").write_bytes(bytes(blob))
    refused(tmp_path, capsys, sweep(tmp_path, tmp_path / "raw"),
            "a shard holding the 400 tokens its header claims (1,824 bytes); the file has 1,624 bytes (300 tokens)")


def test_token_ids_at_or_above_the_vocabulary(prepared, tmp_path, capsys) -> None:
    corpus = copy(prepared, tmp_path)
    manifest = json.loads((corpus / "manifest.json").read_text())
    manifest["vocab_size"] = 100
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    refused(tmp_path, capsys, sweep(tmp_path, corpus), "token ids below its manifest's vocab_size 100; the largest is")


def test_fewer_tokens_than_the_longest_horizon_needs(prepared, tmp_path, capsys) -> None:
    spec = sweep(tmp_path, prepared, horizons="[20, 4000]", extra="max_epochs = 2")
    refused(tmp_path, capsys, spec, "epochs of the corpus's")
    refused(tmp_path, capsys, spec, "training tokens for size nano at batch 2, more than resources.max_epochs = 2")


def test_changed_corpus_under_an_existing_sweep(prepared, tmp_path, capsys) -> None:
    from orchestrator.planner import plan
    from orchestrator.spec import load_spec
    from orchestrator.store import ResultsStore

    corpus = copy(prepared, tmp_path)
    spec_path = sweep(tmp_path, corpus)
    spec = load_spec(spec_path)
    ResultsStore(str(tmp_path / "store")).write_sweep(  # what `run` records before training
        spec.name, name=spec.name, spec_text="", plan_json=plan(spec).to_json(), code_version="test")
    assert main(["plan", spec_path]) == 0
    capsys.readouterr()
    shutil.rmtree(corpus)
    (tmp_path / "t.txt").write_text(TEXT.replace("mercy", "justice"))
    prepare([str(tmp_path / "t.txt")], str(corpus), vocab_size=300, progress=False)
    for command in ("plan", "run"):
        assert main([command, spec_path]) == 2
        err = capsys.readouterr().err.strip()
        assert "workload.params.corpus must be the corpus stored sweep 'bad-data' trained on" in err
        assert err.count("\n") == 0
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()
