"""The mesh part of the platform contract on a real cluster (Kind or an existing one).

Probe pods stand where the isolation intent's callers stand:

- one in each tenant namespace, with an Istio sidecar and its own service account, so its requests
  carry that namespace's mesh identity;
- one in ``istio-system`` under the service account ``istio-ingressgateway`` with the label
  ``app: istio-ingressgateway`` but not ``istio: ingressgateway``: the identity and network place of
  the gateway's hop into tenant pods (the tenants' NetworkPolicies admit ``app: istio-ingressgateway``),
  yet selected by no Service (the gateway chart's Service needs both labels, net-istio's
  ``knative-local-gateway`` selects ``istio: ingressgateway``), so it never receives traffic;
- one in a namespace without sidecar injection: outside the mesh.

Requests run inside the probes through the Kubernetes exec API (a small Python program in the probe
image; no kubectl needed). A request "over the mesh" goes from a sidecar-injected probe to the
model revision's private Service, so the probe's sidecar originates mutual TLS (Istio sends
plaintext to a pod address it does not know). Plaintext, a foreign client certificate and reading
the presented certificate chain go straight to the pod's queue-proxy port, which the probes exclude
from their sidecar's capture. The module is wired into the cluster target by that target; here it
takes a ``kubernetes`` ApiClient and names.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inferbox.errors import PlatformError
from inferbox.mesh import (
    JWT_FAILURE_BODIES,
    RBAC_DENIED_BODY,
    MeshSource,
    Outcome,
    ProbeResult,
    QuotaStatus,
    SourceKind,
    SourcePlace,
    Transport,
    Workload,
)

PROBE_NAME = "inferbox-probe"
PROBE_IMAGE = "python:3.13-alpine"  # Python's ssl gives the presented chain (3.13) with no extra tools
OUTSIDE_NAMESPACE = "inferbox-outside"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_ACCOUNT = "istio-ingressgateway"
QUEUE_PROXY_PORT = 8012  # Knative's queue-proxy: the port a revision's pods serve on
PRIVATE_SERVICE_PORT = 80  # <revision>-private Service port in front of the queue-proxy
TRUST_ROOT_CONFIGMAP = ("istio-ca-root-cert", "root-cert.pem")
ISVC_LABEL = "serving.kserve.io/inferenceservice"
REVISION_LABEL = "serving.knative.dev/revision"
CONNECT_TIMEOUT_S = 3.0

# The program a probe runs: one request (or one handshake) and a JSON line describing what happened.
PROBE_PROGRAM = r"""
import base64, http.client, json, os, socket, ssl, sys, tempfile
a = json.loads(sys.argv[1])
out = {}
try:
    sock = socket.create_connection((a["host"], a["port"]), a["connect_timeout"])
except OSError as exc:
    print(json.dumps({"stage": "connect", "error": str(exc)})); sys.exit(0)
ctx = None
if a.get("tls"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["istio"])
    if a.get("cert"):
        d = tempfile.mkdtemp()
        open(d + "/c.pem", "w").write(a["cert"]); open(d + "/k.pem", "w").write(a["key"])
        ctx.load_cert_chain(d + "/c.pem", d + "/k.pem")
    try:
        sock = ctx.wrap_socket(sock)
    except (ssl.SSLError, OSError) as exc:
        print(json.dumps({"stage": "tls", "error": str(exc)})); sys.exit(0)
    if a.get("chain"):
        chain = sock._sslobj.get_unverified_chain() if hasattr(sock._sslobj, "get_unverified_chain") else None
        ders = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain] if chain else [sock.getpeercert(True)]
        print(json.dumps({"stage": "chain", "chain": [base64.b64encode(d).decode() for d in ders]})); sys.exit(0)
sock.settimeout(10)
conn = http.client.HTTPConnection(a["host"], a["port"], timeout=10); conn.sock = sock
body = a.get("body")
try:
    conn.request(a["method"], a["path"], body=body.encode() if body else None, headers=a["headers"])
    r = conn.getresponse(); text = r.read().decode(errors="replace")
