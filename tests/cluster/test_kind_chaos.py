"""Chaos on a cluster, against the fake API: the requests each verb sends, the rollbacks applied at
the fault's bound or on heal, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from inferbox.cluster.chaos import KubeChaos, without_gateway_hops
from inferbox.cluster.kube import KubeApi
from inferbox.errors import PlatformError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.topology import Model, read_topology
from inferbox.waiting import eventually
from tests.cluster.fakekube import FakeCluster

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)
MODEL: Model = next(m for m in read_topology(MANIFESTS).models if m.tenant == "tenant-c")


def _pod(name: str, namespace: str, labels: dict[str, str], ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.fixture
def cluster(fake_cluster: FakeCluster) -> FakeCluster:
    # The namespaces the platform's manifests create (the fake API, like a real one, refuses objects
    # in a namespace that does not exist).
    for namespace in sorted({o.namespace for o in MANIFESTS if o.namespace} | {"envoy-gateway-system"}):
        fake_cluster.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    labels = {"serving.kserve.io/inferenceservice": MODEL.name}
    fake_cluster.put(_pod("pytorch-resnet-a", "tenant-c", labels))
    fake_cluster.put(_pod("pytorch-resnet-b", "tenant-c", labels))
    fake_cluster.put(_pod("pytorch-resnet-c", "tenant-c", labels, ready=False))
    gateway = {"gateway.envoyproxy.io/owning-gateway-name": "inference-gateway"}
    fake_cluster.put(_pod("envoy-gw-1", "envoy-gateway-system", gateway))
    return fake_cluster


def test_a_replica_is_killed_by_deleting_its_pod_with_grace_zero(cluster: FakeCluster, fake_api: KubeApi) -> None:
    chaos = KubeChaos(fake_api, MANIFESTS, None)
    fault = chaos.kill_replica(MODEL, 1, starting=False)
    assert cluster.deleted == [("Pod", "tenant-c", "pytorch-resnet-b", "0")]
    assert fault.bound_s == 0
    assert "pytorch-resnet-b" in fault.target
    chaos.kill_replica(MODEL, 0, starting=True)
    assert cluster.deleted[-1][2] == "pytorch-resnet-c", "the starting replica"


def test_a_missing_replica_is_refused(cluster: FakeCluster, fake_api: KubeApi) -> None:
    with pytest.raises(PlatformError, match="2 ready pod"):
        KubeChaos(fake_api, MANIFESTS, None).kill_replica(MODEL, 5, starting=False)
    assert cluster.deleted == []


def test_the_gateway_is_killed_by_deleting_its_proxy_pods(cluster: FakeCluster, fake_api: KubeApi) -> None:
    KubeChaos(fake_api, MANIFESTS, None).kill_gateway()
    assert cluster.deleted == [("Pod", "envoy-gateway-system", "envoy-gw-1", "0")]


def test_the_token_issuer_comes_back_at_the_bound(cluster: FakeCluster, fake_api: KubeApi) -> None:
    issuer = MANIFESTS.get("Deployment", "jwt-server", "inference-system")
    assert issuer is not None
    cluster.put(issuer.body)
    chaos = KubeChaos(fake_api, MANIFESTS, None)
    chaos.stop_component("token-issuer", 0.3)
    deployment = cluster.find("Deployment", "jwt-server", "inference-system")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 0
    assert len(chaos.active()) == 1

    def back() -> None:
        found = cluster.find("Deployment", "jwt-server", "inference-system")
        assert found is not None
        assert found["spec"]["replicas"] == 1, "still scaled to zero"

    eventually(back, timeout_s=5, interval_s=0.05)  # nobody healed it: the bound did
    assert chaos.active() == []


def test_a_partition_narrows_the_tenants_policies_and_heal_restores_them(
    cluster: FakeCluster, fake_api: KubeApi
) -> None:
    chaos = KubeChaos(fake_api, MANIFESTS, None)
    fault = chaos.partition("tenant-c", 60)
    applied = [b for b in cluster.applied if b["kind"] == "NetworkPolicy"]
    narrowed = next(b for b in applied if b["metadata"]["name"] == "allow-platform-ingress")
    peers = [p for rule in narrowed["spec"]["ingress"] for p in rule.get("from", [])]
    assert not any(
        (p.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        in ("istio-system", "knative-serving")
        for p in peers
    ), "the gateway's hops are no longer admitted"
    before = len(cluster.applied)
    healed = chaos.heal(fault.id)
    assert healed is not None
    assert healed.healed is not None
    restored = [b for b in cluster.applied[before:] if b["metadata"]["name"] == "allow-platform-ingress"]
    original = next(
        p.body
        for p in MANIFESTS.of_kind("NetworkPolicy")
        if p.name == "allow-platform-ingress" and p.namespace == "tenant-c"
    )
    assert restored == [original]


def test_a_stall_leaves_its_own_resume_inside_the_container(cluster: FakeCluster, fake_api: KubeApi) -> None:
    calls: list[tuple[str, str, str, list[str]]] = []

    def exec_in(namespace: str, pod: str, container: str, argv: list[str]) -> str:
        calls.append((namespace, pod, container, argv))
        return ""

    chaos = KubeChaos(fake_api, MANIFESTS, exec_in)
    fault = chaos.stall_replica(MODEL, 5, 0)
    assert calls[0][:3] == ("tenant-c", "pytorch-resnet-a", "kserve-container")
    assert "kill -STOP 1" in calls[0][3][2]
    assert "sleep 6; kill -CONT 1" in calls[0][3][2]
    chaos.heal(fault.id)
    assert calls[-1][3] == ["sh", "-c", "kill -CONT 1"]


def test_a_rule_left_without_peers_is_dropped() -> None:
    policy = {
        "spec": {
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}}]}
            ]
        }
    }
    assert without_gateway_hops(policy)["spec"]["ingress"] == []
