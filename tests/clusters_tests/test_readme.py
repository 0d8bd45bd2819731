"""clusters/README.md: every command block is valid bash and fits the recipes it edits."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "clusters" / "README.md").read_text()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_every_command_block_is_valid_bash() -> None:
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        out = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
        assert out.returncode == 0, f"{out.stderr}\n{block}"


def test_the_seds_match_the_placeholders_of_the_files_they_edit() -> None:
    for block in BLOCKS:
        for line in block.replace("\\\n", " ").splitlines():
            if not line.startswith("sed "):
                continue
            (target,) = re.findall(r"clusters/[\w.-]+\.yaml", line)
            text = (ROOT / target).read_text()
            for pattern in re.findall(r'"s\|([^|]+)\|', line):
                assert pattern in text, f"{pattern!r} is not in {target}"


def test_every_recipe_file_is_explained_and_the_examples_exist() -> None:
    for path in [*(ROOT / "clusters").iterdir(), ROOT / "Dockerfile"]:
        if path.name != "README.md":
            assert path.name in README, path.name
    for example in set(re.findall(r"examples/[\w.-]+\.toml", README)):
        assert (ROOT / example).exists(), example
    rayjob = yaml.safe_load((ROOT / "clusters" / "kuberay-rayjob.yaml").read_text())
    assert "--from-file=sweep.toml=" in README and "/sweeps/sweep.toml" in rayjob["spec"]["entrypoint"]
