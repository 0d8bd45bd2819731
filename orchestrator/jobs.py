"""Submitting sweeps to a Ray cluster as Ray Jobs (``lrsweep submit|logs|stop``).

The job runs ``lrsweep run SPEC --address auto`` on the cluster, with a working directory that
holds only the sweep file. The results store must be reachable from the cluster: an absolute
path on a shared filesystem or a URI (s3://, gs://, ...). Ray 2.60 clusters use token
authentication (docs/platform.md §1): the client sets ``RAY_AUTH_MODE=token`` when a token file or
``RAY_AUTH_TOKEN`` is present.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.ray_local import LOOPBACK_ENV
from trials.errors import ConfigError, LrsweepError

__all__ = ["ClusterError", "follow_logs", "job_logs", "job_status", "list_jobs", "stop_job", "submit", "use_token"]

CONNECT_TIMEOUT_S = 5.0  # an address where nothing answers is refused after this


class ClusterError(LrsweepError):
    """The Ray cluster answered, but refused or failed the request (unknown job, not a Ray
    dashboard, authentication)."""


def _check_reachable(address: str) -> None:
    """Refuse in seconds an address where nothing listens: Ray's client would retry a bare
    ``host:port`` for ~40 s, then raise a traceback."""
    if address == "auto":
        return
    url = urllib.parse.urlsplit(address if "://" in address else f"http://{address}")
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host, port = None, None
    if not host or url.scheme not in ("http", "https", "ray"):
        raise ConfigError("--address", address, "a Ray dashboard address such as http://127.0.0.1:8265")
    port = port or {"http": 80, "https": 443, "ray": 10001}[url.scheme]
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError("--address", address,
                          f"a Ray dashboard that answers ({host}:{port}: {reason})") from None


@contextlib.contextmanager
def _talking_to(address: str, has_token: bool = True) -> Iterator[None]:
    """Ray's client errors as one-line :class:`ClusterError` s."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - only the client's own errors become user errors
        if not (isinstance(exc, (ConnectionError, RuntimeError, ValueError, PermissionError))
                or type(exc).__module__.startswith("ray")):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        if not has_token and any(word in message.lower() for word in ("auth", "401", "403", "token")):
            raise ClusterError(f"Ray cluster at {address} wants its token: set RAY_AUTH_TOKEN or pass --token-file "
                               "(lrsweep never sends this machine's own ~/.ray/auth_token)") from None
        raise ClusterError(f"Ray cluster at {address}: {message}") from None


def use_token(token_file: str | None = None) -> bool:
    """Authenticate to the cluster with ITS token: ``RAY_AUTH_TOKEN``, or the file the user
    names — never this machine's own ``~/.ray/auth_token`` (the token of the local Ray that
    ``lrsweep run`` starts, which a remote cluster must not receive). Returns whether a token
    is in use; without one, requests go out unauthenticated and a token-protected cluster
    refuses them (:func:`_talking_to` says what to do)."""
    token = os.environ.get("RAY_AUTH_TOKEN") or None
    if token_file:
        try:
            token = Path(token_file).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError("--token-file", token_file, f"a readable file holding the cluster's token "
                                                          f"({exc.strerror or exc})") from None
        if not token:
            raise ConfigError("--token-file", token_file, "a file holding the cluster's token (it is empty)")
    if token:
        os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    else:
        os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    _refresh_ray_auth()
    return bool(token)


def _refresh_ray_auth() -> None:
    """Make an already imported Ray read the authentication settings again (it caches them)."""
    import sys

    raylet = sys.modules.get("ray._raylet")
    if raylet is not None:
        try:
            raylet.Config.initialize("")
            raylet.AuthenticationTokenLoader.instance().reset_cache()
        except AttributeError:  # pragma: no cover - a Ray without token authentication
            pass


def _client(address: str, token_file: str | None = None) -> Any:
    _check_reachable(address)
    has_token = use_token(token_file)
    from ray.job_submission import JobSubmissionClient

    with _talking_to(address, has_token):
        return JobSubmissionClient(address)