except (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
    print(json.dumps({"stage": "http", "error": type(exc).__name__ + ": " + str(exc)})); sys.exit(0)
except OSError as exc:
    print(json.dumps({"stage": "timeout", "error": str(exc)})); sys.exit(0)
print(json.dumps({"stage": "response", "status": r.status, "body": text[:2000],
                  "headers": {k.lower(): v for k, v in r.getheaders()}}))
"""

Exec = Callable[[str, str, str, list[str]], str]  # (namespace, pod, container, argv) -> stdout


def kubernetes_exec(api_client: Any) -> Exec:
    """Runs a command in a pod through the exec API, as ``kubectl exec`` does."""
    from kubernetes import client
    from kubernetes.stream import stream

    core: Any = client.CoreV1Api(api_client)

    def run(namespace: str, pod: str, container: str, argv: list[str]) -> str:
        output = stream(
            core.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            container=container,
            command=argv,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
        return str(output)

    return run


@dataclass(frozen=True)
class Probe:
    label: str  # tenant name, "gateway" or "outside"
    namespace: str
    service_account: str
    labels: dict[str, str]
    sidecar: bool

    @property
    def identity(self) -> str | None:
        return f"spiffe://cluster.local/ns/{self.namespace}/sa/{self.service_account}" if self.sidecar else None


def probes(tenants: list[str]) -> list[Probe]:
    found = [Probe(t, t, PROBE_NAME, {"app": PROBE_NAME}, True) for t in tenants]
    gateway_labels = {"app": "istio-ingressgateway", "inferbox.io/probe": "true"}
    found.append(Probe("gateway", GATEWAY_NAMESPACE, GATEWAY_ACCOUNT, gateway_labels, True))
    found.append(Probe("outside", OUTSIDE_NAMESPACE, PROBE_NAME, {"app": PROBE_NAME}, False))
    return found


def probe_objects(probe: Probe, image: str = PROBE_IMAGE) -> list[dict[str, Any]]:
    """The objects one probe needs: its service account (not the gateway's, which exists) and pod."""
    objects: list[dict[str, Any]] = []
    if probe.label != "gateway":
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": PROBE_NAME, "namespace": probe.namespace},
            }
        )
    labels = dict(probe.labels)
    annotations: dict[str, str] = {}
    if probe.sidecar:
        labels["sidecar.istio.io/inject"] = "true"
        # Raw access to pods (plaintext, foreign certificates, the presented chain) bypasses the probe's own sidecar.
        annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] = str(QUEUE_PROXY_PORT)
    else:
        labels["sidecar.istio.io/inject"] = "false"
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": PROBE_NAME,
                "namespace": probe.namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {
                "serviceAccountName": probe.service_account,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "probe",
                        "image": image,
                        "command": ["sleep", "infinity"],
                        "resources": {
                            "requests": {"cpu": "10m", "memory": "32Mi"},
                            "limits": {"cpu": "200m", "memory": "128Mi"},
                        },
                    }
                ],
            },
        }
    )
    return objects


def outside_namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": OUTSIDE_NAMESPACE,
            "labels": {"istio-injection": "disabled", "app.kubernetes.io/part-of": "inferbox"},
        },
    }


