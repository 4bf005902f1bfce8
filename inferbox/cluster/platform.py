"""The platform contract on a Kubernetes cluster (Kind or existing): gateway, tokens, credentials,
component health and logs, and the versions actually running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferbox.client import GatewayClient
from inferbox.cluster import diagnostics, readback
from inferbox.cluster import held_load as kind_held
from inferbox.cluster import mesh as kind_mesh
from inferbox.cluster import serving as kind_serving
from inferbox.cluster.kube import KubeApi, KubeError, is_true
from inferbox.cluster.portforward import PortForward
from inferbox.cluster.state import ClusterState
from inferbox.contract import (
    Capability,
    ComponentHealth,
    Credentials,
    Fault,
    HeldLoad,
    InClusterLoadPlace,
    Observability,
    PlatformBase,
    ReplicaPause,
    SigningKey,
)
from inferbox.errors import PlatformError
from inferbox.held_load import check_bounds, run_workers
from inferbox.jwtserver.clients import read_credentials
from inferbox.jwtserver.keystore import KeyStore
from inferbox.manifests import ManifestSet
from inferbox.mesh import MeshClient, MeshSource, ProbeResult, QuotaStatus, ScaleOutcome, SourceKind, Workload
from inferbox.profile import ConformanceProfile
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus
from inferbox.tokens import TokenForge
from inferbox.topology import Model, Topology, ai_gateway_refs

# Namespaces whose Deployments are platform components (health, logs); tenants are added.
COMPONENT_NAMESPACES = (
    "inference-system",
    "envoy-gateway-system",
    "envoy-ai-gateway-system",
    "istio-system",
    "knative-serving",
    "kserve",
    "cert-manager",
    "monitoring",
)
# Query endpoints, reached by port-forward (127.0.0.1 only): (namespace, Service, port).
PROMETHEUS_SERVICE = ("monitoring", "prometheus-kube-prometheus-prometheus", 9090)
JAEGER_QUERY_SERVICE = ("monitoring", "jaeger-query", 16686)
GRAFANA_SERVICE = ("monitoring", "prometheus-grafana", 80)
KIALI_SERVICE = ("monitoring", "kiali", 20001)
KIALI_WEB_ROOT = "/kiali"  # kiali-server's default web root on Kubernetes (unconfirmed for chart 2.11.0)
# Where a failing check's evidence usually is: the request path, not the observability stack.
EVIDENCE_NAMESPACES = ("envoy-gateway-system", "inference-system", "istio-system", "knative-serving", "kserve")
LOG_TAIL_LINES = 2000


def component_health(api: KubeApi, topology: Topology) -> list[ComponentHealth]:
    """Every Deployment of the platform's namespaces, and every model's InferenceService."""
    health = []
    for namespace in [*COMPONENT_NAMESPACES, *(t.name for t in topology.tenants)]:
        try:
            deployments = api.list("apps/v1", "Deployment", namespace)
        except KubeError as exc:
            health.append(ComponentHealth(namespace, False, f"cannot list Deployments: {exc.message[:120]}"))
            continue
        for dep in deployments:
            status = dep.get("status") or {}
            want = int((dep.get("spec") or {}).get("replicas", 1))
            ready = int(status.get("readyReplicas", 0))
            # A scaled-to-zero model revision is healthy: Knative set replicas to 0 on purpose.
            ok = is_true(dep, "Available") or want == 0
            health.append(ComponentHealth(f"{namespace}/{dep['metadata']['name']}", ok, f"{ready}/{want} ready"))
    for model in topology.models:
        try:
            isvc = api.get("serving.kserve.io/v1beta1", "InferenceService", model.name, model.tenant)
        except KubeError as exc:
            health.append(ComponentHealth(f"{model.tenant}/{model.name}", False, exc.message[:120]))
            continue
        ok = is_true(isvc, "Ready")
        health.append(ComponentHealth(f"{model.tenant}/{model.name}", ok, "Ready" if ok else "not Ready"))
    return health


GATEWAY_NAMESPACE = "envoy-gateway-system"
GATEWAY_SERVICE_SELECTOR = "gateway.envoyproxy.io/owning-gateway-name=inference-gateway"


@dataclass
class KubePlatform(PlatformBase):
    """A platform on a cluster, reached through ``api`` (and a port-forward when not on Kind)."""

    target: str
    profile: ConformanceProfile
    topology: Topology
    api: KubeApi
    state: ClusterState
    gateway_url: str
    forwards: list[PortForward] = field(default_factory=list)
    port_forward_timeout_s: float = 30.0
    _clients: list[GatewayClient] = field(default_factory=list)
    _kube_client: Any = None
    _probes: Any = None
    manifests: ManifestSet | None = None  # what restore_model returns to
    _promoted: set[tuple[str, str]] = field(default_factory=set)
    _chaos: Any = None

    def __post_init__(self) -> None:
        if not self.state.credentials_file.exists():
            raise PlatformError(
                f"no client credentials for this cluster in {self.state.root}",
                "deploy the platform with inferbox (--deploy, or `inferbox up`), which generates them",
            )
        self._credentials = read_credentials(self.state.credentials_file)
        self._keys = KeyStore(self.state.keys_dir) if self.state.has_jwt_material() else None

    @property
    def capabilities(self) -> frozenset[Capability]:
        # Every workload is a pod with its own network; probe pods reach them with a mesh identity or
        # none; kindnet (kind >= 0.24) enforces NetworkPolicy; quotas are Kubernetes' own.
        caps = {
            Capability.WORKLOAD_NETWORK,
            Capability.MESH_PROBES,
            Capability.HELD_LOAD,  # from the tenants' probe pods
            Capability.NETWORK_POLICY,
            Capability.RESOURCE_QUOTA,
            # kube-prometheus-stack, Jaeger and Kiali are part of every install (inferbox.cluster.components).
            Capability.METRICS,
            Capability.TRACES,
            Capability.GRAFANA,
            Capability.MESH_GRAPH,
            Capability.IN_CLUSTER_LOAD,
            Capability.FAILURE_EVIDENCE,
        }
        if self.manifests is not None:
            caps.add(Capability.AUTOSCALING)  # bounds and rollouts are restored to the manifests
            if ai_gateway_refs(self.manifests):
                caps.add(Capability.AI_GATEWAY)
        if self._keys is not None:
            caps |= {Capability.TOKEN_SIGNING_KEY, Capability.KEY_ROTATION}
        # Chaos through the API: pod deletes, scaling, NetworkPolicies; a stall execs into the pod.
        caps |= {Capability.KILL_REPLICA, Capability.KILL_GATEWAY, Capability.STOP_COMPONENT, Capability.PAUSE_REPLICA}
        if self.manifests is not None:
            caps.add(Capability.PARTITION)
        return frozenset(caps)

    def gateway(self) -> GatewayClient:
        client = GatewayClient(self.gateway_url, self.profile)
        self._clients.append(client)
        return client

    def credentials(self, tenant: str) -> Credentials:
        if tenant not in self._credentials:
            raise PlatformError(
                f"no client credentials for tenant {tenant!r} (have: {', '.join(sorted(self._credentials))})",
                "re-deploy so the installer generates a client for every tenant",
            )
        return self._credentials[tenant]

    def signing_key(self) -> SigningKey:
        if self._keys is None:
            raise PlatformError(
                "the platform's signing key is not known here", "run with the state folder of the install"
            )
        return self._keys.active()

    def tokens(self) -> TokenForge:
        return TokenForge(self.signing_key(), self.profile)

    def components(self) -> list[ComponentHealth]:
        return component_health(self.api, self.topology)

    def logs(self, component: str) -> str:
        """``namespace/deployment``: the logs of every container of its pods."""
        namespace, _, name = component.partition("/")
        dep = self.api.get("apps/v1", "Deployment", name, namespace) if name else None
        if dep is None:
            return ""
        labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        parts = []
        for pod in self.api.list("v1", "Pod", namespace, selector):
            pod_name = pod["metadata"]["name"]
            for container in (pod.get("spec") or {}).get("containers") or []:
                try:
                    text = self.api.pod_log(namespace, pod_name, container["name"], LOG_TAIL_LINES)
                except KubeError as exc:
                    text = f"(no log: {exc})\n"
                parts.append(f"==> {pod_name}/{container['name']} <==\n{text}")
        return "\n".join(parts)

    def prometheus_url(self) -> str:
        """Prometheus' HTTP API (``/api/v1/query``), through a port-forward opened on first use."""
        return self._forwarded(*PROMETHEUS_SERVICE)

    def jaeger_query_url(self) -> str:
        """Jaeger's query API (``/api/traces``), through a port-forward opened on first use."""
        return self._forwarded(*JAEGER_QUERY_SERVICE)

    def observability(self) -> Observability:
        """Telemetry endpoints (port-forwards) and the catalogue of the pinned versions."""
        from inferbox.cluster import observability as kind_observability
        from inferbox.observability.prometheus import PrometheusClient

        prometheus = self.prometheus_url()
        client = PrometheusClient(prometheus)
        try:
            interval = client.longest_scrape_interval()
        finally:
            client.close()
        endpoints = kind_observability.Endpoints(
            prometheus,
            jaeger_query=self.jaeger_query_url(),
            grafana=self._forwarded(*GRAFANA_SERVICE),
            kiali=self._forwarded(*KIALI_SERVICE) + KIALI_WEB_ROOT,
        )
        return kind_observability.observability(endpoints, interval)

    def _forwarded(self, namespace: str, service: str, port: int) -> str:
        for forward in self.forwards:
            if (forward.namespace, forward.service, forward.port) == (namespace, service, port):
                return forward.url
        forward = PortForward(self.api.context, namespace, service, port).start(self.port_forward_timeout_s)
        self.forwards.append(forward)
        return forward.url

    def versions(self) -> dict[str, str]:
        return readback.running_versions(self.api)

    def ai_gateway_url(self) -> str:
        """The AI Gateway's proxy Service (Envoy Gateway labels it with its Gateway), port-forwarded."""
        refs = sorted(ai_gateway_refs(self.manifests)) if self.manifests is not None else []
        if not refs:
            raise self._missing(Capability.AI_GATEWAY)
        namespace, name = refs[0]
        selector = (
            f"gateway.envoyproxy.io/owning-gateway-name={name},"
            f"gateway.envoyproxy.io/owning-gateway-namespace={namespace}"
        )
        services = self.api.list("v1", "Service", GATEWAY_NAMESPACE, selector=selector)
        if not services:
            raise PlatformError(
                f"no Envoy Gateway proxy Service for the AI Gateway {namespace}/{name}",
                "check that Envoy Gateway programmed it (kubectl get gateway -A)",
            )
        return self._forwarded(GATEWAY_NAMESPACE, services[0]["metadata"]["name"], 80)

    def in_cluster_gateway_url(self) -> str:
        """The gateway as pods reach it: the Service Envoy Gateway created for our Gateway."""
        services = self.api.list("v1", "Service", GATEWAY_NAMESPACE, selector=GATEWAY_SERVICE_SELECTOR)
        if not services:
            raise PlatformError(
                f"no Service labelled {GATEWAY_SERVICE_SELECTOR} in {GATEWAY_NAMESPACE}",
                "check that Envoy Gateway programmed the Gateway (kubectl get gateway -A)",
            )
        name = services[0]["metadata"]["name"]
        return f"http://{name}.{GATEWAY_NAMESPACE}.svc.cluster.local:80"

    def in_cluster_load(self) -> InClusterLoadPlace:
        master = None
        if self.target == "kind":
            from inferbox.load.kind_job import kind_network_gateway

            master = kind_network_gateway()  # this machine on Kind's Docker network
        return InClusterLoadPlace(self.in_cluster_gateway_url(), self.api.context or None, master)

    # -- mesh and quotas (inferbox.cluster.mesh does the work through the official client) ----------
    def _api_client(self) -> Any:
        if self._kube_client is None:
            from kubernetes import client as kclient
            from kubernetes import config as kconfig

            cfg = kclient.Configuration()
            kconfig.load_kube_config(  # type: ignore[no-untyped-call]  # the package ships no types
                context=self.api.context or None, client_configuration=cfg, persist_config=False
            )
            self._kube_client = kclient.ApiClient(cfg)
        return self._kube_client

    def workloads(self) -> list[Workload]:
        return kind_mesh.model_workloads(self._api_client(), [(m.tenant, m.name) for m in self.topology.models])

    def _probe(self, source: MeshSource) -> kind_mesh.Probe:
        """The probe pod standing where ``source`` stands (the fleet is deployed on first use)."""
        if self._probes is None:
            fleet = kind_mesh.ProbeFleet(self._api_client(), [t.name for t in self.topology.tenants])
            self._probes = fleet  # torn down in close(), also when deploy fails half-way
            fleet.deploy()
        label = (
            source.tenant
            if source.kind is SourceKind.TENANT
            else ("gateway" if source.kind is SourceKind.GATEWAY else "outside")
        )
        return next(p for p in kind_mesh.probes([t.name for t in self.topology.tenants]) if p.label == label)

    def mesh_client(self, source: MeshSource) -> MeshClient:
        probe = self._probe(source)
        return kind_mesh.KindMeshClient(kind_mesh.kubernetes_exec(self._api_client()), probe, self._foreign_cert())

    @contextmanager
    def hold_requests(
        self, model: Model, token: str, payload: Any, count: int, seconds: float, limit_s: float
    ) -> Iterator[HeldLoad]:
        check_bounds(count, seconds, limit_s)
        probe = self._probe(MeshSource.in_tenant(model.tenant))
        run = kind_mesh.kubernetes_exec(self._api_client())

        def round_(_index: int, _stop: threading.Event, deadline: float) -> list[ProbeResult]:
            # The probe runs all ``count`` requests of a round; the next round starts when it ends.
            run_s = min(kind_held.ROUND_S, deadline - time.monotonic())
            if run_s <= 0:
                return []
            return kind_held.hold_round(run, probe, kind_held.hold_args(model, token, payload, count, seconds, run_s))

        with run_workers(HeldLoad(model.tenant, model.name, count, seconds), 1, limit_s, round_) as load:
            yield load

    def _foreign_cert(self) -> tuple[str, str]:
        """A client certificate from a CA the platform does not trust."""
        from inferbox.pki import CertificateAuthority

        authority = CertificateAuthority(self.state.root / "foreign-ca", "foreign-ca")
        issued = authority.issue("spiffe://foreign.example/ns/x/sa/y", self.state.root / "foreign-ca", "client")
        return issued.cert.read_text(), issued.key.read_text()

    def mesh_trust_anchors(self) -> list[bytes]:
        return kind_mesh.mesh_trust_anchors(self._api_client(), self.topology.tenants[0].name)

    def resource_quota(self, tenant: str) -> QuotaStatus | None:
        return kind_mesh.resource_quota(self._api_client(), tenant)

    def scale_model(self, model: Model, replicas: int, settle_s: float) -> ScaleOutcome:
        return self.set_scale_bounds(model, replicas, replicas, settle_s)

    # -- serving (inferbox.cluster.serving: KServe/Knative objects, pods, events) ---------------------
    def _isvc(self, model: Model) -> dict[str, Any]:
        obj = self.manifests.get("InferenceService", model.name, model.tenant) if self.manifests else None
        if obj is None:
            raise PlatformError(
                f"the manifests of this run define no InferenceService {model.tenant}/{model.name}",
                "run with the manifests the platform was deployed from (--manifests)",
            )
        return obj.body

    def autoscaling(self, model: Model) -> AutoscalingSettings:
        return kind_serving.autoscaling_settings(self.api, model.tenant, model.name)

    def revisions(self, model: Model) -> list[RevisionStatus]:
        return kind_serving.revisions(self.api, model.tenant, model.name)

    def replica_timings(self, model: Model, since: float) -> list[ReplicaTiming]:
        return kind_serving.replica_timings(self.api, model.tenant, model.name, since)

    def served_requests(self, model: Model) -> dict[str, int]:
        return kind_serving.served_requests(self._prometheus_query, model.tenant, model.name)

    def _prometheus_query(self, promql: str) -> list[dict[str, Any]]:
        import httpx

        response = httpx.get(f"{self.prometheus_url()}/api/v1/query", params={"query": promql}, timeout=10.0)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def set_scale_bounds(
        self, model: Model, min_replicas: int | None, max_replicas: int | None, settle_s: float
    ) -> ScaleOutcome:
        return kind_serving.set_bounds(self.api, self._isvc(model), min_replicas, max_replicas, settle_s)

    def promote_canary(self, model: Model, settle_s: float) -> None:
        kind_serving.promote(self.api, self._isvc(model), settle_s)
        self._promoted.add((model.tenant, model.name))

    def restore_model(self, model: Model, settle_s: float) -> None:
        body = self._isvc(model)
        if (model.tenant, model.name) in self._promoted:
            # The promoted revision is now the rolled-out one: the split comes back through the
            # manifest's previous predictor and then the canary, as on a fresh install.
            kind_serving.rollout(self.api, body, settle_s)
            self._promoted.discard((model.tenant, model.name))
        else:
            self.api.apply(body)

    # -- chaos (inferbox.cluster.chaos: faults through the API, rolled back at their bound) ------------
    @property
    def chaos(self) -> Any:
        if self._chaos is None:
            from inferbox.cluster.chaos import KubeChaos

            def exec_in(namespace: str, pod: str, container: str, argv: list[str]) -> str:
                return kind_mesh.kubernetes_exec(self._api_client())(namespace, pod, container, argv)

            self._chaos = KubeChaos(self.api, self.manifests, exec_in)
        return self._chaos

    def kill_replica(self, model: Model, replica: int = 0, starting: bool = False) -> Fault:
        fault: Fault = self.chaos.kill_replica(model, replica, starting)
        return fault

    def stall_replica(self, model: Model, seconds: float, replica: int = 0) -> Fault:
        fault: Fault = self.chaos.stall_replica(model, seconds, replica)
        return fault

    def pause_replica(self, model: Model, seconds: float, replica: int = 0) -> ReplicaPause:
        started = time.monotonic()
        fault = self.stall_replica(model, seconds, replica)
        time.sleep(max(0.0, started + seconds - time.monotonic()))  # the stall itself: its duration
        self.heal(fault)
        return ReplicaPause(model.name, model.tenant, fault.target.rsplit(" ", 1)[-1], started, time.monotonic())

    def kill_gateway(self) -> Fault:
        fault: Fault = self.chaos.kill_gateway()
        return fault

    def stop_component(self, component: str, seconds: float) -> Fault:
        fault: Fault = self.chaos.stop_component(component, seconds)
        return fault

    def partition(self, tenant: str, seconds: float) -> Fault:
        fault: Fault = self.chaos.partition(tenant, seconds)
        return fault

    def heal(self, fault: Fault) -> Fault:
        healed: Fault | None = self.chaos.heal(fault.id) if fault.bound_s else None
        return healed or fault

    def faults(self) -> list[Fault]:
        return list(self.chaos.active()) if self._chaos is not None else []

    def _publish_keys(self) -> None:
        from inferbox.cluster.state import KEYS_SECRET, jwt_secrets

        for secret in jwt_secrets(self.state):
            if secret["metadata"]["name"] == KEYS_SECRET:
                self.api.apply(secret)

    def _keystore(self) -> KeyStore:
        if self._keys is None:
            raise self._missing(Capability.KEY_ROTATION)
        return self._keys

    def stage_signing_key(self) -> str:
        kid = self._keystore().stage()
        self._publish_keys()
        return kid

    def activate_signing_key(self) -> str:
        kid = self._keystore().rotate()
        self._publish_keys()
        return kid

    def retire_signing_key(self, kid: str) -> None:
        self._keystore().withdraw(kid)
        self._publish_keys()

    def dump_evidence(self, dest: Path) -> Path:
        namespaces = list(EVIDENCE_NAMESPACES) + [t.name for t in self.topology.tenants]
        return diagnostics.dump(self.api, dest, namespaces)

    def close(self) -> None:
        if self._chaos is not None:
            self._chaos.heal_all()
        if self._probes is not None:
            self._probes.teardown()
            self._probes = None
        if self._kube_client is not None:
            self._kube_client.close()
        for client in self._clients:
            client.close()
        for forward in self.forwards:
            forward.stop()
        self.api.close()
