"""The embedded activator for real, on loopback: holding, forwarding over mutual TLS with identity
checks, and its two limits (capacity and timeout), against small local upstream servers."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from inferbox.embedded.activator import Activator, Upstream, activator_tls, listening_socket
from inferbox.pki import MeshPKI
from inferbox.waiting import eventually

REVISION = "tenant-a/m-predictor-00001"


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        out = json.dumps({"path": self.path, "body": body.decode(), "auth": self.headers.get("authorization")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_args: object) -> None:
        return None


def _serve(tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, ("127.0.0.1", server.server_address[1])


class Harness:
    def __init__(self, tmp: Path, timeout_s: float = 5.0, capacity: int = 10, drop: bool = False) -> None:
        self.pki = MeshPKI(tmp / "mesh", "cluster.local")
        cert = self.pki.issue("knative-serving", "activator", "activator")
        self.upstreams: list[Upstream] = []
        self.pokes: list[int] = []
        self.activator = Activator(
            lambda _: list(self.upstreams),
            lambda _, held: self.pokes.append(held),
            activator_tls(str(cert.cert), str(cert.key), str(self.pki.bundle_path)),
            None,
            lambda _: capacity,
            timeout_s,
            drop_held=drop,
        )
        port = _free_port()
        self.activator.start({REVISION: listening_socket(None, "127.0.0.1", port)})
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def post(self) -> httpx.Response:
        return self.client.post(
            "/v1/models/m:predict", json={"instances": [[1]]}, headers={"authorization": "Bearer t"}
        )

    def server_tls(self, namespace: str = "tenant-a", account: str = "default") -> ssl.SSLContext:
        issued = self.pki.issue(namespace, account, f"{namespace}-{account}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(issued.cert), str(issued.key))
        context.load_verify_locations(str(self.pki.bundle_path))
        context.verify_mode = ssl.CERT_REQUIRED  # the sidecar's STRICT mTLS: a client certificate is required
        return context

    def close(self) -> None:
        self.client.close()
        self.activator.stop()


def _until_held(activator: Activator, count: int) -> None:
    def held() -> None:
        assert activator.held(REVISION) == count, f"{activator.held(REVISION)} held"

    eventually(held, 5.0, 0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def test_a_request_is_held_until_a_replica_is_ready_then_forwarded_over_mtls(harness: Harness) -> None:
    server, address = _serve(harness.server_tls())
    result: dict[str, httpx.Response] = {}
    sender = threading.Thread(target=lambda: result.setdefault("r", harness.post()))
    sender.start()
    _until_held(harness.activator, 1)
    assert harness.pokes == [1], "the activator did not tell the autoscaler"
    assert "r" not in result, "the request was answered without a replica"
    harness.upstreams.append(Upstream("m-0", address, "spiffe://cluster.local/ns/tenant-a/sa/default"))
    harness.activator.replicas_changed(REVISION)
    sender.join(timeout=10)
    server.shutdown()
    response = result["r"]
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["path"] == "/v1/models/m:predict"
    assert echoed["auth"] == "Bearer t", "the client's token must travel with the request"
    assert json.loads(echoed["body"]) == {"instances": [[1]]}
    assert harness.activator.history[-1].forwarded is not None


def test_a_replica_with_the_wrong_identity_is_refused(harness: Harness) -> None:
    server, address = _serve(harness.server_tls("tenant-c"))
    harness.upstreams.append(Upstream("m-0", address, "spiffe://cluster.local/ns/tenant-a/sa/default"))
    response = harness.post()
    server.shutdown()
    assert response.status_code == 503
    assert response.text.startswith("activator: no replica of")
    assert "tenant-c" in response.text


def test_plaintext_to_a_replica_without_a_sidecar(harness: Harness) -> None:
    server, address = _serve()
    harness.upstreams.append(Upstream("m-0", address, None))
    assert harness.post().status_code == 200
    assert harness.post().status_code == 200  # a kept-alive upstream connection is reused
    server.shutdown()


def test_a_held_request_times_out_with_a_clear_504(tmp_path: Path) -> None:
    h = Harness(tmp_path, timeout_s=0.5)
    try:
        response = h.post()
    finally:
        h.close()
    assert response.status_code == 504
    assert "became ready within" in response.text


def test_capacity_bounds_the_held_requests(tmp_path: Path) -> None:
    h = Harness(tmp_path, timeout_s=2.0, capacity=1)
    try:
        first = threading.Thread(target=h.post)
        first.start()
        _until_held(h.activator, 1)  # the first request occupies the only slot
        second = h.post()
        first.join(timeout=10)
    finally:
        h.close()
    assert second.status_code == 503
    assert "capacity" in second.text


def test_the_dropping_knob_answers_503_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, drop=True)
    try:
        response = h.post()
    finally:
        h.close()
    assert response.status_code == 503
    assert h.pokes == [1]
