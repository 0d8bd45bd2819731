"""Starting and joining Ray, pinned to loopback for every local default.

PLATFORM-NOTES.md (measured here): Ray binds its servers to all interfaces and takes the
machine's network address as node IP unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is in the
environment *before Ray starts*; with it every Ray socket binds to 127.0.0.1. This module sets
that (and turns usage stats off) at import time, before ``ray`` is imported anywhere in the
driver, and again in the environment handed to worker processes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node IP 127.0.0.1, every listener on loopback
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # curves go to Parquet, not Tune's JSON/CSV logs
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_DEDUP_LOGS": "1",
}
for _key, _value in LOOPBACK_ENV.items():
    os.environ.setdefault(_key, _value)
# Not a preference: a local Ray must never listen beyond loopback, whatever the caller's env says.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

__all__ = ["LOOPBACK_ENV", "init_ray", "ray_temp_dir"]

log = logging.getLogger(__name__)


def ray_temp_dir() -> str:
    """A short per-user temp dir (Ray's socket paths must stay under ~107 bytes)."""
    path = Path(tempfile.gettempdir()) / f"lrsweep-ray-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def init_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> str:
    """Start an embedded local Ray (default) or join ``address`` / ``RAY_ADDRESS``.

    Returns a description of what was started or joined. The embedded instance uses
    ``address="local"`` so a stale ``ray_current_cluster`` file can't make it join a dead
    cluster (PLATFORM-NOTES.md).
    """
    import ray

    if ray.is_initialized():
        return "already initialised"
    address = address or os.environ.get("RAY_ADDRESS") or None
    runtime_env = {"env_vars": dict(LOOPBACK_ENV)}
    if address in (None, "", "local"):
        ray.init(
            address="local", num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
            include_dashboard=False, _temp_dir=ray_temp_dir(), logging_level=logging.WARNING,
            log_to_driver=True, configure_logging=True, runtime_env=runtime_env,
        )
        return "embedded local Ray on 127.0.0.1"
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:  # inside a Ray Job: its runtime env already applies
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    return f"Ray cluster at {address}"
