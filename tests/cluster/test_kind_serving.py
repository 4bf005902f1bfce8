"""The serving contract on a cluster, against the fake API server: revisions and their pods,
replica timings, autoscaler settings, bounds and promotions (and how they are undone), the
installer's canary rollout, and per-revision request counts from Prometheus."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from inferbox.cluster import catalog
from inferbox.cluster import serving as ks
from inferbox.cluster.actions import ApplyObjects
from inferbox.cluster.kube import KubeApi
from inferbox.cluster.platform import KubePlatform
from inferbox.cluster.platform_step import platform_step
from inferbox.cluster.state import ClusterState, ensure_jwt_material
from inferbox.contract import Capability
from inferbox.manifests import DEFAULT_MANIFEST_DIR, K8sObject, load_manifests
from inferbox.profile import load_profile
from inferbox.topology import read_topology
from tests.cluster.fakekube import FakeCluster, crd_object, namespace

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)


def _iris() -> K8sObject:
    obj = MANIFESTS.get("InferenceService", "sklearn-iris", "tenant-a")
    assert obj is not None
    return obj


IRIS = _iris()


@pytest.fixture
def cluster(fake_cluster: FakeCluster) -> FakeCluster:
    for kind in catalog.KNATIVE_SERVING + catalog.KSERVE:
        fake_cluster.put(crd_object(kind))
    fake_cluster.put(namespace("tenant-a"))
    return fake_cluster


def _pod(name: str, revision: str, ready: bool, created: str = "2026-01-01T00:00:10Z", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "tenant-a",
            "creationTimestamp": created,
            "labels": {ks.ISVC_LABEL: "sklearn-iris", ks.REVISION_LABEL: revision},
            **extra,
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2026-01-01T00:00:13Z"}
            ],
            "containerStatuses": [
                {"name": "kserve-container", "state": {"running": {"startedAt": "2026-01-01T00:00:11Z"}}}
            ],
        },
    }


def _knative(cluster: FakeCluster, traffic: dict[str, int], latest: str = "sklearn-iris-predictor-00002") -> None:
    cluster.put(
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "sklearn-iris-predictor", "namespace": "tenant-a"},
            "status": {
                "latestCreatedRevisionName": latest,
                "traffic": [{"revisionName": r, "percent": p} for r, p in traffic.items()],
            },
        }
    )
    for number in (1, 2):
        cluster.put(
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Revision",
                "metadata": {
                    "name": f"sklearn-iris-predictor-0000{number}",
                    "namespace": "tenant-a",
                    "labels": {ks.CONFIGURATION_LABEL: "sklearn-iris-predictor"},
                },
            }
        )


def test_revisions_report_traffic_and_pods(cluster: FakeCluster, fake_api: KubeApi) -> None:
    _knative(cluster, {"sklearn-iris-predictor-00001": 80, "sklearn-iris-predictor-00002": 20})
    cluster.put(_pod("a", "sklearn-iris-predictor-00001", ready=True))
    cluster.put(_pod("b", "sklearn-iris-predictor-00001", ready=False))
    cluster.put(_pod("c", "sklearn-iris-predictor-00002", ready=True, deletionTimestamp="2026-01-01T00:01:00Z"))
    found = {r.name: r for r in ks.revisions(fake_api, "tenant-a", "sklearn-iris")}
    first, second = found["sklearn-iris-predictor-00001"], found["sklearn-iris-predictor-00002"]
    assert (first.traffic_percent, first.ready, first.total, first.latest) == (80, 1, 2, False)
    assert (second.traffic_percent, second.ready, second.total, second.latest) == (20, 0, 0, True)  # terminating


def test_replica_timings_come_from_pod_times(cluster: FakeCluster, fake_api: KubeApi) -> None:
    cluster.put(_pod("new", "sklearn-iris-predictor-00002", ready=True))
    cluster.put(_pod("old", "sklearn-iris-predictor-00001", ready=True, created="2025-12-31T00:00:00Z"))
    since = ks._time("2026-01-01T00:00:09.5Z")
    assert since is not None
    [timing] = ks.replica_timings(fake_api, "tenant-a", "sklearn-iris", since)
    assert timing.replica == "new"
    assert timing.revision == "sklearn-iris-predictor-00002"
    assert timing.started_at is not None
    assert timing.ready_at is not None
    assert (timing.started_at - timing.requested_at, timing.ready_at - timing.requested_at) == (1.0, 3.0)


def test_settings_are_read_from_the_cluster(cluster: FakeCluster, fake_api: KubeApi) -> None:
    body = copy.deepcopy(IRIS.body)
    body["metadata"]["annotations"]["serving.kserve.io/some-controller-note"] = "x"  # the controllers' own: ignored
    cluster.put(body)
    config = MANIFESTS.get("ConfigMap", "config-autoscaler", "knative-serving")
    assert config is not None
    cluster.put({**copy.deepcopy(config.body), "data": {**config.body["data"], "_example": "docs"}})
    settings = ks.autoscaling_settings(fake_api, "tenant-a", "sklearn-iris")
    assert (settings.min_replicas, settings.max_replicas, settings.target) == (0, 3, 4)
    assert (settings.stable_window_s, settings.scale_to_zero_grace_s) == (6, 2)


def test_bounds_are_applied_on_the_manifest_and_restored_with_it(cluster: FakeCluster, fake_api: KubeApi) -> None:
    _knative(cluster, {"sklearn-iris-predictor-00001": 80, "sklearn-iris-predictor-00002": 20})
    cluster.put(_pod("a", "sklearn-iris-predictor-00001", ready=True))
    cluster.put(_pod("b", "sklearn-iris-predictor-00002", ready=True))
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e", "namespace": "tenant-a"},
            "reason": "FailedCreate",
            "message": "pods is forbidden: exceeded quota: tenant-quota",
        }
    )
    outcome = ks.set_bounds(fake_api, IRIS.body, 1, None, settle_s=3)
    predictor = cluster.applied[-1]["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert outcome.running == 2
    assert outcome.refusals
    assert "exceeded quota" in outcome.refusals[0]
    assert IRIS.body["spec"]["predictor"]["minReplicas"] == 0, "the manifest itself is never changed"


def _stored_predictor(cluster: FakeCluster) -> dict[str, Any]:
    stored = cluster.get("serving.kserve.io/v1beta1", "InferenceService", "sklearn-iris", "tenant-a")
    assert stored is not None
    predictor: dict[str, Any] = stored["spec"]["predictor"]
    return predictor


def test_promotion_removes_the_canary_percentage_from_the_stored_object(
    cluster: FakeCluster, fake_api: KubeApi
) -> None:
    """KServe promotes when the InferenceService it stores has no canaryTrafficPercent: what counts
    is what server-side apply leaves on the server, not what the request carried."""
    ks.rollout(fake_api, IRIS.body, settle_s=3)  # as the installer does: previous revision, then the canary
    assert _stored_predictor(cluster)["canaryTrafficPercent"] == 20
    _knative(cluster, {"sklearn-iris-predictor-00002": 100})
    ks.promote(fake_api, IRIS.body, settle_s=3)
    assert "canaryTrafficPercent" not in _stored_predictor(cluster)
    assert _stored_predictor(cluster)["model"]["storageUri"].endswith("/model-2"), "the canary's spec stays"


def test_server_side_apply_keeps_what_another_manager_set() -> None:
    """The fake API server's apply semantics, which the promotion relies on: a field its manager
    leaves out is removed, one another manager also applied stays."""
    cluster = FakeCluster()
    cluster.put(namespace("n"))
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    cluster.apply({**body, "data": {"a": "1", "b": "2"}}, dry_run=False, manager="inferbox")
    cluster.apply({**body, "data": {"b": "2"}}, dry_run=False, manager="someone-else")
    cluster.apply({**body, "data": {"c": "3"}}, dry_run=False, manager="inferbox")
    stored = cluster.get("v1", "ConfigMap", "c", "n")
    assert stored is not None
    assert stored["data"] == {"b": "2", "c": "3"}


def test_a_canary_rollout_applies_the_previous_predictor_first(cluster: FakeCluster, fake_api: KubeApi) -> None:
    assert ks.needs_rollout(fake_api, IRIS.body)
    status = {"components": {"predictor": {"latestRolledoutRevision": "r1", "latestReadyRevision": "r1"}}}
    cluster.put({**copy.deepcopy(IRIS.body), "status": status})
    ks.rollout(fake_api, IRIS.body, settle_s=3)
    base, full = cluster.applied[-2:]
    assert base["spec"]["predictor"]["model"]["storageUri"].endswith("/model")
    assert "canaryTrafficPercent" not in base["spec"]["predictor"]
    assert full["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert not ks.needs_rollout(fake_api, IRIS.body), "a rolled-out revision exists now"


def test_the_installer_rolls_canaries_out_by_their_own_step() -> None:
    step = platform_step(MANIFESTS, ("kserve",))
    rollouts = [i for i in step.items if isinstance(i, ks.RolloutInferenceService)]
    assert [r.body["metadata"]["name"] for r in rollouts] == ["sklearn-iris"]
    applied = [o for i in step.items if isinstance(i, ApplyObjects) for o in i.bodies]
    names = {(o["kind"], o["metadata"]["name"]) for o in applied}
    assert ("InferenceService", "pytorch-resnet") in names
    assert ("InferenceService", "sklearn-iris") not in names
    assert ("ConfigMap", "config-autoscaler") in names, "the test windows come with the manifests"


def test_served_requests_come_from_istio_counters() -> None:
    queries: list[str] = []

    def query(promql: str) -> list[dict[str, Any]]:
        queries.append(promql)
        return [
            {"metric": {"destination_workload": "sklearn-iris-predictor-00001-deployment"}, "value": [0, "321"]},
            {"metric": {"destination_workload": "sklearn-iris-predictor-00002-deployment"}, "value": [0, "79"]},
        ]

    counts = ks.served_requests(query, "tenant-a", "sklearn-iris")
    assert counts == {"sklearn-iris-predictor-00001": 321, "sklearn-iris-predictor-00002": 79}
    assert 'reporter="destination"' in queries[0]
    # A replica that stopped keeps its requests counted: each pod's highest value, not its last one.
    assert queries[0].startswith("sum by (destination_workload) (max_over_time(istio_requests_total{")


def test_the_platform_restores_a_promoted_canary_by_rolling_it_out_again(cluster: FakeCluster, tmp_path: Path) -> None:
    state = ClusterState(tmp_path / "state")
    ensure_jwt_material(state, None, ["tenant-a", "tenant-b", "tenant-c"])
    topology = read_topology(MANIFESTS)
    platform = KubePlatform(
        "kind", load_profile(), topology, cluster.api(), state, "http://127.0.0.1:8080", manifests=MANIFESTS
    )
    try:
        assert Capability.AUTOSCALING in platform.capabilities
        model = topology.model("sklearn-iris")
        _knative(cluster, {"sklearn-iris-predictor-00002": 100})
        platform.promote_canary(model, 3)
        assert "canaryTrafficPercent" not in cluster.applied[-1]["spec"]["predictor"]
        platform.restore_model(model, 3)
        base, full = cluster.applied[-2:]
        assert base["spec"]["predictor"]["model"]["storageUri"].endswith("/model"), "the previous revision first"
        assert full["spec"]["predictor"]["canaryTrafficPercent"] == 20
        platform.restore_model(model, 3)
        assert cluster.applied[-1]["spec"]["predictor"]["canaryTrafficPercent"] == 20, "no promotion: one apply"
        assert cluster.applied[-2] is not base
    finally:
        platform.close()
