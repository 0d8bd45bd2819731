"""Load an ``examples/`` sweep file in tests, including one whose corpus must be prepared first.

``examples/llama_tokens.toml`` reads shards that ``lrsweep data prepare`` writes to
``examples/data/shakespeare-bpe`` (not in git). Where they are missing, the example is loaded
with its corpus replaced by a small prepared corpus (the first 400 kB of the shipped text, a
512-token BPE), made once per test session: the same spec in every other respect.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.spec import load_spec, parse_spec
from orchestrator.spec_input import read_sweep_file

__all__ = ["load_example"]


@functools.lru_cache(maxsize=1)
def _small_corpus() -> str:
    from orchestrator.data_prepare import prepare

    root = Path(tempfile.mkdtemp(prefix="lrsweep-example-corpus-"))
    blob = (importlib.resources.files("trials.workloads") / "data" / "shakespeare.txt.gz").read_bytes()
    (root / "text.txt").write_bytes(gzip.decompress(blob)[:400_000])
    prepare([str(root / "text.txt")], str(root / "bpe"), vocab_size=512, progress=False)
    return str(root / "bpe")


def load_example(path: Path) -> Any:
    """``load_spec(path)``; a missing prepared corpus replaced by :func:`_small_corpus`."""
    data = read_sweep_file(path)
    corpus = data.get("workload", {}).get("params", {}).get("corpus")
    if corpus is None or (path.parent / corpus).exists():
        return load_spec(path)
    data["workload"]["params"]["corpus"] = _small_corpus()
    return parse_spec(data, base_dir=path.parent, source=str(path))
