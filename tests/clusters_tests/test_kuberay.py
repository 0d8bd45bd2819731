"""The KubeRay recipes (clusters/kuberay-*.yaml): valid for the pinned KubeRay's CRDs, token
authentication on every Ray container, the store reachable from every node, sized resources."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_fields import CrdFields

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = ROOT / "clusters"
FIELDS = CrdFields(Path(__file__).with_name("data") / "kuberay-v1.7.0-fields.txt")
MANIFESTS = sorted(CLUSTERS.glob("kuberay-*.yaml"))
TOKEN_SECRET, TOKEN_KEY = "lrsweep-ray-token", "auth_token"
IMAGE = "registry.example.com/lrsweep:0.1.0-cuda"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _ray(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in _docs(path) if doc["apiVersion"] == "ray.io/v1"]


def _cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def _groups(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _cluster_spec(doc)
    return [spec["headGroupSpec"], *spec["workerGroupSpecs"]]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pods = [group["template"]["spec"] for group in _groups(doc)]
    if "submitterPodTemplate" in doc.get("spec", {}):
        pods.append(doc["spec"]["submitterPodTemplate"]["spec"])
    return [c for pod in pods for c in [*pod.get("initContainers", []), *pod["containers"]]]


def test_the_recipes_exist_and_parse() -> None:
    assert [p.name for p in MANIFESTS] == ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"]
    kinds = [doc["kind"] for path in MANIFESTS for doc in _docs(path)]
    assert kinds == ["PersistentVolumeClaim", "RayCluster", "RayJob"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_only_fields_of_the_pinned_crds(path: Path) -> None:
    for doc in _ray(path):
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
        assert FIELDS.violations(doc["kind"], doc["spec"]) == []


def test_the_field_check_catches_typos_types_and_enums() -> None:
    doc = copy.deepcopy(_ray(CLUSTERS / "kuberay-raycluster.yaml")[0])
    spec = doc["spec"]
    spec["authOption"] = spec.pop("authOptions")                       # a typo: pruned, no token
    spec["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0            # must be a string
    spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["envv"] = []
    spec["workerGroupSpecs"][0]["replicas"] = "2"
    job = copy.deepcopy(_ray(CLUSTERS / "kuberay-rayjob.yaml")[0])
    job["spec"]["rayClusterSpec"]["authOptions"]["mode"] = "tokens"
    assert FIELDS.violations("RayCluster", spec) == [
        "spec.headGroupSpec.rayStartParams.num-cpus: expected string, got int 0",
        "spec.workerGroupSpecs[0].replicas: expected integer, got str '2'",
        "spec.workerGroupSpecs[0].template.spec.containers[0].envv: unknown field",
        "spec.authOption: unknown field",
    ]
    assert FIELDS.violations("RayJob", job["spec"]) == [
        "spec.rayClusterSpec.authOptions.mode: 'tokens' is not one of ['disabled', 'token']"]


def test_the_field_list_is_kuberay_v1_7_0() -> None:
    assert "KubeRay v1.7.0" in FIELDS.header and "59d663aeec13760646da3db9c1cf8cfe883e30b7" in FIELDS.header
    assert FIELDS.fields["RayCluster"]["spec.authOptions.mode"].enum == ("disabled", "token")
    assert FIELDS.fields["RayCluster"]["spec.authOptions.secretName"].type == "string"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_ray_container_and_client_gets_the_token(path: Path) -> None:
    for doc in _ray(path):
        spec = _cluster_spec(doc)
        # The operator hands the Secret to its own dashboard client and the job submitter.
        assert spec["authOptions"] == {"mode": "token", "secretName": TOKEN_SECRET}
        assert tuple(map(int, spec["rayVersion"].split("."))) >= (2, 52)  # KubeRay's minimum for tokens
        containers = _containers(doc)
        assert len(containers) == 1 + len(spec["workerGroupSpecs"])
        for container in containers:
            env = {e["name"]: e for e in container.get("env", [])}
            assert env["RAY_AUTH_MODE"] == {"name": "RAY_AUTH_MODE", "value": "token"}, container["name"]
            assert env["RAY_AUTH_TOKEN"] == {"name": "RAY_AUTH_TOKEN", "valueFrom": {
                "secretKeyRef": {"name": TOKEN_SECRET, "key": TOKEN_KEY}}}, container["name"]
    assert "auth_token=" not in path.read_text().replace("--from-literal=auth_token=", "")


def test_the_results_volume_is_defined_and_mounted_on_every_node() -> None:
    pvc, cluster = _docs(CLUSTERS / "kuberay-raycluster.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert set(pvc["spec"]) <= {"accessModes", "resources", "storageClassName", "volumeMode",
                                "volumeName", "selector", "dataSource", "dataSourceRef"}
    assert pvc["spec"]["resources"]["requests"]["storage"].endswith("Gi")
    for group in _groups(cluster):
        pod = group["template"]["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v}
        assert claims == {"shared": pvc["metadata"]["name"]}
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["shared"] == "/shared"  # the same store path on every node


def test_the_rayjob_store_is_s3_with_credentials_on_every_node() -> None:
    (job,) = _ray(CLUSTERS / "kuberay-rayjob.yaml")
    entry = job["spec"]["entrypoint"].split()
    assert entry[:2] == ["lrsweep", "run"] and entry[entry.index("--store") + 1].startswith("s3://")
    for container in _containers(job):
        assert {"secretRef": {"name": "lrsweep-s3"}} in container["envFrom"], container["name"]
        assert not any(e["name"].startswith("AWS_") and "value" in e for e in container.get("env", []))
    head = _groups(job)[0]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    config_maps = {v["name"] for v in head["volumes"] if "configMap" in v}
    assert entry[2].startswith(mounts["sweeps"] + "/") and "sweeps" in config_maps


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_resources_images_and_the_head_keeps_no_trials(path: Path) -> None:
    for doc in _ray(path):
        head = _cluster_spec(doc)["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0"
        for container in _containers(doc):
            assert container["image"] == IMAGE
            res = container["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and res["requests"] == res["limits"]
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/dev/shm" in mounts  # Ray's object store; a pod's default is 64 MiB


def _worker_pod(doc: dict[str, Any]) -> tuple[float, float]:
    (group,) = _cluster_spec(doc)["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    return float(limits["cpu"]), float(limits["nvidia.com/gpu"])


def _example_resources() -> dict[str, tuple[float, float]]:
    found = {}
    for path in sorted((ROOT / "examples").glob("*.toml")):
        res = tomllib.loads(path.read_text()).get("resources", {})
        if res.get("gpu", 0) > 0:
            found[path.name] = (float(res.get("cpu", 1)), float(res["gpu"]))
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_gpu_workers_pack_the_examples_small_trials(path: Path) -> None:
    examples = _example_resources()
    assert any(gpu < 1 for _, gpu in examples.values()), "no example with a GPU fraction"
    for doc in _ray(path):
        pod_cpu, pod_gpu = _worker_pod(doc)
        for name, (cpu, gpu) in examples.items():
            by_gpu, by_cpu = math.floor(pod_gpu / gpu + 1e-9), math.floor(pod_cpu / cpu + 1e-9)
            assert by_gpu >= 1 and by_cpu >= by_gpu, f"{name}: {by_cpu} trials by CPU, {by_gpu} by GPU"
            if gpu < 1:
                assert min(by_gpu, by_cpu) >= 2, name  # a fraction really shares the GPU
