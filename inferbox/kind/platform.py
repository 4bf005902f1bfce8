"""The platform contract on a Kubernetes cluster (Kind or existing): gateway, tokens, credentials,
component health and logs, and the versions actually running."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inferbox.client import GatewayClient
from inferbox.contract import Capability, ComponentHealth
from inferbox.errors import PlatformError
from inferbox.jwtserver.clients import Credentials, read_credentials
from inferbox.jwtserver.keystore import KeyStore, SigningKey
from inferbox.kind import diagnostics, readback
from inferbox.kind.kube import KubeApi, KubeError, is_true
from inferbox.kind.portforward import PortForward
from inferbox.kind.state import ClusterState
from inferbox.profile import ConformanceProfile
from inferbox.tokens import TokenForge
from inferbox.topology import Topology

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


@dataclass
class KubePlatform:
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
        caps = {Capability.WORKLOAD_NETWORK}  # every workload is a pod with its own network
        if self._keys is not None:
            caps.add(Capability.TOKEN_SIGNING_KEY)
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

    def _forwarded(self, namespace: str, service: str, port: int) -> str:
        for forward in self.forwards:
            if (forward.namespace, forward.service, forward.port) == (namespace, service, port):
                return forward.url
        forward = PortForward(self.api.context, namespace, service, port).start(self.port_forward_timeout_s)
        self.forwards.append(forward)
        return forward.url

    def versions(self) -> dict[str, str]:
        return readback.running_versions(self.api)

    def dump_evidence(self, dest: Path) -> Path:
        namespaces = list(EVIDENCE_NAMESPACES) + [t.name for t in self.topology.tenants]
        return diagnostics.dump(self.api, dest, namespaces)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for forward in self.forwards:
            forward.stop()
        self.api.close()
