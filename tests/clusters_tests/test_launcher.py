"""The Ray cluster launcher recipe (clusters/ray-cluster-launcher.yaml): valid for Ray's own
cluster-config schema, and a failed /shared mount stops the node instead of being ignored."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "clusters" / "ray-cluster-launcher.yaml").read_text())
COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_start_ray_commands",
                 "worker_start_ray_commands")


def test_valid_for_rays_cluster_schema() -> None:
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(CONFIG, schema)  # unknown keys are errors there (additionalProperties: false)
    types = CONFIG["available_node_types"]
    assert CONFIG["head_node_type"] in types
    assert sum(t.get("min_workers", 0) for t in types.values()) <= CONFIG["max_workers"]
    assert types[CONFIG["head_node_type"]]["resources"] == {"CPU": 0}  # no trials on the head
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**CONFIG, "setup_command": []}, schema)


def test_every_command_is_valid_bash_and_none_hides_a_failure() -> None:
    for key in COMMAND_LISTS:
        for command in CONFIG[key]:
            assert subprocess.run(["bash", "-n", "-c", command]).returncode == 0, command
            assert "|| true" not in command and "set +e" not in command, command


def test_both_start_commands_use_the_clusters_token() -> None:
    (mount_target,) = CONFIG["file_mounts"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        (start,) = [c for c in CONFIG[key] if "ray start" in c]
        assert start.startswith(f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={mount_target}/token ray start")
    assert CONFIG["docker"]["image"] == "registry.example.com/lrsweep:0.1.0-cuda"
    assert "-v /shared:/shared" in CONFIG["docker"]["run_options"]


def _run_initialization(tmp_path: Path, mount_works: bool) -> list[tuple[str, int]]:
    """Run the initialization commands one by one as the launcher does (each must exit 0, the
    first failure stops the node), with stand-ins for sudo, mount and friends."""
    stubs, state = tmp_path / "bin", tmp_path / "mounted"
    stubs.mkdir(parents=True)
    scripts = {
        "sudo": 'exec "$@"',
        "mkdir": "exit 0", "touch": "exit 0", "rm": "exit 0", "mount.nfs4": "exit 0",
        "mount": f": > {state}" if mount_works else "echo 'mount: connection timed out' >&2; exit 32",
        "mountpoint": f'[ -e {state} ] || {{ echo "/shared is not a mountpoint"; exit 32; }}',
    }
    for name, body in scripts.items():
        (stubs / name).write_text(f"#!/bin/bash\n{body}\n")
        (stubs / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    ran = []
    for command in CONFIG["initialization_commands"]:
        code = subprocess.run(["bash", "-c", command], env=env, capture_output=True).returncode
        ran.append((command.split()[0], code))
        if code != 0:
            break
    return ran


def test_a_failed_mount_stops_the_node(tmp_path) -> None:
    ran = _run_initialization(tmp_path, mount_works=False)
    assert ran[-1][1] != 0 and len(ran) == 3  # the mount command itself fails; nothing after it runs
    ok = _run_initialization(tmp_path / "ok", mount_works=True)
    assert [code for _, code in ok] == [0] * len(CONFIG["initialization_commands"])
