"""A multi-node Ray cluster on 127.0.0.1 for tests: one head and N worker nodes, each its own
``ray start --block`` process with its own ports and temp dir.

Measured on Ray 2.60 (2 cores):
- Each node is started in a new session, so it and the daemons it spawns (GCS, raylet,
  agents) share one process group; Ray *worker* processes put themselves in groups of their
  own. So every process of the cluster also carries a marker variable in its environment
  (inherited down to the Ray workers), and ``stop`` ends exactly the processes that carry it
  and nothing else on the machine (never ``ray stop``, which kills every Ray of the user).
- ``ray start`` drains for up to 30 s on SIGTERM; ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0``
  makes teardown immediate.
- Worker nodes go through ``_ray_start_loopback.py`` (why: its docstring); the head is a plain
  ``ray start --head``. ``listeners()`` lets a test check that every socket stays on loopback.
- The cluster has its own token (``RAY_AUTH_MODE=token`` + ``RAY_AUTH_TOKEN``), handed to
  every node and to the driver through ``env``, so the user's ``~/.ray/auth_token`` is neither
  read nor written. A process that imported ``ray`` before ``RAY_AUTH_MODE`` was set keeps
  auth *disabled* (Ray caches its config in C++): ``joined()`` sets the variables and refreshes
  that cache, as Ray's own ``_enable_token_auth`` does, and restores both afterwards.
- When a node's raylet dies, its ``ray start --block`` process kills the node's other
  processes and exits 1; the GCS marks the node dead after its health checks fail (sped up
  here with ``RAY_health_check_*``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.ray_local import LOOPBACK_ENV

__all__ = ["LocalRayCluster", "RayNode", "free_port", "group_members", "listeners", "marked_processes"]

MARKER = "LRSWEEP_TEST_RAY_CLUSTER"  # environment variable naming the cluster a process belongs to
_SHIM = Path(__file__).with_name("_ray_start_loopback.py")
_BIN = Path(sys.executable).parent

# Node-side settings: fast health checks (a dead raylet is noticed in ~2 s instead of ~15 s)
# and no 30 s drain on SIGTERM.
_NODE_ENV = {
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(comm, pgid) of a live process, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return (comm, int(fields[2])) if fields[0] != "Z" else None  # fields: state, ppid, pgrp, ...


def group_members(pgid: int) -> dict[int, str]:
    """Live processes (pid -> name) of process group ``pgid``, zombies excluded."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) and stat[1] == pgid:
            found[int(entry.name)] = stat[0]
    return found