@dataclass
class ProbeFleet:
    """Creates, waits for and removes the probe pods."""

    api_client: Any
    tenants: list[str]
    image: str = PROBE_IMAGE
    created: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, namespace, name)

    def deploy(self, timeout_s: float = 300.0) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core: Any = client.CoreV1Api(self.api_client)
        try:
            core.create_namespace(outside_namespace())
            self.created.append(("Namespace", "", OUTSIDE_NAMESPACE))
        except ApiException as exc:
            if exc.status != 409:
                raise
        for probe in probes(self.tenants):
            for obj in probe_objects(probe, self.image):
                try:
                    if obj["kind"] == "ServiceAccount":
                        core.create_namespaced_service_account(probe.namespace, obj)
                    else:
                        core.create_namespaced_pod(probe.namespace, obj)
                    self.created.append((obj["kind"], probe.namespace, obj["metadata"]["name"]))
                except ApiException as exc:
                    if exc.status != 409:
                        raise PlatformError(
                            f"creating probe {obj['kind']} {probe.namespace}/{PROBE_NAME} failed: {exc.reason}",
                            "a tenant's quota must leave room for one probe pod; see the namespace's events",
                        ) from exc
        deadline = time.monotonic() + timeout_s
        for probe in probes(self.tenants):
            while True:
                pod = core.read_namespaced_pod(PROBE_NAME, probe.namespace)
                statuses = pod.status.container_statuses or []
                if statuses and all(s.ready for s in statuses):
                    break
                if time.monotonic() > deadline:
                    raise PlatformError(
                        f"probe pod {probe.namespace}/{PROBE_NAME} is not ready after {timeout_s:.0f}s",
                        f"kubectl -n {probe.namespace} describe pod {PROBE_NAME}",
                    )
                time.sleep(1.0)  # polling the API server; bounded by the deadline above

    def teardown(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core: Any = client.CoreV1Api(self.api_client)
        for kind, namespace, name in reversed(self.created):
            try:
                if kind == "Pod":
                    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
                elif kind == "ServiceAccount":
                    core.delete_namespaced_service_account(name, namespace)
                else:
                    core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        self.created.clear()


def classify(result: dict[str, Any], through_sidecar: bool) -> ProbeResult:
    """A probe program's JSON line as a ProbeResult."""
    stage = result.get("stage")
    if stage == "connect":
        return ProbeResult(Outcome.NETWORK_DENIED, detail=str(result.get("error")))
    if stage in ("tls", "http"):
        return ProbeResult(Outcome.TRANSPORT_REFUSED, detail=f"{stage}: {result.get('error')}")
    if stage != "response":
        return ProbeResult(Outcome.ERROR, detail=str(result))
    status, body = int(result["status"]), str(result.get("body", ""))
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    if through_sidecar and status == 503 and "upstream connect error" in body:
        # The probe's own sidecar could not reach the destination: why tells the stage.
        if "connection timeout" in body or "connection failure" in body or "delayed connect error" in body:
            return ProbeResult(Outcome.NETWORK_DENIED, status, body, "client sidecar: no connection")
        return ProbeResult(Outcome.TRANSPORT_REFUSED, status, body, "client sidecar: the peer reset the connection")
    if status == 403 and body.startswith(RBAC_DENIED_BODY):
        return ProbeResult(Outcome.AUTHZ_DENIED, status, body)
    if status in (401, 403) and body.startswith(JWT_FAILURE_BODIES):
        return ProbeResult(Outcome.AUTHN_DENIED, status, body)
    if "application/json" in headers.get("content-type", "") and status < 500:
        return ProbeResult(Outcome.ANSWERED, status, body)
    return ProbeResult(Outcome.ERROR, status, body)


class KindMeshClient:
    def __init__(self, run: Exec, probe: Probe, foreign_cert: tuple[str, str]) -> None:
        self._run = run
        self.probe = probe
        self.source = (
            MeshSource.in_tenant(probe.label)
            if probe.label not in ("gateway", "outside")
            else MeshSource(SourceKind(probe.label))
        )
        self.place = SourcePlace(probe.namespace, dict(probe.labels), probe.identity)
        self._foreign = foreign_cert

    def _exec(self, args: dict[str, Any]) -> dict[str, Any]:
        args.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        out = self._run(self.probe.namespace, PROBE_NAME, "probe", ["python3", "-c", PROBE_PROGRAM, json.dumps(args)])
        lines = [line for line in out.strip().splitlines() if line.startswith("{")]
        if not lines:
            raise PlatformError(
                f"probe {self.probe.namespace}/{PROBE_NAME} printed no result: {out[-500:]!r}",
                f"kubectl -n {self.probe.namespace} logs {PROBE_NAME}",
            )
        parsed: dict[str, Any] = json.loads(lines[-1])
        return parsed

    def request(
        self,
        workload: Workload,
        port: int,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        transport: Transport = Transport.MESH,
    ) -> ProbeResult:
        import json as jsonlib

        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        body = None
        if json is not None:
            body = jsonlib.dumps(json)
            all_headers["Content-Type"] = "application/json"
        via_sidecar = transport is Transport.MESH and self.probe.sidecar and workload.sidecar
        revision = workload.labels.get(REVISION_LABEL)
        if via_sidecar and revision:
            host, target_port = f"{revision}-private.{workload.namespace}.svc.cluster.local", PRIVATE_SERVICE_PORT
        else:
            host, target_port = workload.address, port
        all_headers.setdefault("Host", f"{workload.model or workload.name}.{workload.namespace}")
        args: dict[str, Any] = {
            "host": host,
            "port": target_port,
            "method": method,
            "path": path,
            "headers": all_headers,
            "body": body,
            "tls": transport is Transport.FOREIGN_CA,
        }
        if transport is Transport.FOREIGN_CA:
            args["cert"], args["key"] = self._foreign
        return classify(self._exec(args), through_sidecar=bool(via_sidecar and revision))

    def peer_certificates(self, workload: Workload, port: int) -> list[bytes]:
        result = self._exec(
            {
                "host": workload.address,
                "port": port,
                "tls": True,
                "chain": True,
                "method": "GET",
                "path": "/",
                "headers": {},
            }
        )
        if result.get("stage") != "chain":
            raise PlatformError(
                f"{workload.label}:{port} presented no certificate chain: {result}", "check the pod's istio-proxy log"
            )
        return [base64.b64decode(item) for item in result["chain"]]

    def close(self) -> None:
        return None


# -- reading the platform -------------------------------------------------------------------------
def model_workloads(api_client: Any, models: list[tuple[str, str]]) -> list[Workload]:
    """Running, ready pods of the given (namespace, InferenceService) models."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api_client)
    found = []
    for namespace, name in models:
        pods = core.list_namespaced_pod(namespace, label_selector=f"{ISVC_LABEL}={name}").items
        for pod in pods:
            statuses = pod.status.container_statuses or []
            if pod.status.phase != "Running" or not statuses or not all(s.ready for s in statuses):
                continue
            labels = dict(pod.metadata.labels or {})
            containers = [c.name for c in pod.spec.containers]
            found.append(
                Workload(
                    namespace=namespace,
                    name=pod.metadata.name,
                    model=name,
                    service_account=pod.spec.service_account_name or "default",
                    address=pod.status.pod_ip,
                    ports=(("http", QUEUE_PROXY_PORT),),
                    labels=labels,
                    sidecar="istio-proxy" in containers,
                )
            )
    return found


def mesh_trust_anchors(api_client: Any, namespace: str) -> list[bytes]:
    """Istio's root certificate, as istiod publishes it in every namespace."""
    from kubernetes import client

    name, key = TRUST_ROOT_CONFIGMAP
    core: Any = client.CoreV1Api(api_client)
    config = core.read_namespaced_config_map(name, namespace)
    return [str((config.data or {})[key]).encode()]


def resource_quota(api_client: Any, namespace: str) -> QuotaStatus | None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api_client)
    quotas = core.list_namespaced_resource_quota(namespace).items
    if not quotas:
        return None
    hard: dict[str, str] = {}
    used: dict[str, str] = {}
    for quota in quotas:
        hard.update({str(k): str(v) for k, v in (quota.status.hard or quota.spec.hard or {}).items()})
        used.update({str(k): str(v) for k, v in (quota.status.used or {}).items()})
    return QuotaStatus(namespace, hard, used)
