"""Starting and joining Ray, pinned to loopback for every local default.

docs/platform.md §1 (measured here): Ray binds its servers to all interfaces and takes the
machine's network address as node IP unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is in the
environment *before Ray starts*; with it every Ray socket binds to 127.0.0.1. This module sets
that (and turns usage stats off) at import time, before ``ray`` is imported anywhere in the
driver, and again in the environment handed to worker processes.

An embedded Ray gets a short temp dir whatever ``TMPDIR`` is (:func:`ray_temp_dir`) and a
watchdog process that stops every Ray process it started when the driver dies, even by SIGKILL
(``_ray_reaper.py`` says how and why).
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestrator._ray_reaper import MARKER_ENV

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

__all__ = ["LOOPBACK_ENV", "RAY_TEMP_MAX", "init_ray", "ray_temp_dir"]

log = logging.getLogger(__name__)

# Ray's longest socket path is <temp dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store:
# 65 bytes past the temp dir with a 7-digit pid, and AF_UNIX paths stop at 107 bytes.
RAY_TEMP_MAX = 40
_REAPERS: list[subprocess.Popen[bytes]] = []  # the watchdogs this process started


def _usable(path: str) -> bool:
    """Create ``path`` (mode 0700) if needed; usable if it is our own real directory."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and os.access(path, os.W_OK)


def ray_temp_dir() -> str:
    """A short per-user temp dir for Ray, whatever ``TMPDIR`` is.

    ``LRSWEEP_RAY_TMPDIR`` if set; else ``/tmp/lrsweep-ray-<uid>``, else the same under the
    system temp dir: the first at most :data:`RAY_TEMP_MAX` bytes long that is a directory of
    ours (a long, macOS-like ``TMPDIR`` would push Ray's socket paths past 107 bytes).

    Raises:
        ConfigError: no candidate is short and usable.
    """
    from trials.errors import ConfigError

    override = os.environ.get("LRSWEEP_RAY_TMPDIR")
    if override:
        if len(os.fsencode(override)) <= RAY_TEMP_MAX and _usable(override):
            return override
        raise ConfigError("LRSWEEP_RAY_TMPDIR", override,
                          f"a writable directory of ours whose path is at most {RAY_TEMP_MAX} bytes")
    name = f"lrsweep-ray-{os.getuid()}"
    for base in ("/tmp", tempfile.gettempdir()):
        path = os.path.join(base, name)
        if len(os.fsencode(path)) <= RAY_TEMP_MAX and _usable(path):
            return path
    raise ConfigError("TMPDIR", tempfile.gettempdir(),
                      f"short enough for Ray's socket paths (set LRSWEEP_RAY_TMPDIR to a writable "
                      f"directory of at most {RAY_TEMP_MAX} bytes)")


def _start_reaper() -> str | None:
    """Start the watchdog of ``_ray_reaper.py``; returns the token Ray's processes must carry."""
    if not sys.platform.startswith("linux"):
        return None
    token = secrets.token_hex(8)
    reaper = subprocess.Popen(
        [sys.executable, "-I", str(Path(__file__).with_name("_ray_reaper.py")), token, str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )
    _REAPERS.append(reaper)
    return token


class _DefaultAuthNotice(logging.Filter):
    """Drops Ray's notice that a new local cluster enables token authentication by default.

    The embedded Ray keeps that default (its processes authenticate with the token in
    ``~/.ray/auth_token``, which Ray creates if missing) and listens on 127.0.0.1 only; the
    notice, a WARNING telling the user how to opt out, would be the first line of every
    ``lrsweep run``. Only that message is dropped, and only once an embedded Ray is started:
    joining a cluster shows Ray's messages as they are.
    """

    PREFIX = "Token authentication is enabled for this Ray cluster"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIX)


def _quiet_default_auth_notice() -> None:
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DefaultAuthNotice) for f in logger.filters):
        logger.addFilter(_DefaultAuthNotice())


def init_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> str:
    """Start an embedded local Ray (default) or join ``address`` / ``RAY_ADDRESS``.

    Returns a description of what was started or joined. The embedded instance uses
    ``address="local"`` so a stale ``ray_current_cluster`` file can't make it join a dead
    cluster (docs/platform.md §1).
    """
    import ray

    if ray.is_initialized():
        return "already initialised"
    address = address or os.environ.get("RAY_ADDRESS") or None
    runtime_env = {"env_vars": dict(LOOPBACK_ENV)}
    if address in (None, "", "local"):
        temp_dir = ray_temp_dir()
        # Every process Ray starts inherits the token: the watchdog stops them if we die.
        token = _start_reaper()
        if token is not None:
            os.environ[MARKER_ENV] = token
        _quiet_default_auth_notice()
        try:
            ray.init(
                address="local", num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                include_dashboard=False, _temp_dir=temp_dir, logging_level=logging.WARNING,
                log_to_driver=True, configure_logging=True, runtime_env=runtime_env,
            )
        finally:
            os.environ.pop(MARKER_ENV, None)  # processes the driver starts later are not Ray's
        return "embedded local Ray on 127.0.0.1"
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:  # inside a Ray Job: its runtime env already applies
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
    return f"Ray cluster at {address}"
