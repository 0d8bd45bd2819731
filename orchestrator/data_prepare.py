"""``lrsweep data prepare``: text files -> token shards and a manifest (``docs/data.md``).

1. **Inputs**: files, folders (every non-hidden file below them, ``.gz`` decompressed) or globs;
   none given: the shipped Shakespeare (``trials/workloads/data/shakespeare.txt.gz``). Each file
   is one document; documents are separated by the end-of-text token.
2. **Tokenizer**: a byte-level BPE trained here by the ``tokenizers`` package on the inputs
   (``--vocab-size``; nothing is downloaded), or ``--tokenizer tokenizer.json``. It is saved as
   ``tokenizer.json`` beside the shards.
3. **Shards**: the token stream is written once to a scratch file, then cut: the last
   ``--val-fraction`` of it is the held-out split (``val_000000.bin`` ...), the rest the training
   split (``train_000000.bin`` ...), at most ``--shard-tokens`` per file, in the headered
   modded-nanogpt layout (:mod:`trials.shard_format`: uint16, or uint32 when the vocabulary
   exceeds 65,536).
4. **Manifest** ``manifest.json``: token counts per split and shard, vocabulary size, dtype,
   the tokenizer and its hash, the inputs, and ``content_hash`` — a SHA-256 over every shard's
   bytes, the corpus's identity that a sweep records.

Everything is written into a scratch directory beside ``--output`` and renamed into place at the
end, so an interrupted run leaves nothing half-written; an existing non-empty ``--output`` is
refused unless ``--force``. Text is streamed in chunks of lines (memory does not grow with the
corpus); a progress bar counts input bytes.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import importlib.resources
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from trials.errors import ConfigError
from trials.shard_format import HEADER_INTS, MANIFEST_FORMAT, MANIFEST_NAME, SHARD_MAGIC

__all__ = ["add_prepare_arguments", "prepare", "run_prepare"]

EOT = "<|endoftext|>"
CHUNK_BYTES = 1 << 20  # text read and encoded per batch
SHIPPED = "trials/workloads/data/shakespeare.txt.gz"


def add_prepare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", help="text files, folders or globs (default: the shipped Shakespeare)")
    p.add_argument("-o", "--output", required=True, help="directory to write the shards and manifest.json into")
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary to train (default 4096)")
    p.add_argument("--tokenizer", help="a tokenizer.json to use instead of training one")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out tail of the token stream (default 0.1)")
    p.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard file (default 1e8)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_prepare(args: argparse.Namespace) -> int:
    manifest = prepare(args.inputs, args.output, vocab_size=args.vocab_size, tokenizer=args.tokenizer,
                       val_fraction=args.val_fraction, shard_tokens=args.shard_tokens, force=args.force,
                       progress=not args.quiet)
    splits = manifest["splits"]
    print(f"{args.output}: {splits['train']['tokens']:,} training and {splits['val']['tokens']:,} held-out tokens "
          f"in {sum(len(s['shards']) for s in splits.values())} shards, vocabulary {manifest['vocab_size']:,} "
          f"({manifest['dtype']}), content hash {manifest['content_hash'][:16]}")
    return 0


# ---------------------------------------------------------------------------------- inputs
def _inputs(given: list[str]) -> list[str]:
    if not given:
        return [SHIPPED]
    files: list[str] = []
    for item in given:
        path = Path(item).expanduser()
        if glob.has_magic(item):
            found = sorted(p for p in glob.glob(os.path.expanduser(item), recursive=True) if Path(p).is_file())
            if not found:
                raise ConfigError("inputs", item, "a glob matching at least one file")
            files += found
        elif path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise ConfigError("inputs", item, "a folder holding at least one file")
            files += found
        elif path.is_file() and os.access(path, os.R_OK):
            files.append(str(path))
        else:
            raise ConfigError("inputs", item, "an existing readable file, folder or glob")
    return files


def _open(name: str) -> IO[bytes]:
    """A binary stream of one input, decompressed."""
    if name == SHIPPED:
        blob = (importlib.resources.files("trials.workloads") / "data" / "shakespeare.txt.gz").read_bytes()
        return gzip.GzipFile(fileobj=io.BytesIO(blob))
    raw = open(name, "rb")  # noqa: SIM115 - closed by the caller
    return gzip.GzipFile(fileobj=raw) if name.endswith(".gz") else raw


def _size(name: str) -> int:
    if name == SHIPPED:
        return len((importlib.resources.files("trials.workloads") / "data" / "shakespeare.txt.gz").read_bytes())
    return os.path.getsize(name)


def _chunks(name: str, advance: Any = None) -> Iterator[str]:
    """The text of one input in chunks of about :data:`CHUNK_BYTES`, split at line ends."""
    stream = _open(name)
    raw = getattr(stream, "fileobj", stream)
    with stream, raw:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        last = 0
        try:
            while True:
                lines = text.readlines(CHUNK_BYTES)
                if not lines:
                    return
                if advance is not None:
                    pos = raw.tell()
                    advance(pos - last)
                    last = pos
                yield "".join(lines)
        except UnicodeDecodeError as exc:
            raise ConfigError("inputs", name, f"UTF-8 text ({exc.reason} at byte {exc.start})") from exc


# ---------------------------------------------------------------------------------- tokenizer
def _tokenizer(files: list[str], vocab_size: int, given: str | None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if given is not None:
        try:
            return Tokenizer.from_file(given)
        except Exception as exc:  # the Rust side raises plain Exceptions
            raise ConfigError("--tokenizer", given, "a readable tokenizer.json") from exc
    if vocab_size < 257 or vocab_size > 2**31 - 1:
        raise ConfigError("--vocab-size", vocab_size, "an integer >= 257 (256 bytes and the end-of-text token)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((chunk for f in files for chunk in _chunks(f)), trainer=trainer)
    return tok


# ---------------------------------------------------------------------------------- shards
def _write_shard(path: Path, tokens: Any, dtype: str) -> str:
    import numpy as np

    head = np.zeros(HEADER_INTS, dtype="<i4")
    head[:3] = (SHARD_MAGIC, 2 if dtype == "uint32" else 1, len(tokens))
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for part in (head.tobytes(), np.asarray(tokens).astype("<u4" if dtype == "uint32" else "<u2").tobytes()):
            f.write(part)
            digest.update(part)
    return digest.hexdigest()


def _cut(scratch: Path, total: int, val_tokens: int, out: Path, dtype: str, shard_tokens: int) -> dict[str, Any]:
    import numpy as np

    stream = np.memmap(scratch, dtype="<u4", mode="r", shape=(total,)) if total else np.zeros(0, "<u4")
    splits: dict[str, Any] = {}
    for split, lo, hi in (("train", 0, total - val_tokens), ("val", total - val_tokens, total)):
        shards = []
        for k, start in enumerate(range(lo, hi, shard_tokens)):
            name = f"{split}_{k:06d}.bin"
            piece = stream[start:min(start + shard_tokens, hi)]
            shards.append({"file": name, "tokens": int(len(piece)), "sha256": _write_shard(out / name, piece, dtype)})
        splits[split] = {"tokens": hi - lo, "shards": shards}
    return splits


def prepare(inputs: list[str], output: str, *, vocab_size: int = 4096, tokenizer: str | None = None,
            val_fraction: float = 0.1, shard_tokens: int = 100_000_000, force: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """Tokenize ``inputs`` into shards under ``output``; returns the manifest written there."""
    import numpy as np

    if not 0 < val_fraction < 1:
        raise ConfigError("--val-fraction", val_fraction, "a number in (0, 1)")
    if shard_tokens < 1:
        raise ConfigError("--shard-tokens", shard_tokens, "an integer >= 1")
    out = Path(output).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ConfigError("--output", output, "a new or empty directory (or pass --force to replace it)")
    files = _inputs(inputs)
    tok = _tokenizer(files, vocab_size, tokenizer)
    vocab = int(tok.get_vocab_size())
    eot = tok.token_to_id(EOT)
    dtype = "uint32" if vocab > 2**16 else "uint16"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(work, 0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        scratch = work / "stream.u4"
        total = 0
        with open(scratch, "wb") as sink, _Bar(files, progress) as advance:
            for i, name in enumerate(files):
                if i and eot is not None:
                    sink.write(np.array([eot], "<u4").tobytes())
                    total += 1
                for chunk in _chunks(name, advance):
                    ids = np.asarray(tok.encode(chunk).ids, dtype="<u4")
                    sink.write(ids.tobytes())
                    total += len(ids)
        val_tokens = int(np.ceil(val_fraction * total))
        if total - val_tokens < 2 or val_tokens < 2:
            raise ConfigError("inputs", f"{total} tokens", "text giving at least 2 training and 2 held-out tokens")
        splits = _cut(scratch, total, val_tokens, work, dtype, shard_tokens)
        scratch.unlink()
        tok.save(str(work / "tokenizer.json"))
        digest = hashlib.sha256()
        for split in ("train", "val"):
            for s in splits[split]["shards"]:
                digest.update(f"{split}/{s['file']}:{s['sha256']}\n".encode())
        manifest = {
            "format": MANIFEST_FORMAT, "version": 1, "created_by": "lrsweep data prepare",
            "vocab_size": vocab, "dtype": dtype, "eot_id": eot, "val_fraction": val_fraction,
            "tokenizer": {"file": "tokenizer.json", "trained": tokenizer is None,
                          "source": None if tokenizer is None else str(Path(tokenizer).resolve()),
                          "sha256": hashlib.sha256((work / "tokenizer.json").read_bytes()).hexdigest()},
            "inputs": [{"path": "shipped:shakespeare.txt.gz" if f == SHIPPED else str(Path(f).resolve()),
                        "bytes": _size(f)} for f in files],
            "tokens": total, "splits": splits, "content_hash": digest.hexdigest(),
        }
        (work / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


class _Bar:
    """A rich progress bar over the inputs' bytes on disk (nothing when ``enabled`` is false)."""

    def __init__(self, files: list[str], enabled: bool) -> None:
        self.total = sum(_size(f) for f in files)
        self.enabled = enabled
        self.progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        self.progress = Progress("tokenizing", BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True)
        self.progress.start()
        task = self.progress.add_task("tokenizing", total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
