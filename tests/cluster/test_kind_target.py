"""The platform contract on a cluster, and the existing-cluster target, against the fake API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from inferbox.cluster import catalog, readback
from inferbox.cluster.kube import KubeApi
from inferbox.cluster.platform import KubePlatform
from inferbox.cluster.platform_step import required_crds
from inferbox.cluster.state import ClusterState, ensure_jwt_material, jwt_secrets
from inferbox.cluster.target import existing_target
from inferbox.contract import Capability, Platform
from inferbox.errors import InferboxError, PlatformError
from inferbox.jwtserver.clients import read_credentials
from inferbox.jwtserver.keystore import KeyStore
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.profile import load_profile
from inferbox.targets import TargetOptions, target_names
from inferbox.topology import read_topology
from tests.cluster.fakekube import FakeCluster, crd_object, namespace
from tests.cluster.fakes import _workload

CRDS = {k.crd_name: k for k in catalog.ALL}
PROFILE = load_profile()
TOPOLOGY = read_topology(load_manifests())
TENANTS = [t.name for t in TOPOLOGY.tenants]


def _deployment(
    cluster: FakeCluster, namespace: str, name: str, image: str, labels: dict[str, str] | None = None
) -> None:
    body = _workload("Deployment", namespace, name)
    body["spec"]["template"]["spec"]["containers"] = [{"name": name, "image": image}]
    body["metadata"]["labels"].update(labels or {})
    cluster.put(body)


def _platform(cluster: FakeCluster, tmp_path: Path) -> KubePlatform:
    state = ClusterState(tmp_path / "state")
    ensure_jwt_material(state, None, TENANTS)
    return KubePlatform("kind", PROFILE, TOPOLOGY, cluster.api(), state, "http://127.0.0.1:8080")


def test_both_cluster_targets_register_themselves() -> None:
    assert {"embedded", "kind", "existing"} <= set(target_names())


def test_the_platform_implements_the_contract_with_the_kept_key(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    platform = _platform(fake_cluster, tmp_path)
    try:
        assert isinstance(platform, Platform)
        assert platform.capabilities == {
            Capability.TOKEN_SIGNING_KEY,
            Capability.WORKLOAD_NETWORK,
            Capability.MESH_PROBES,
            Capability.HELD_LOAD,
            Capability.NETWORK_POLICY,
            Capability.RESOURCE_QUOTA,
            Capability.METRICS,
            Capability.TRACES,
            Capability.GRAFANA,
            Capability.MESH_GRAPH,
            Capability.IN_CLUSTER_LOAD,
            Capability.FAILURE_EVIDENCE,
            # Chaos through the API; a partition needs the manifests' NetworkPolicies, so not here.
            Capability.KEY_ROTATION,
            Capability.KILL_REPLICA,
            Capability.KILL_GATEWAY,
            Capability.STOP_COMPONENT,
            Capability.PAUSE_REPLICA,
        }, "without the manifests it was deployed from, bounds could not be restored: no autoscaling"
        token = platform.tokens().valid("tenant-a")
        public = platform.signing_key().key.public_key()
        claims = jwt.decode(token, public, algorithms=["RS256"], audience=PROFILE.auth.audience)
        assert claims["tenant"] == "tenant-a"
        assert platform.credentials("tenant-c").tenant == "tenant-c"
        with pytest.raises(PlatformError, match="tenant-z"):
            platform.credentials("tenant-z")
    finally:
        platform.close()


def test_components_report_health_from_the_api(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    _deployment(fake_cluster, "inference-system", "jwt-server", "inferbox/jwt-server:0.1.0")
    _deployment(fake_cluster, "kserve", "kserve-controller-manager", "kserve/kserve-controller:v0.15.2")
    fake_cluster.never_ready.add("Deployment kserve/kserve-controller-manager")
    fake_cluster.put(crd_object(catalog.crd_for("serving.kserve.io", "InferenceService")))  # type: ignore[arg-type]
    for model in TOPOLOGY.models:
        fake_cluster.put(
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": model.name, "namespace": model.tenant},
                "spec": {},
            }
        )
    platform = _platform(fake_cluster, tmp_path)
    try:
        health = {h.name: h for h in platform.components()}
    finally:
        platform.close()
    assert health["inference-system/jwt-server"].healthy
    assert not health["kserve/kserve-controller-manager"].healthy
    assert health["kserve/kserve-controller-manager"].detail == "0/1 ready"
    assert health["tenant-a/sklearn-iris"].healthy


def test_logs_of_a_component_come_from_its_pods(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    _deployment(fake_cluster, "inference-system", "jwt-server", "inferbox/jwt-server:0.1.0")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jwt-server-1", "namespace": "inference-system", "labels": {"app": "jwt-server"}},
        "spec": {"containers": [{"name": "jwt-server"}]},
    }
    fake_cluster.put(pod)
    fake_cluster.logs[("inference-system", "jwt-server-1", "jwt-server")] = "issued token for tenant-a\n"
    platform = _platform(fake_cluster, tmp_path)
    try:
        assert "issued token for tenant-a" in platform.logs("inference-system/jwt-server")
        assert platform.logs("inference-system/absent") == ""
    finally:
        platform.close()


def test_versions_are_read_back_from_what_runs(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    _deployment(fake_cluster, "istio-system", "istiod", "docker.io/istio/pilot:1.26.3")
    _deployment(
        fake_cluster, "knative-serving", "controller", "gcr.io/knative-releases/controller@sha256:abc",
        {"app.kubernetes.io/version": "1.18.1"},
    )  # fmt: skip
    _deployment(fake_cluster, "kserve", "kserve-controller-manager", "kserve/kserve-controller:v0.15.2@sha256:def")
    platform = _platform(fake_cluster, tmp_path)
    try:
        running = platform.versions()
    finally:
        platform.close()
    assert running["istio"] == "1.26.3"
    assert running["knative-serving"] == "1.18.1"
    assert running["kserve"] == "v0.15.2"
    assert running["cert-manager"] == readback.NOT_FOUND
    assert running["kubernetes"] == "v1.32.5"
    # A bump that did not take shows up as a difference, whatever the spelling of the version.
    differ = readback.compare({"istio": "1.26.2", "knative-serving": "knative-v1.18.1", "kserve": "v0.15.2"}, running)
    assert differ == {"istio": ("1.26.2", "1.26.3")}


def _options(tmp_path: Path, **extra: Any) -> TargetOptions:
    return TargetOptions(
        manifests_dir=DEFAULT_MANIFEST_DIR,
        profile=PROFILE,
        report_dir=tmp_path / "report",
        extra={"kube_state_dir": str(tmp_path / "state-root"), **extra},
    )


@pytest.fixture
def on_fake_cluster(fake_cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    monkeypatch.setattr(
        KubeApi, "from_kubeconfig", classmethod(lambda cls, context=None, kubeconfig=None: fake_cluster.api())
    )
    monkeypatch.setattr("inferbox.cluster.target.require_tools", lambda *a, **k: [])
    return fake_cluster


def test_existing_needs_a_context() -> None:
    with pytest.raises(InferboxError, match="--kube-context"), existing_target(_options(Path("/nonexistent"))):
        pass


def test_existing_uses_credentials_published_on_the_cluster_and_deletes_nothing(
    on_fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    installed = ClusterState(tmp_path / "elsewhere")
    ensure_jwt_material(installed, None, TENANTS)
    for secret in jwt_secrets(installed):
        on_fake_cluster.put(secret)
    before = set(on_fake_cluster.objects)
    options = _options(tmp_path, kube_context="staging", kube_gateway_url="http://127.0.0.1:9")
    with existing_target(options) as platform:
        assert platform.target == "existing"
        assert platform.gateway_url == "http://127.0.0.1:9"
        assert platform.signing_key().kid == KeyStore(installed.keys_dir).active().kid
        assert platform.credentials("tenant-a") == read_credentials(installed.credentials_file)["tenant-a"]
    assert set(on_fake_cluster.objects) == before
    assert [m for m, _ in on_fake_cluster.requests if m != "GET"] == []  # read only


def test_existing_without_credentials_says_how_to_get_them(on_fake_cluster: FakeCluster, tmp_path: Path) -> None:
    options = _options(tmp_path, kube_context="staging", kube_gateway_url="http://127.0.0.1:9")
    with pytest.raises(PlatformError, match="no inferbox client credentials") as caught, existing_target(options):
        pass
    assert "--deploy" in caught.value.fix


def test_deploy_refuses_a_cluster_without_the_platforms_crds(on_fake_cluster: FakeCluster, tmp_path: Path) -> None:
    options = _options(tmp_path, kube_context="staging", deploy=True)
    with pytest.raises(PlatformError, match="lacks CRDs") as caught, existing_target(options):
        pass
    assert "inferenceservices.serving.kserve.io" in caught.value.problem
    assert not any(method == "PATCH" for method, _ in on_fake_cluster.requests)


def test_deploy_applies_our_manifests_and_generates_the_credentials(
    on_fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    for name in required_crds(load_manifests()):
        on_fake_cluster.put(crd_object(CRDS[name]))
    # The platform's components are installed there already, with the namespaces they create.
    for component in ("knative-serving", "istio-system"):
        on_fake_cluster.put(namespace(component))
    options = _options(tmp_path, kube_context="staging", deploy=True, kube_gateway_url="http://127.0.0.1:9")
    with existing_target(options) as platform:
        assert set(platform.credentials(t).tenant for t in TENANTS) == set(TENANTS)
    for obj in load_manifests():
        assert on_fake_cluster.find(obj.kind, obj.name, obj.namespace or "") is not None, obj.ref
    assert on_fake_cluster.find("Secret", "jwt-server-keys", "inference-system") is not None


def test_status_shows_health_and_flags_versions_that_differ(
    on_fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from inferbox.cli import main

    _deployment(on_fake_cluster, "istio-system", "istiod", "docker.io/istio/pilot:1.26.3")
    with pytest.raises(SystemExit) as exited:
        main(["status", "--platform", "existing", "--kube-context", "staging"])
    assert exited.value.code == 1  # istio runs 1.26.3 where 1.26.2 is pinned
    out = capsys.readouterr().out
    assert "istio-system/istiod" in out
    assert "1.26.3" in out
