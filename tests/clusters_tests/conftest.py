"""Fixtures for object-store and multi-node tests.

``s3_server``: moto's S3 server on 127.0.0.1 with a fresh bucket; the AWS variables are set
for the test only (``monkeypatch``) and restored afterwards.
``ray_cluster``: a head and two worker nodes on 127.0.0.1 (``ray_nodes.LocalRayCluster``) with
this process joined to it (``LocalRayCluster.joined``: the cluster's token in the environment
and in Ray's cached config, both restored afterwards); stops exactly what it started. ~6 s.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_nodes import LocalRayCluster
from s3_server import S3Server


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    with S3Server() as server:
        for name in S3Server.UNSET:
            monkeypatch.delenv(name, raising=False)
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def ray_cluster() -> Iterator[LocalRayCluster]:
    import ray

    if ray.is_initialized():  # an embedded Ray an earlier test of this process left up
        ray.shutdown()
    base = Path(tempfile.mkdtemp(prefix="lrc-", dir="/tmp"))  # short: AF_UNIX path limit
    cluster = LocalRayCluster(base, workers=2, cpus_per_worker=1)
    try:
        cluster.start()
        with cluster.joined():
            try:
                yield cluster
            finally:
                import ray

                if ray.is_initialized():
                    ray.shutdown()
    finally:
        try:
            cluster.stop()  # raises if anything of the cluster outlived it
        finally:
            shutil.rmtree(base, ignore_errors=True)
