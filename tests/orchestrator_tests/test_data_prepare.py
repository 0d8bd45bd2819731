"""``lrsweep data prepare``: shards that decode back to the input text, a manifest that agrees with
them, a user tokenizer.json, uint32 shards for a vocabulary over 65,536, and refused inputs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.data_prepare import prepare
from trials.shard_format import shard_layout
from trials.workloads import read_shard

tokenizers = pytest.importorskip("tokenizers")

TEXTS = {"a.txt": "To be, or not to be, that is the question:\n" * 40,
         "sub/b.txt": "Whether 'tis nobler in the mind to suffer\nThe slings and arrows\n" * 30}


@pytest.fixture
def texts(tmp_path):
    for name, text in TEXTS.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_text(text)
    return tmp_path / "in"


def all_tokens(out, manifest) -> np.ndarray:
    return np.concatenate([read_shard(out / s["file"]) for split in ("train", "val")
                           for s in manifest["splits"][split]["shards"]])


def test_folder_round_trips_through_the_shards(texts, tmp_path) -> None:
    out = tmp_path / "out"
    assert main(["data", "prepare", str(texts), "-o", str(out), "--vocab-size", "300",
                 "--shard-tokens", "500", "-q"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    ids = all_tokens(out, manifest)
    eot = manifest["eot_id"]
    docs = np.split(ids, np.flatnonzero(ids == eot))
    decoded = [tok.decode(d[d != eot].tolist()) for d in docs]
    assert decoded == [TEXTS["a.txt"], TEXTS["sub/b.txt"]]  # sorted file order, one EOT between
    assert manifest["vocab_size"] == tok.get_vocab_size() == 300 and manifest["dtype"] == "uint16"
    train, val = manifest["splits"]["train"], manifest["splits"]["val"]
    assert train["tokens"] + val["tokens"] == manifest["tokens"] == len(ids)
    assert val["tokens"] == int(np.ceil(0.1 * len(ids)))
    assert len(train["shards"]) == -(-train["tokens"] // 500)  # at most 500 tokens per shard
    digest = hashlib.sha256()
    for split in ("train", "val"):
        for s in manifest["splits"][split]["shards"]:
            lay = shard_layout(out / s["file"])
            assert (lay.headered, lay.dtype, lay.n_tokens) == (True, "<u2", s["tokens"])
            assert hashlib.sha256((out / s["file"]).read_bytes()).hexdigest() == s["sha256"]
            digest.update(f"{split}/{s['file']}:{s['sha256']}\n".encode())
    assert manifest["content_hash"] == digest.hexdigest()
    # the same text with the saved tokenizer (and a glob) gives the same corpus
    again = tmp_path / "again"
    prepare([str(texts / "*.txt"), str(texts / "sub")], str(again), tokenizer=str(out / "tokenizer.json"),
            shard_tokens=500, progress=False)
    assert json.loads((again / "manifest.json").read_text())["content_hash"] == manifest["content_hash"]


def test_vocabulary_over_65536_writes_uint32(tmp_path) -> None:
    vocab = {f"w{i}": i for i in range(70000)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(tmp_path / "tok.json"))
    (tmp_path / "t.txt").write_text("w69999 w5 w65536 w1\n" * 10)
    manifest = prepare([str(tmp_path / "t.txt")], str(tmp_path / "out"), tokenizer=str(tmp_path / "tok.json"),
                       progress=False)
    assert manifest["dtype"] == "uint32" and manifest["vocab_size"] == 70001
    ids = all_tokens(tmp_path / "out", manifest)
    assert ids.dtype == np.dtype("<u4") and ids[:4].tolist() == [69999, 5, 65536, 1]
    assert shard_layout(tmp_path / "out" / "train_000000.bin").headered


@pytest.mark.parametrize(("args", "needle"), [
    (["missing/*.txt"], "inputs must be a glob matching at least one file"),
    (["nowhere.txt"], "inputs must be an existing readable file"),
    (["--vocab-size", "100", "{texts}"], "--vocab-size must be an integer >= 257"),
    (["--tokenizer", "{texts}/a.txt", "{texts}"], "--tokenizer must be a readable tokenizer.json"),
    (["--val-fraction", "1.5", "{texts}"], "--val-fraction must be a number in (0, 1)"),
])
def test_bad_inputs_are_one_line_and_write_nothing(texts, tmp_path, capsys, args, needle) -> None:
    out = tmp_path / "out"
    args = [a.format(texts=texts) for a in args]
    assert main(["data", "prepare", *args, "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["in"]


def test_existing_output_is_refused_without_force(texts, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["data", "prepare", str(texts), "-o", str(out), "--vocab-size", "300", "-q"]) == 2
    assert "--output must be a new or empty directory" in capsys.readouterr().err
    assert main(["data", "prepare", str(texts), "-o", str(out), "--vocab-size", "300", "-q", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "tokenizer.json", "train_000000.bin",
                                                     "val_000000.bin"]
