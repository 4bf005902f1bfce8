"""The cluster side of the mesh contract, with fakes for the Kubernetes API and the exec channel.

The probe program itself is run here for real against a local socket, so what runs in probe pods
is tested code, not only the calls around it."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from inferbox.cluster import mesh as kmesh
from inferbox.mesh import Outcome, SourceKind, Transport, Workload

WORKLOAD = Workload(
    "tenant-c",
    "pytorch-resnet-predictor-00001-deployment-x",
    "pytorch-resnet",
    "default",
    "10.244.1.7",
    (("http", 8012),),
    {"serving.knative.dev/revision": "pytorch-resnet-predictor-00001"},
)


def test_probes_stand_where_the_intent_callers_stand() -> None:
    fleet = {p.label: p for p in kmesh.probes(["tenant-a", "tenant-c"])}
    assert set(fleet) == {"tenant-a", "tenant-c", "gateway", "outside"}
    gateway = fleet["gateway"]
    assert gateway.identity == "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"
    # Admitted by the tenants' NetworkPolicies, selected by no Service (those select istio=ingressgateway).
    assert gateway.labels["app"] == "istio-ingressgateway"
    assert "istio" not in gateway.labels
    assert fleet["outside"].identity is None
    pod = kmesh.probe_objects(fleet["tenant-a"])[-1]
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert pod["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == "8012"
    assert pod["spec"]["serviceAccountName"] == "inferbox-probe"
    assert [o["kind"] for o in kmesh.probe_objects(gateway)] == ["Pod"]  # the gateway's account already exists
    outside = kmesh.probe_objects(fleet["outside"])[-1]
    assert outside["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"


class FakeExec:
    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, namespace: str, pod: str, container: str, argv: list[str]) -> str:
        assert argv[:2] == ["python3", "-c"]
        self.calls.append((namespace, pod, container, json.loads(argv[3])))
        return "some warning\n" + json.dumps(self.reply) + "\n"


def client(reply: dict[str, Any], label: str = "tenant-a") -> tuple[kmesh.KindMeshClient, FakeExec]:
    fake = FakeExec(reply)
    probe = {p.label: p for p in kmesh.probes(["tenant-a", "tenant-c"])}[label]
    return kmesh.KindMeshClient(fake, probe, ("CERT", "KEY")), fake


def test_mesh_requests_go_to_the_private_service_through_the_probes_sidecar() -> None:
    ok = {"stage": "response", "status": 200, "body": "{}", "headers": {"content-type": "application/json"}}
    mesh_client, fake = client(ok)
    result = mesh_client.request(WORKLOAD, 8012, "GET", "/v1/models/pytorch-resnet", token="t")
    assert result.outcome is Outcome.ANSWERED
    namespace, pod, container, args = fake.calls[0]
    assert (namespace, pod, container) == ("tenant-a", "inferbox-probe", "probe")
    assert args["host"] == "pytorch-resnet-predictor-00001-private.tenant-c.svc.cluster.local"
    assert args["port"] == 80
    assert args["headers"]["Authorization"] == "Bearer t"
    assert not args["tls"]


def test_raw_transports_go_to_the_pod_and_foreign_certificates_are_sent() -> None:
    mesh_client, fake = client({"stage": "http", "error": "ConnectionResetError"})
    result = mesh_client.request(WORKLOAD, 8012, "GET", "/", transport=Transport.FOREIGN_CA)
    assert result.outcome is Outcome.TRANSPORT_REFUSED
    args = fake.calls[0][3]
    assert (args["host"], args["port"], args["tls"], args["cert"]) == ("10.244.1.7", 8012, True, "CERT")
    outside, fake = client({"stage": "connect", "error": "timed out"}, "outside")
    assert outside.source.kind is SourceKind.OUTSIDE
    assert outside.request(WORKLOAD, 8012, "GET", "/").outcome is Outcome.NETWORK_DENIED
    assert fake.calls[0][3]["host"] == "10.244.1.7"  # no sidecar: straight to the pod


@pytest.mark.parametrize(
    ("reply", "through", "outcome"),
    [
        (
            {
                "stage": "response",
                "status": 503,
                "body": "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
            },
            True,
            Outcome.NETWORK_DENIED,
        ),
        (
            {
                "stage": "response",
                "status": 503,
                "body": "upstream connect error or disconnect/reset before headers. reset reason: "
                "connection termination",
            },
            True,
            Outcome.TRANSPORT_REFUSED,
        ),
        ({"stage": "response", "status": 403, "body": "RBAC: access denied"}, True, Outcome.AUTHZ_DENIED),
        ({"stage": "response", "status": 401, "body": "Jwt is expired"}, True, Outcome.AUTHN_DENIED),
        ({"stage": "tls", "error": "alert"}, False, Outcome.TRANSPORT_REFUSED),
        ({"stage": "response", "status": 500, "body": "boom"}, False, Outcome.ERROR),
    ],
)
def test_classification(reply: dict[str, Any], through: bool, outcome: Outcome) -> None:
    assert kmesh.classify(reply, through).outcome is outcome


def test_peer_certificates_decode_the_chain() -> None:
    mesh_client, _ = client(
        {"stage": "chain", "chain": [base64.b64encode(b"leaf").decode(), base64.b64encode(b"ca").decode()]}
    )
    assert mesh_client.peer_certificates(WORKLOAD, 8012) == [b"leaf", b"ca"]


def _pod(name: str, phase: str, ready: bool, containers: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=name, labels={"serving.kserve.io/inferenceservice": "m"}, deletion_timestamp=None
        ),
        status=SimpleNamespace(phase=phase, pod_ip="10.0.0.1", container_statuses=[SimpleNamespace(ready=ready)]),
        spec=SimpleNamespace(service_account_name="default", containers=[SimpleNamespace(name=c) for c in containers]),
    )


def test_model_workloads_lists_ready_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    pods = [
        _pod("a", "Running", True, ["kserve-container", "queue-proxy", "istio-proxy"]),
        _pod("b", "Pending", False, []),
    ]

    class Core:
        def __init__(self, api: object) -> None:
            pass

        def list_namespaced_pod(self, namespace: str, label_selector: str) -> SimpleNamespace:
            assert label_selector == "serving.kserve.io/inferenceservice=m"
            return SimpleNamespace(items=pods)

        def list_namespaced_resource_quota(self, namespace: str) -> SimpleNamespace:
            quota = SimpleNamespace(status=SimpleNamespace(hard={"pods": "4"}, used={"pods": "2"}), spec=None)
            return SimpleNamespace(items=[quota])

    import kubernetes.client

    monkeypatch.setattr(kubernetes.client, "CoreV1Api", Core)
    found = kmesh.model_workloads(object(), [("tenant-a", "m")])
    assert [(w.name, w.sidecar, w.ports) for w in found] == [("a", True, (("http", 8012),))]
    quota = kmesh.resource_quota(object(), "tenant-a")
    assert quota is not None
    assert (quota.pods, quota.pods_used) == (4, 2)


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_the_probe_program_runs(tmp_path: Any) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]

        def local(namespace: str, pod: str, container: str, argv: list[str]) -> str:
            return subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, check=True).stdout

        probe = kmesh.probes(["tenant-a"])[-1]  # outside: raw requests
        mesh_client = kmesh.KindMeshClient(local, probe, ("", ""))
        target = Workload("tenant-a", "p", "m", "default", "127.0.0.1", (("http", port),), {}, sidecar=False)
        result = mesh_client.request(target, port, "GET", "/v1/models/m", token="abc")
        assert result.outcome is Outcome.ANSWERED, result.describe()
        assert json.loads(result.body) == {"path": "/v1/models/m", "auth": "Bearer abc"}
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            free = closed.getsockname()[1]
        refused = mesh_client.request(target, free, "GET", "/")
        assert refused.outcome is Outcome.NETWORK_DENIED
    finally:
        server.shutdown()
