"""Small parts of the embedded target's observability: the missing-Prometheus error, the
port-forward, and the pods as discovery sees them."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import pytest

from inferbox.embedded import observability
from inferbox.embedded.network import Pod
from inferbox.embedded.portforward import PortForward
from inferbox.embedded.workloads import read_workloads
from inferbox.errors import PlatformError
from inferbox.manifests import ManifestSet


def test_missing_prometheus_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.setattr(observability, "Path", lambda _: Path("/nonexistent/prometheus"))
    with pytest.raises(PlatformError) as caught:
        observability.prometheus_binary()
    assert "apt-get install -y --no-install-recommends prometheus" in caught.value.fix


def test_port_forward_relays_both_ways() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            data = conn.recv(1024)
            conn.sendall(b"echo:" + data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    forward = PortForward("test", ("127.0.0.1", port), None).start()
    try:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(1024) == b"echo:ping"
    finally:
        forward.stop()
        server.close()
        thread.join(timeout=5)


def test_model_pods_declare_the_sidecar_port_in_mesh_namespaces(manifests: ManifestSet) -> None:
    spec = next(w for w in read_workloads(manifests) if w.name == "sklearn-iris")
    view = observability._workload_view(manifests, spec, Pod("p", "127.0.0.1"), 0)
    assert [c.name for c in view.containers] == ["kserve-container", "istio-proxy"]
    assert view.labels["serving.kserve.io/inferenceservice"] == "sklearn-iris"
    assert view.annotations["prometheus.io/port"] == "8080"
    assert set(view.port_map) == {8080, observability.SIDECAR_STATS_PORT, observability.MERGED_METRICS_PORT}
    jwt = next(w for w in read_workloads(manifests) if w.name == "jwt-server")
    jwt_view = observability._workload_view(manifests, jwt, Pod("q", "198.18.0.9", netns="x"), 0)
    assert [(p.name, p.number) for c in jwt_view.containers for p in c.ports] == [("http", 8080)]
    assert jwt_view.port_map == {}, "pods in their own namespace keep their ports"
