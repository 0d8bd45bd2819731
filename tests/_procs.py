"""Linux process tables read from /proc, for tests that kill or count processes."""

from __future__ import annotations

import os
from pathlib import Path


def process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state, start time) of every live process."""
    out = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        out[int(name)] = (int(fields[1]), fields[0].decode(), fields[19].decode())
    return out


def descendants(root: int, table: dict) -> dict[int, str]:
    """pid -> start time of every process below ``root`` in ``table``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out[child] = table[child][2]
            todo.append(child)
    return out
