"""Ray must stay on 127.0.0.1 (docs/platform.md §1): every listener of an embedded Ray is loopback.

Listeners are read from /proc (sockets owned by the driver and every descendant process), so
the check needs no extra package and sees every Ray daemon and worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

PROBE = textwrap.dedent(
    r"""
    import json, os, socket
    from orchestrator.ray_local import init_ray

    def descendants(root):
        children = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(pid))
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def socket_inodes(pid):
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            pass
        return inodes

    def listening():
        table = {}
        for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
            for line in open(f"/proc/net/{name}").read().splitlines()[1:]:
                parts = line.split()
                if parts[3] != "0A":  # LISTEN
                    continue
                hexip, hexport = parts[1].split(":")
                raw = bytes.fromhex(hexip)
                if family == socket.AF_INET:
                    ip = socket.inet_ntop(family, raw[::-1])
                else:
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    ip = socket.inet_ntop(family, raw)
                table[parts[9]] = (ip, int(hexport, 16))
        return table

    init_ray(num_cpus=1)
    import ray
    ray.get(ray.remote(lambda: 1).remote())  # make sure a worker is up
    node_ip = ray.nodes()[0]["NodeManagerAddress"]
    table = listening()
    listeners = []
    for pid in descendants(os.getpid()):
        for inode in socket_inodes(pid):
            if inode in table:
                listeners.append([pid, *table[inode]])
    ray.shutdown()
    print(json.dumps({"listeners": listeners, "node_ip": node_ip}))
    """
)

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def test_embedded_ray_listens_only_on_loopback():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["node_ip"] == "127.0.0.1"
    assert len(data["listeners"]) >= 3, data  # gcs, raylet, a worker: the probe saw Ray's sockets
    exposed = [s for s in data["listeners"] if s[1] not in LOOPBACK]
    assert exposed == []
