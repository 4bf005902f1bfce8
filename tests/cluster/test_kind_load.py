"""Load workers inside a cluster: the Job is aimed at the gateway's in-cluster Service and at a master
on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inferbox.cluster.platform import KubePlatform
from inferbox.cluster.state import ClusterState, ensure_jwt_material
from inferbox.errors import InferboxError, PlatformError
from inferbox.load.kind_job import in_cluster_workers
from inferbox.manifests import load_manifests
from inferbox.profile import load_profile
from inferbox.topology import read_topology
from tests.cluster.fakekube import FakeCluster

TOPOLOGY = read_topology(load_manifests())


def _platform(cluster: FakeCluster, tmp_path: Path, target: str = "kind") -> KubePlatform:
    state = ClusterState(tmp_path / "state")
    ensure_jwt_material(state, None, [t.name for t in TOPOLOGY.tenants])
    return KubePlatform(target, load_profile(), TOPOLOGY, cluster.api(), state, "http://127.0.0.1:8080")


def _gateway_service(cluster: FakeCluster) -> None:
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "envoy-envoy-gateway-system-inference-gateway-5a1b2c3d",
                "namespace": "envoy-gateway-system",
                "labels": {"gateway.envoyproxy.io/owning-gateway-name": "inference-gateway"},
            },
            "spec": {"ports": [{"port": 80}]},
        }
    )


def test_workers_reach_the_gateway_service_and_a_master_on_the_kind_network(
    fake_cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _gateway_service(fake_cluster)
    platform = _platform(fake_cluster, tmp_path)

    def docker(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert cmd[:4] == ["docker", "network", "inspect", "kind"]
        return subprocess.CompletedProcess(cmd, 0, "172.18.0.1 fc00:f853:ccd:e793::1 \n", "")

    monkeypatch.setattr(subprocess, "run", docker)
    workers = in_cluster_workers(platform, None)
    assert (
        workers.gateway_url
        == "http://envoy-envoy-gateway-system-inference-gateway-5a1b2c3d.envoy-gateway-system.svc.cluster.local:80"
    )
    assert workers.master_host == "172.18.0.1"
    context = platform.api.context
    assert workers.kubectl == (("kubectl", "--context", context) if context else ("kubectl",))


def test_an_existing_cluster_needs_the_master_address(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    _gateway_service(fake_cluster)
    platform = _platform(fake_cluster, tmp_path, target="existing")
    with pytest.raises(InferboxError, match="--master-host"):
        in_cluster_workers(platform, None)
    assert in_cluster_workers(platform, "10.0.0.5").master_host == "10.0.0.5"


def test_a_missing_gateway_service_is_named(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    platform = _platform(fake_cluster, tmp_path)
    with pytest.raises(PlatformError, match="owning-gateway-name=inference-gateway"):
        platform.in_cluster_gateway_url()


def test_in_cluster_is_refused_on_the_embedded_target() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "inferbox.cli", "load", "smoke", "--in-cluster", "--workers", "2"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert "--platform kind/existing" in done.stdout + done.stderr