_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _store_for_cluster(spec_path: Path, store: str | None, *, address: str, shared: bool = False) -> str:
    """The store as the cluster will see it: resolved exactly as ``lrsweep run`` resolves it
    (:func:`orchestrator.execution.resolve_store`). A path on this machine is refused for a
    remote cluster unless ``shared`` says it is mounted at the same path on every node."""
    import urllib.parse

    from orchestrator.execution import resolve_store
    from orchestrator.spec import load_spec

    root = resolve_store(load_spec(spec_path), spec_path, store)
    host = urllib.parse.urlsplit(address if "://" in address else f"http://{address}").hostname
    if "://" not in root and not shared and host not in _LOOPBACK_HOSTS:
        raise ConfigError("store", root, f"a URI (s3://..., gs://...) or a path shared by every node: this path on "
                                         f"this machine is not reachable from a remote cluster ({address}); pass "
                                         "--shared-store if it is mounted at the same path there")
    return root


def submit(spec_path: str | os.PathLike[str], *, address: str, store: str | None = None,
           wait: bool = False, timeout_s: float = 3600.0, shared_store: bool = False,
           token_file: str | None = None) -> str:
    """Submit the sweep; returns the job id (and waits for it to end when ``wait``)."""
    spec_path = Path(spec_path).resolve()
    # validates the spec and the store before anything is sent
    store_root = _store_for_cluster(spec_path, store, address=address, shared=shared_store)
    workdir = Path(tempfile.mkdtemp(prefix="lrsweep-job-"))
    try:
        shutil.copy(spec_path, workdir / spec_path.name)
        entrypoint = (f"lrsweep run {shlex.quote(spec_path.name)} --address auto --quiet "
                      f"--store {shlex.quote(store_root)}")
        client = _client(address, token_file)
        with _talking_to(address, "RAY_AUTH_TOKEN" in os.environ):
            job_id = client.submit_job(
                entrypoint=entrypoint,
                runtime_env={"working_dir": str(workdir), "env_vars": dict(LOOPBACK_ENV)},
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if wait:
        deadline = time.monotonic() + timeout_s
        while job_status(job_id, address=address, token_file=token_file) not in ("SUCCEEDED", "FAILED", "STOPPED"):
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
    return job_id


def job_status(job_id: str, *, address: str, token_file: str | None = None) -> str:
    client = _client(address, token_file)
    with _talking_to(address, "RAY_AUTH_TOKEN" in os.environ):
        return str(client.get_job_status(job_id).value)


def job_logs(job_id: str, *, address: str, token_file: str | None = None) -> str:
    client = _client(address, token_file)
    with _talking_to(address, "RAY_AUTH_TOKEN" in os.environ):
        return str(client.get_job_logs(job_id))


def follow_logs(job_id: str, *, address: str, token_file: str | None = None, write: Any = None) -> str:
    """Stream a job's logs as they come (``lrsweep logs --follow``) until it ends; returns
    its final status."""
    import asyncio
    import sys

    write = write or sys.stdout.write
    client = _client(address, token_file)

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    with _talking_to(address, "RAY_AUTH_TOKEN" in os.environ):
        asyncio.run(tail())
        return str(client.get_job_status(job_id).value)


def list_jobs(*, address: str, token_file: str | None = None) -> list[dict[str, Any]]:
    """The sweeps submitted to the cluster (``lrsweep jobs``), newest first."""
    client = _client(address, token_file)
    with _talking_to(address, "RAY_AUTH_TOKEN" in os.environ):
        jobs = client.list_jobs()
    out = []
    for job in jobs:
        entry = str(job.entrypoint or "")
        if not entry.startswith("lrsweep run "):
            continue
        out.append({"job_id": job.submission_id or job.job_id, "status": str(job.status.value),
                    "sweep_file": shlex.split(entry)[2] if len(shlex.split(entry)) > 2 else "",
                    "start_time": job.start_time, "end_time": job.end_time})
    return sorted(out, key=lambda j: -(j["start_time"] or 0))


def stop_job(job_id: str, *, address: str, token_file: str | None = None) -> str:
    client = _client(address, token_file)
    with _talking_to(address, "RAY_AUTH_TOKEN" in os.environ):
        stopped = client.stop_job(job_id)
    return f"{job_id}: {'stop requested' if stopped else 'not running'}"
