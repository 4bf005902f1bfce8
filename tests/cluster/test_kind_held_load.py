"""Held load on a cluster (Platform.hold_requests): rounds of slow requests run in the tenant's probe
pod through the exec API, to the model's cluster-local address. The program the probe runs is run
here for real against a local server, so what runs in the pod is tested code."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from inferbox.cluster import held_load as kheld
from inferbox.cluster import mesh as kmesh
from inferbox.cluster.platform import KubePlatform
from inferbox.cluster.state import ClusterState, ensure_jwt_material
from inferbox.contract import Capability
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from inferbox.mesh import Outcome
from inferbox.profile import load_profile
from inferbox.topology import read_topology
from inferbox.waiting import eventually
from tests.cluster.fakekube import FakeCluster

TOPOLOGY = read_topology(load_manifests(DEFAULT_MANIFEST_DIR))
MODEL = next(m for m in TOPOLOGY.models if m.name == "pytorch-resnet")
PAYLOAD = {"instances": [[1.0, 2.0]]}


class _SlowBodies(BaseHTTPRequestHandler):
    """Answers a predict once its whole body arrived; records how long each body took and how many
    requests were in flight at once."""

    seen: list[tuple[float, dict[str, str]]] = []
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        cls = type(self)
        began = time.monotonic()
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with cls.lock:
            cls.in_flight -= 1
            cls.seen.append((time.monotonic() - began, dict(self.headers)))
        answer = json.dumps({"predictions": [len(json.loads(body)["instances"])]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_a_round_goes_to_the_models_cluster_local_address_as_the_tenant() -> None:
    args = kheld.hold_args(MODEL, "tok", PAYLOAD, 3, 1.0, 5.0)
    assert args["host"] == "pytorch-resnet-predictor.tenant-c.svc.cluster.local"
    assert args["port"] == 80  # captured by the probe's sidecar, which originates mutual TLS
    assert args["headers"]["Host"] == args["host"]
    assert args["headers"]["Authorization"] == "Bearer tok"
    assert args["path"] == "/v1/models/pytorch-resnet:predict"
    assert json.loads(args["body"]) == PAYLOAD
    calls: list[tuple[str, str, str, list[str]]] = []

    def run(namespace: str, pod: str, container: str, argv: list[str]) -> str:
        calls.append((namespace, pod, container, argv))
        ok = {"stage": "response", "status": 200, "body": "{}", "headers": {"content-type": "application/json"}}
        return "warning\n" + json.dumps(ok) + "\n" + json.dumps({"stage": "connect", "error": "refused"}) + "\n"

    probe = next(p for p in kmesh.probes(["tenant-c"]) if p.label == "tenant-c")
    results = kheld.hold_round(run, probe, args)
    assert [r.outcome for r in results] == [Outcome.ANSWERED, Outcome.NETWORK_DENIED]
    namespace, pod, container, argv = calls[0]
    assert (namespace, pod, container) == ("tenant-c", kmesh.PROBE_NAME, "probe")
    assert argv[:3] == ["python3", "-c", kheld.HOLD_PROGRAM]
    assert kheld.hold_round(lambda *_: "nothing", probe, args)[0].outcome is Outcome.ERROR


def test_the_hold_program_keeps_slow_requests_in_flight() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowBodies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        args = kheld.hold_args(MODEL, "tok", PAYLOAD, 3, 0.4, 0.5)
        args.update(host="127.0.0.1", port=server.server_address[1])
        done = subprocess.run(
            [sys.executable, "-c", kheld.HOLD_PROGRAM, json.dumps(args)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    finally:
        server.shutdown()
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) >= 3
    assert all(line["stage"] == "response" and line["status"] == 200 for line in lines), lines
    assert _SlowBodies.most == 3, "the requests were not in flight at once"
    assert min(seconds for seconds, _ in _SlowBodies.seen) >= 0.3, "a body arrived at once, not slowly"
    assert {h["Authorization"] for _, h in _SlowBodies.seen} == {"Bearer tok"}


def test_the_platform_holds_in_rounds_from_the_tenants_probe(
    fake_cluster: FakeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = ClusterState(tmp_path / "state")
    ensure_jwt_material(state, None, [t.name for t in TOPOLOGY.tenants])
    platform = KubePlatform("kind", load_profile(), TOPOLOGY, fake_cluster.api(), state, "http://127.0.0.1:8080")
    assert Capability.HELD_LOAD in platform.capabilities
    rounds: list[dict[str, Any]] = []

    def run(namespace: str, pod: str, container: str, argv: list[str]) -> str:
        rounds.append({"namespace": namespace, **json.loads(argv[3])})
        time.sleep(0.05)  # the round's length in the probe
        ok = {"stage": "response", "status": 200, "body": "{}", "headers": {"content-type": "application/json"}}
        return json.dumps(ok) + "\n"

    monkeypatch.setattr(kmesh, "kubernetes_exec", lambda api: run)
    platform._probes = object()  # the probe fleet counts as deployed: no pods in the fake cluster
    monkeypatch.setattr(platform, "_api_client", lambda: None)

    def a_round_ran() -> None:
        assert rounds, "no round yet"

    with platform.hold_requests(MODEL, "tok", PAYLOAD, 4, 1.0, 0.3) as held:
        eventually(a_round_ran, 5.0, 0.01)
    assert all(r["namespace"] == "tenant-c" and r["count"] == 4 and 0 < r["run_s"] <= 0.3 for r in rounds)
    assert len(held.results) == len(rounds)
    assert not held.failures()
