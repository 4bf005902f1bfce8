"""The embedded target's mesh control plane: what istiod, the CNI's NetworkPolicy and the API
server's quota admission do on a cluster.

It keeps every pod's mesh metadata (namespace, service account, labels), issues workload
certificates from the platform CA, starts a sidecar Envoy for each workload in an injected
namespace, reloads NetworkPolicy rules whenever a pod comes or goes, and creates the suite's probe
pods: one in each tenant namespace (with that namespace's identity), one outside the mesh.

The gateway Envoy stands in for the hops that reach tenant pods on a cluster (Envoy Gateway, then
Istio's ingress gateway, then Knative's activator). Towards tenants it presents the identity of
Istio's ingress gateway, the last mesh hop before a model pod: namespace ``istio-system``, service
account ``istio-ingressgateway``, labels ``app: istio-ingressgateway, istio: ingressgateway``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbox.embedded import netpol
from inferbox.embedded.envoy_launcher import envoy_command
from inferbox.embedded.health import pod_http_status, wait_until
from inferbox.embedded.knobs import Knobs
from inferbox.embedded.mesh_plan import PodMeta, injected, plan_sidecar
from inferbox.embedded.network import Network, Pod
from inferbox.embedded.processes import ManagedProcess, Supervisor
from inferbox.embedded.quota import QuotaExceeded, QuotaLedger
from inferbox.embedded.sidecar import SidecarFiles, SidecarPorts, render_sidecar
from inferbox.embedded.state import MeshState, ProbeState
from inferbox.manifests import ManifestSet
from inferbox.pki import IssuedCert, MeshPKI

DEFAULT_TRUST_DOMAIN = "cluster.local"  # Istio's default; the profile promises which one
GATEWAY_META = PodMeta(
    "istio-system",
    "istio-ingressgateway",
    "istio-ingressgateway",
    {"app": "istio-ingressgateway", "istio": "ingressgateway"},
)
PROBE_NAME = "inferbox-probe"
PROBE_LABELS = {"app": PROBE_NAME}
OUTSIDE_NAMESPACE = "inferbox-outside"  # a namespace without sidecar injection or policies
SIDECAR_ADMIN_PORT = 15000
Endpoint = tuple[str, int]


@dataclass
class ProbePod:
    label: str  # tenant name, "gateway" or "outside"
    pod: Pod
    meta: PodMeta
    cert: IssuedCert | None  # None: no mesh identity

    def state(self) -> ProbeState:
        return ProbeState(
            namespace=self.meta.namespace,
            labels=dict(self.meta.labels),
            ip=self.pod.ip,
            netns_path=self.pod.netns_path,
            identity=self.cert.spiffe_id if self.cert else None,
            cert=str(self.cert.cert) if self.cert else None,
            key=str(self.cert.key) if self.cert else None,
        )


class MeshControlPlane:
    def __init__(
        self,
        manifests: ManifestSet,
        network: Network,
        supervisor: Supervisor,
        state_dir: Path,
        knobs: Knobs,
        jwks_endpoints: Callable[[str, str, int], list[Endpoint]],
        record_event: Callable[[str, str, str], None],
    ) -> None:
        self.manifests = manifests
        self.network = network
        self.supervisor = supervisor
        self.state_dir = state_dir
        self.knobs = knobs
        self._jwks_endpoints = jwks_endpoints
        self._event = record_event
        self.pki = MeshPKI(state_dir / "mesh", DEFAULT_TRUST_DOMAIN, rogue_issuer=knobs.rogue_issuer)
        self.ledger = QuotaLedger(manifests)
        self.pods: dict[str, tuple[Pod, PodMeta]] = {}
        self.probes: dict[str, ProbePod] = {}
        self.enforcing = network.isolated and netpol.nft_available()
        self._rules_loaded: dict[str, str] = {}  # namespace -> the NetworkPolicy script it has
        self._lock = threading.RLock()

    # -- pods ------------------------------------------------------------------------------------
    def admit(self, meta: PodMeta, containers: list[dict[str, dict[str, str]]]) -> None:
        """Quota admission for a pod about to be created; a refusal is recorded as an event."""
        try:
            self.ledger.admit(meta.namespace, meta.name, containers)
        except QuotaExceeded as exc:
            self._event(meta.namespace, "FailedCreate", exc.problem)
            raise

    def register(self, pod: Pod, meta: PodMeta) -> None:
        with self._lock:
            self.pods[pod.name] = (pod, meta)
            self.enforce()

    def unregister(self, pod: Pod, meta: PodMeta) -> None:
        with self._lock:
            self.pods.pop(pod.name, None)
            if pod.netns is not None:
                self._rules_loaded.pop(pod.netns, None)  # the namespace goes with the pod
            self.ledger.release(meta.namespace, meta.name)
            self.enforce()

    def enforce(self) -> None:
        """Reloads every pod's NetworkPolicy rules (peer addresses change as pods come and go)."""
        if not self.enforcing:
            return
        with self._lock:
            netpods = [
                netpol.NetPod(meta.namespace, pod.name, pod.ip, meta.labels, pod.netns)
                for pod, meta in self.pods.values()
            ]
            netpol.enforce(self.manifests, netpods, self._rules_loaded)

    def injected(self, namespace: str) -> bool:
        return injected(self.manifests, namespace)

    # -- sidecars --------------------------------------------------------------------------------
    def start_sidecar(
        self,
        name: str,
        pod: Pod,
        meta: PodMeta,
        listen_port: int,
        app: Endpoint,
        decorate: Callable[[dict[str, Any]], None] | None = None,
    ) -> ManagedProcess:
        cert = self.pki.issue(meta.namespace, meta.service_account, name)
        plan = plan_sidecar(self.manifests, meta)
        admin = pod.port(SIDECAR_ADMIN_PORT)
        listen = (pod.ip, listen_port)
        bootstrap = render_sidecar(
            name,
            plan,
            SidecarPorts(listen, app, admin),
            SidecarFiles(str(cert.cert), str(cert.key), str(self.pki.bundle_path)),
            self._jwks_endpoints,
            trust_any_ca=self.knobs.sidecar_trust_any_ca,
        )
        if decorate is not None:
            decorate(bootstrap)  # e.g. the merged-metrics port (inferbox.embedded.observability)
        config = self.state_dir / f"sidecar-{name}.yaml"
        config.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        return self.supervisor.start(f"{name}-sidecar", envoy_command(config), pod)

    def wait_sidecar_ready(self, name: str, pod: Pod, process: ManagedProcess, timeout_s: float) -> None:
        admin = pod.port(SIDECAR_ADMIN_PORT)

        def ready() -> bool:
            return pod_http_status(pod, admin, "/ready", host="127.0.0.1") == 200

        def dead() -> str | None:
            return None if process.alive() else f"its sidecar exited; log {process.log_path}:\n{process.log_tail()}"

        wait_until(f"{name}'s sidecar", ready, timeout_s, dead, fix=f"see {process.log_path}")

    # -- probes ----------------------------------------------------------------------------------
    def create_probes(self, tenants: list[str], gateway_pod: Pod) -> None:
        """The suite's callers: a pod per tenant namespace, the gateway's place, one outside the mesh."""
        for tenant in tenants:
            meta = PodMeta(tenant, PROBE_NAME, PROBE_NAME, dict(PROBE_LABELS))
            try:
                self.admit(meta, [{}])
            except QuotaExceeded:
                continue  # recorded as an event; checks from this tenant then say the probe is missing
            pod = self.network.add_pod(f"{tenant}.{PROBE_NAME}")
            cert = self.pki.issue(tenant, PROBE_NAME, f"probe-{tenant}")
            self.probes[tenant] = ProbePod(tenant, pod, meta, cert)
            self.register(pod, meta)
        outside_meta = PodMeta(OUTSIDE_NAMESPACE, PROBE_NAME, "default", dict(PROBE_LABELS))
        outside = self.network.add_pod(f"{OUTSIDE_NAMESPACE}.{PROBE_NAME}")
        self.probes["outside"] = ProbePod("outside", outside, outside_meta, None)
        self.register(outside, outside_meta)
        self.probes["gateway"] = ProbePod("gateway", gateway_pod, GATEWAY_META, self.gateway_cert)

    def issue_gateway_cert(self) -> IssuedCert:
        self.gateway_cert = self.pki.issue(GATEWAY_META.namespace, GATEWAY_META.service_account, "gateway")
        return self.gateway_cert

    def state(self) -> MeshState:
        return MeshState(
            trust_domain=self.pki.trust_domain,
            root_ca=str(self.pki.root.cert_path),
            trust_bundle=str(self.pki.bundle_path),
            foreign_ca_dir=str(self.pki.directory / "foreign"),
            network_policy=self.enforcing,
            probes={label: probe.state() for label, probe in self.probes.items()},
        )