def marked_processes(marker: str) -> dict[int, str]:
    """Live processes (pid -> name) whose environment has ``LRSWEEP_TEST_RAY_CLUSTER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or not ours to read
        if needle in environ and (stat := _proc_stat(int(entry.name))):
            found[int(entry.name)] = stat[0]
    return found


def listeners(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by one of ``pids``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd) if fd.is_symlink() else ""
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue  # gone meanwhile
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                addr_hex, port_hex = cols[1].split(":")
                found.add((_decode_address(addr_hex, width), int(port_hex, 16)))
    return found


def _decode_address(hexaddr: str, width: int) -> str:
    raw = bytes.fromhex(hexaddr)
    if width == 8:  # little-endian IPv4
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


@dataclass
class RayNode:
    """One ``ray start --block`` process and the process group it leads."""

    name: str
    temp_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    node_id: str = ""

    @property
    def pgid(self) -> int:
        return self.process.pid  # started with start_new_session: leader of its own group

    def pids(self) -> dict[int, str]:
        return group_members(self.pgid)

    def raylet_pid(self) -> int:
        pids = [pid for pid, name in self.pids().items() if name == "raylet"]
        if len(pids) != 1:
            raise RuntimeError(f"{self.name}: expected one raylet, found {pids}; log:\n{self.log_tail()}")
        return pids[0]

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


@dataclass
class LocalRayCluster:
    """A head (``head_cpus`` CPUs) and ``workers`` worker nodes of ``cpus_per_worker`` CPUs.

    ``base_dir`` must be short (AF_UNIX paths under ~107 bytes, docs/platform.md §1). ``env`` is
    what a driver or a child process needs to join: loopback settings and the cluster token.
    """

    base_dir: Path
    workers: int = 2
    cpus_per_worker: int = 1
    head_cpus: int = 0
    dashboard: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    marker: str = field(default_factory=lambda: secrets.token_hex(8))
    node_env: dict[str, str] = field(default_factory=dict)  # more for every node, e.g. S3Server.env
    nodes: list[RayNode] = field(default_factory=list)
    gcs_port: int = 0
    dashboard_port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        return {**LOOPBACK_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    @property
    def worker_nodes(self) -> list[RayNode]:
        return self.nodes[1:]

    @contextmanager
    def joined(self) -> Iterator[dict[str, str]]:
        """This process set up as a driver of the cluster (token, loopback), undone on exit."""
        saved = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        _refresh_ray_auth()
        try:
            yield self.env
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _refresh_ray_auth()

    def processes(self) -> dict[int, str]:
        """Every live process of this cluster: node daemons and Ray workers (pid -> name)."""
        return marked_processes(self.marker)

    def start(self, timeout_s: float = 120.0) -> LocalRayCluster:
        """Start the head, then every worker node side by side; wait until all are up."""
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        try:
            head = self._launch("head", [
                str(_BIN / "ray"), "start", "--head", f"--port={self.gcs_port}",
                f"--num-cpus={self.head_cpus}", "--disable-usage-stats",
                f"--include-dashboard={'true' if self.dashboard else 'false'}",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={free_port()}",
            ])
            self._wait_started([head], timeout_s)
            started = [self.add_worker(wait=False) for _ in range(self.workers)]
            self._wait_started(started, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, *, wait: bool = True, timeout_s: float = 120.0) -> RayNode:
        node = self._launch(f"worker{len(self.nodes)}", [
            sys.executable, str(_SHIM), "start", f"--address={self.address}",
            f"--num-cpus={self.cpus_per_worker}",
        ])
        if wait:
            self._wait_started([node], timeout_s)
        return node

    def _launch(self, name: str, cmd: list[str]) -> RayNode:
        temp_dir = self.base_dir / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.base_dir / f"{name}.log"
        cmd = [*cmd, f"--temp-dir={temp_dir}", f"--dashboard-agent-listen-port={free_port()}",
               "--min-worker-port=0", "--max-worker-port=0", "--block"]
        env = {**os.environ, **self.env, **_NODE_ENV, **self.node_env,
               MARKER: self.marker, "PATH": f"{_BIN}:{os.environ.get('PATH', '')}"}
        with open(log_path, "wb") as log:
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        node = RayNode(name, temp_dir, process, log_path)
        self.nodes.append(node)
        return node

    def _wait_started(self, nodes: list[RayNode], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for node in nodes:
            while "Ray runtime started." not in node.log_tail(100_000):
                if node.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} did not start (exit {node.process.poll()}):\n"
                                       f"{node.log_tail()}")
                time.sleep(0.2)
            node.node_id = _node_id_of(node)

    def kill_raylet(self, node: RayNode) -> int:
        """SIGKILL the raylet of ``node`` (a node failure); returns its pid."""
        pid = node.raylet_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop every node this cluster started (workers first), and nothing else."""
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
                try:
                    node.process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    pass
            _kill_group(node)
        deadline = time.monotonic() + grace_s
        while (left := self.processes()) and time.monotonic() < deadline:
            for pid in left:  # Ray workers outlive their raylet for a moment
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if left:
            raise RuntimeError(f"processes of the test cluster left after stop: {left}")


def _refresh_ray_auth() -> None:
    """Make an already imported Ray re-read RAY_AUTH_MODE / the token from the environment."""
    raylet = sys.modules.get("ray._raylet")
    if raylet is not None:
        raylet.Config.initialize("")
        raylet.AuthenticationTokenLoader.instance().reset_cache()


def _kill_group(node: RayNode, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while node.pids() and time.monotonic() < deadline:
        try:
            os.killpg(node.pgid, signal.SIGKILL)  # only while a member is alive: no pgid reuse
        except ProcessLookupError:
            break
        time.sleep(0.1)
    if node.process.poll() is None:
        node.process.wait(timeout_s)


def _node_id_of(node: RayNode) -> str:
    """The node id, from its raylet's command line (``--node_id=…``)."""
    argv = Path(f"/proc/{node.raylet_pid()}/cmdline").read_bytes().split(b"\0")
    for arg in argv:
        if arg.startswith(b"--node_id="):
            return arg.split(b"=", 1)[1].decode()
    raise RuntimeError(f"{node.name}: no --node_id in the raylet's command line")
