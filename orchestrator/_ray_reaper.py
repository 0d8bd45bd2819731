"""The watchdog that stops an embedded Ray when its driver dies (run as a script, stdlib only).

``orchestrator.ray_local.init_ray`` starts this before ``ray.init`` with a random token, as a
child of the driver in a session of its own (a Ctrl-C to the driver's terminal does not reach
it), and puts ``LRSWEEP_RAY_OWNER=<token>`` in the environment the GCS, the raylet and Ray's
other daemons inherit. While the driver lives the watchdog follows the process tree below it
every :data:`POLL_S` seconds and records as Ray's every process carrying the token and every
descendant of a recorded one (the agents and workers the raylet starts: the agents rename
themselves with setproctitle, which overwrites the environment that ``/proc`` shows, so the
token alone does not find them). When the driver exits or is killed the watchdog is
re-parented; it then stops every recorded process still alive (same pid and start time) and
their descendants: SIGTERM, then SIGKILL after :data:`GRACE_S` seconds.

Why a watchdog: Ray's own fate sharing ends the GCS and raylet with the driver, but its agents
notice only by polling the raylet and then spend about a minute failing to report to the dead
GCS (measured: 60 s). A process group cannot be used: the driver shares its group with whatever
started it (a shell script, pytest), which must not be signalled. The parent pid is polled
rather than a pipe waited on: a pipe's write end is inherited by any child the driver forks
without exec (multiprocessing), which would keep the watchdog waiting after the driver died.
Linux only (``/proc``).

Usage: ``python -I _ray_reaper.py TOKEN DRIVER_PID``
"""

from __future__ import annotations

import os
import signal
import sys
import time

MARKER_ENV = "LRSWEEP_RAY_OWNER"
POLL_S = 0.5
GRACE_S = 2.0


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, start time, state) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[19].decode(), fields[0].decode()


def _carries(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def observe(token: str, roots: list[int], ray: dict[int, str]) -> None:
    """Add to ``ray`` (pid -> start time) every process below ``roots`` or below a recorded
    process that carries the token or descends from a recorded one."""
    needle = f"{MARKER_ENV}={token}".encode()
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _stat(int(name))
            if info is not None and info[2] != "Z":
                children.setdefault(info[0], []).append(int(name))
                starts[int(name)] = info[1]
    for pid in [p for p, start in ray.items() if starts.get(p) != start]:
        del ray[pid]  # gone (or its pid reused)
    todo = [(root, False) for root in roots] + [(pid, True) for pid in ray]
    while todo:
        pid, is_ray = todo.pop()
        for child in children.get(pid, []):
            if child == os.getpid() or child in ray:
                continue
            if is_ray or _carries(child, needle):
                ray[child] = starts[child]
                todo.append((child, True))
            else:
                todo.append((child, False))


def reap(token: str, ray: dict[int, str], grace_s: float = GRACE_S) -> list[int]:
    """Stop every recorded process still alive and its descendants; returns the pids signalled."""
    signalled: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        observe(token, [], ray)
        for pid in ray:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        signalled += [p for p in ray if p not in signalled]
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            observe(token, [], ray)
            if not ray:
                break
            time.sleep(0.05)
    return signalled


def main(argv: list[str]) -> int:
    token, driver = argv[1], int(argv[2])
    ray: dict[int, str] = {}
    while os.getppid() == driver:  # re-parented (to init or a subreaper) once the driver is gone
        observe(token, [driver], ray)
        time.sleep(POLL_S)
    reap(token, ray)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
