"""Gateway overhead and bring-up time of the embedded platform.

Starts the embedded platform (timing start to all components ready), then sends the same V1
predict request at one fixed rate directly to a model replica and through the gateway (with a valid
JWT), alternating the two so both see the same machine conditions. The gateway's client sits in a
client pod on the platform's bridge when workloads are in network namespaces (the host's loopback
otherwise). A model pod's service port belongs to its mesh sidecar, so "direct to model" is what a
tenant-a workload does: from tenant-a's probe pod, with its mesh certificate and a token, to the
pod's sidecar; both paths then include the sidecar and the difference is the gateway's hop (the
sidecar's own cost is bench/sidecar_overhead.py). Prints p50/p90/p99 of both and the added latency.

Targets (issue): added p50 <= 1 ms and p99 <= 3 ms; bring-up <= 10 s.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import httpcore
import httpx

from bench.results import Figure
from bench.stats import summary_ms
from bench.suite import main_of
from inferbox.embedded.netns import NetnsBackend
from inferbox.embedded.platform import GATEWAY_POD_PORT, EmbeddedOptions, EmbeddedPlatform
from inferbox.jwtserver.clients import read_credentials
from inferbox.manifests import DEFAULT_MANIFEST_DIR

RATE_PER_S = float(os.environ.get("BENCH_RATE", "80"))  # per path; the gateway path stays under the 100/s budget
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1200"))  # per path
WARMUP = 50
BODY = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
TITLE = "gateway overhead (embedded target, V1 predict, valid JWT, fixed rate)"


def client_in(netns_path: str | None, ssl_context: ssl.SSLContext | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport()
    if netns_path:
        # The client's connections start inside the pod's namespace (see inferbox.embedded.netns).
        transport._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=NetnsBackend(netns_path))
    return httpx.Client(transport=transport, timeout=10.0, verify=ssl_context or True)


def mesh_tls(cert: str, key: str, bundle: str) -> ssl.SSLContext:
    """A mesh client's mutual TLS: its workload certificate, the mesh's trust bundle."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # mesh identities are URI SANs, not host names
    ctx.load_verify_locations(bundle)
    ctx.load_cert_chain(cert, key)
    return ctx


def run() -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="inferbox-bench-"))
    platform = EmbeddedPlatform(EmbeddedOptions(DEFAULT_MANIFEST_DIR, state, state / "logs"))
    started = time.monotonic()
    platform.start()
    bring_up = time.monotonic() - started
    # One warm replica per revision while measuring: scale to zero would idle them away.
    platform.scale("tenant-a", "sklearn-iris", 1)
    try:
        creds = read_credentials(platform.credentials_path)["tenant-a"]
        with httpx.Client(base_url=platform.gateway.url) as host_client:
            token = host_client.post(
                "/token",
                headers={"Host": "auth.inference.example"},
                data={"grant_type": "client_credentials"},
                auth=(creds.client_id, creds.client_secret),
            ).json()["access_token"]
        assert platform.network is not None
        client_pod = platform.network.add_pod("bench.client")
        replica = platform.deployer.replicas("tenant-a.sklearn-iris")[0]
        host, port = replica.endpoint
        probe = platform.mesh.probes["tenant-a"]
        assert probe.cert is not None
        tls = mesh_tls(str(probe.cert.cert), str(probe.cert.key), str(platform.mesh.pki.bundle_path))
        direct_url = f"https://{host}:{port}/v1/models/sklearn-iris:predict"
        if client_pod.netns:
            gateway_url = f"http://{platform.gateway.pod.ip}:{GATEWAY_POD_PORT}/v1/models/sklearn-iris:predict"
        else:
            gateway_url = f"{platform.gateway.url}/v1/models/sklearn-iris:predict"
        gateway_headers = {"Host": "sklearn-iris.tenant-a.inference.example", "Authorization": f"Bearer {token}"}
        direct_s: list[float] = []
        gateway_s: list[float] = []
        with client_in(client_pod.netns_path) as client, client_in(probe.pod.netns_path, tls) as in_tenant:
            interval = 1.0 / (2 * RATE_PER_S)
            next_send = time.monotonic()
            for i in range(WARMUP + REQUESTS):
                for sender, url, headers, samples in (
                    (in_tenant, direct_url, {"Authorization": f"Bearer {token}"}, direct_s),
                    (client, gateway_url, gateway_headers, gateway_s),
                ):
                    delay = next_send - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # pacing to the fixed rate, not synchronisation
                    begin = time.perf_counter()
                    response = sender.post(url, json=BODY, headers=headers)
                    elapsed = time.perf_counter() - begin
                    if response.status_code != 200:
                        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
                    if i >= WARMUP:
                        samples.append(elapsed)
                    next_send += interval
        direct, through = summary_ms(direct_s), summary_ms(gateway_s)
        return {
            "network": platform.network.kind,
            "bring_up_s": round(bring_up, 2),
            "rate_per_path": RATE_PER_S,
            "requests_per_path": REQUESTS,
            "direct_ms": direct,
            "gateway_ms": through,
            "added_ms": {k: round(through[k] - direct[k], 3) for k in direct},
        }
    finally:
        platform.stop()
        shutil.rmtree(state, ignore_errors=True)


def figures(details: dict[str, Any]) -> list[Figure]:
    added, network = details["added_ms"], details["network"]
    setup = f"{details['rate_per_path']:g}/s per path, {network} network"
    return [
        Figure("added_p50_ms", f"gateway adds, p50 ({setup})", added["p50"], "ms", "<=", 1.0),
        Figure("added_p99_ms", "gateway adds, p99", added["p99"], "ms", "<=", 3.0),
        Figure(
            "bring_up_s",
            "embedded platform bring-up (start to all components ready)",
            details["bring_up_s"],
            "s",
            "<=",
            10.0,
        ),
    ]


def report(details: dict[str, Any]) -> None:
    print(TITLE)
    print(
        f"  network: {details['network']}, {details['requests_per_path']} requests per path "
        f"at {details['rate_per_path']}/s each, alternating"
    )
    print(f"  bring-up (start to all components ready): {details['bring_up_s']} s   [target <= 10 s]")
    for label, key in (("direct to model", "direct_ms"), ("through gateway", "gateway_ms"), ("added", "added_ms")):
        values = details[key]
        print(f"  {label:16} p50 {values['p50']:7.3f} ms   p90 {values['p90']:7.3f} ms   p99 {values['p99']:7.3f} ms")
    print("  targets: added p50 <= 1 ms, added p99 <= 3 ms")


def main() -> None:
    main_of("gateway_overhead")


if __name__ == "__main__":
    main()
