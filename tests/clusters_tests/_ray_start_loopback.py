"""``ray start`` for a *worker* node that must stay on 127.0.0.1 (test helper; run as a script).

Ray 2.60 offers no flag for this (measured here, see ``ray_nodes.py``):
- with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (what keeps every Ray socket on loopback)
  ``ray start --address=…`` refuses: "Multi-node Ray clusters are not supported on Windows and OSX";
- without it, ``ray start`` rewrites ``127.0.0.1`` (in ``--address`` and ``--node-ip-address``)
  to the machine's network address, so the node would register and listen there.

So this runs Ray's own ``ray start`` entry point with exactly two changes, both in this process
only: the multi-node guard is passed, and "this node's IP" is 127.0.0.1 — which is what
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes it for every process this one starts (they inherit
the variable). ``ray_nodes.py`` checks afterwards that every listener of the node is on loopback,
so a Ray upgrade that changes either function fails a test instead of opening a port.
"""

from __future__ import annotations

import os
import sys

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # inherited by the raylet and its agents

import ray._private.ray_constants as ray_constants  # noqa: E402
import ray._private.services as services  # noqa: E402


def _loopback_node_ip(address: str | None = None) -> str:
    return "127.0.0.1"


ray_constants.ENABLE_RAY_CLUSTER = True  # the `ray start --address` multi-node guard
services.get_node_ip_address = _loopback_node_ip

if __name__ == "__main__":
    from ray.scripts.scripts import main

    sys.exit(main())
