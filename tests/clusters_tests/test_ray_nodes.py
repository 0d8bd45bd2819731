"""The multi-node test cluster itself: three ``ray start`` nodes on 127.0.0.1, a node loss, and
a teardown that ends exactly what it started (~12 s)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from ray_nodes import LocalRayCluster, listeners

pytestmark = pytest.mark.cluster


def test_three_nodes_a_lost_node_and_a_clean_stop(ray_cluster: LocalRayCluster) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = ray_cluster
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")

    @ray.remote(num_cpus=1)
    def where() -> tuple[str, int]:  # defined here so that it is pickled by value
        return ray.get_runtime_context().get_node_id(), os.getpid()

    head, (w1, w2) = cluster.head, cluster.worker_nodes
    assert len({head.node_id, w1.node_id, w2.node_id}) == 3
    assert {n["NodeID"] for n in ray.nodes() if n["Alive"]} == {head.node_id, w1.node_id, w2.node_id}
    assert ray.get_runtime_context().get_node_id() == head.node_id  # the driver joins the head

    # A task pinned to each worker node runs there, in a process the fixture accounts for.
    for node in (w1, w2):
        pinned = where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False))
        node_id, pid = ray.get(pinned.remote(), timeout=60)
        assert node_id == node.node_id
        assert pid in cluster.processes()

    # Every socket of every process of the cluster listens on loopback only.
    sockets = listeners(set(cluster.processes()))
    assert sockets and {addr for addr, _ in sockets} <= {"127.0.0.1", "::ffff:127.0.0.1"}

    # Lose w2: the GCS marks it dead, its `ray start` ends the rest of the node, work goes to w1.
    cluster.kill_raylet(w2)
    deadline = time.monotonic() + 30
    while next(n["Alive"] for n in ray.nodes() if n["NodeID"] == w2.node_id):
        assert time.monotonic() < deadline, "the GCS never marked the killed node dead"
        time.sleep(0.2)
    assert w2.process.wait(timeout=30) == 1
    # The node's agents exit on their own some seconds after `ray start` returns (up to ~13 s
    # seen on a loaded machine): wait for that with a deadline instead of assuming it.
    deadline = time.monotonic() + 60
    while (left := w2.pids()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == {}, f"processes of the lost node left after 60 s: {left}"
    assert {n["NodeID"] for n in ray.nodes() if n["Alive"]} == {head.node_id, w1.node_id}
    assert ray.get(where.remote(), timeout=60)[0] == w1.node_id  # the head has no CPUs

    # Stopping ends every process of the cluster and nothing else: an outsider started the
    # same way as a node (its own session, same parent) survives.
    outsider = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        ray.shutdown()
        cluster.stop()
        assert cluster.processes() == {}
        assert all(node.process.returncode is not None for node in cluster.nodes)
        assert outsider.poll() is None
    finally:
        outsider.kill()
        outsider.wait()


def test_joining_sets_and_restores_rays_auth_mode(tmp_path) -> None:
    from ray._raylet import AuthenticationMode, get_authentication_mode  # ray already imported

    before = get_authentication_mode(), os.environ.get("RAY_AUTH_TOKEN")
    cluster = LocalRayCluster(tmp_path)  # not started: joining is only environment and config
    with cluster.joined() as env:
        assert get_authentication_mode() == AuthenticationMode.TOKEN
        assert os.environ["RAY_AUTH_TOKEN"] == env["RAY_AUTH_TOKEN"] == cluster.token
    assert (get_authentication_mode(), os.environ.get("RAY_AUTH_TOKEN")) == before
