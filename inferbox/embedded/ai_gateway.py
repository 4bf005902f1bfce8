"""The embedded AI Gateway: a second Gateway's listener, AI Gateway's processor and the rate-limit
service, all in the gateway's pod.

Envoy Gateway runs one Envoy per Gateway unless an EnvoyProxy merges them (``mergeGateways``); the
embedded target always runs both Gateways in its one gateway Envoy, as merged Gateways: each keeps
its own listener (the AI Gateway's on its own host port), filter chain and routes, and both share
the model revision clusters, so Knative's autoscaler, which reads the gateway's counters, sees the
AI traffic too. The processor (AI Gateway's extproc sidecar) and the rate-limit service (Envoy
Gateway's ``envoy-ratelimit`` with Redis) are processes in the gateway's pod, reached over Unix
sockets; the processor serves its ``gen_ai_*`` metrics on the pod's port 1064 (``aigw-metrics``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from inferbox.embedded import monitors
from inferbox.embedded.ai_gateway_config import (
    AIGatewayInputs,
    Revisions,
    add_to_bootstrap,
    jwks_sources,
    processor_config,
    ratelimit_config,
    render_ai_gateway,
)
from inferbox.embedded.ai_gateway_plan import AIGatewayPlan
from inferbox.embedded.envoy_common import Endpoint
from inferbox.embedded.gateway_config import MeshUpstream
from inferbox.embedded.health import wait_until
from inferbox.embedded.network import Pod, free_port
from inferbox.embedded.processes import ManagedProcess, Supervisor
from inferbox.embedded.socket_dir import ensure_socket_dir, socket_dir_for
from inferbox.embedded.xds_files import EdsFiles

EXTPROC_METRICS_PORT = 1064  # AI Gateway's sidecar port "aigw-metrics"
ServiceEndpoints = Callable[[str, str, int], list[Endpoint]]


class EmbeddedAIGateway:
    def __init__(self, plan: AIGatewayPlan, state_dir: Path, public_port: int = 0) -> None:
        self.plan = plan
        self.folder = state_dir / "ai-gateway"
        self.sockets = socket_dir_for(state_dir)  # short: a state folder can be too deep for sun_path
        self.public_port = public_port or free_port()
        self.pod: Pod | None = None
        self.processes: dict[str, ManagedProcess] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def processor_socket(self) -> Path:
        return self.sockets / "ai-gateway-extproc.sock"

    @property
    def ratelimit_socket(self) -> Path:
        return self.sockets / "ai-gateway-ratelimit.sock"

    def start_services(self, supervisor: Supervisor, pod: Pod, timeout_s: float) -> None:
        """The processor and the rate-limit service in the gateway's pod, ready before Envoy starts
        (the processor fails closed: Envoy would answer 500 without it)."""
        self.pod = pod
        self.folder.mkdir(parents=True, exist_ok=True)
        ensure_socket_dir(self.folder.parent)
        extproc_config = self.folder / "filter-config.json"
        extproc_config.write_text(json.dumps(processor_config(self.plan), indent=2))
        limits = self.folder / "ratelimit-config.json"
        limits.write_text(json.dumps(ratelimit_config(self.plan), indent=2))
        metrics_host = pod.ip if pod.netns else "127.0.0.1"
        metrics_port = pod.port(EXTPROC_METRICS_PORT)
        module = [sys.executable, "-m", "inferbox.aigateway"]
        self.processes["ai-gateway-extproc"] = supervisor.start(
            "ai-gateway-extproc",
            [
                *module,
                "extproc",
                f"--config={extproc_config}",
                f"--socket={self.processor_socket}",
                f"--metrics-host={metrics_host}",
                f"--metrics-port={metrics_port}",
            ],
            pod,
        )
        self.processes["ai-gateway-ratelimit"] = supervisor.start(
            "ai-gateway-ratelimit",
            [*module, "ratelimit", f"--config={limits}", f"--socket={self.ratelimit_socket}"],
            pod,
        )
        for name, socket in (
            ("ai-gateway-extproc", self.processor_socket),
            ("ai-gateway-ratelimit", self.ratelimit_socket),
        ):
            _wait_grpc(name, socket, self.processes[name], timeout_s)

    def decorate(
        self,
        bootstrap: dict[str, Any],
        *,
        host_netns: str | None,
        eds: EdsFiles,
        revisions: Revisions,
        service_endpoints: ServiceEndpoints,
        mesh: MeshUpstream | None,
        jwt_clock_skew_s: int | None,
    ) -> None:
        """Adds the AI Gateway's listener and clusters to the gateway's bootstrap."""
        jwks = {
            name: service_endpoints(source.namespace, source.service, source.port)
            for name, source in jwks_sources(self.plan).items()
            if name not in _clusters(bootstrap)
        }
        config = render_ai_gateway(
            AIGatewayInputs(
                plan=self.plan,
                public_port=self.public_port,
                host_netns=host_netns,
                xds_dir=eds.directory,
                processor_socket=self.processor_socket,
                ratelimit_socket=self.ratelimit_socket,
                revisions=revisions,
                service_endpoints=jwks,
                mesh=mesh,
                jwt_clock_skew_s=jwt_clock_skew_s,
            )
        )
        for cluster in config.eds_clusters:
            eds.ensure(cluster)
        add_to_bootstrap(bootstrap, config)

    def pod_view(self) -> monitors.PodView:
        """The AI Gateway's proxy pod as Kubernetes discovery lists it (its processor's metrics port)."""
        assert self.pod is not None, "start_services() first"
        namespace, name = self.plan.gateway.split("/")
        return monitors.PodView(
            namespace=namespace,
            name=f"envoy-{namespace}-{name}-0",
            ip=self.pod.ip,
            labels={
                "app.kubernetes.io/name": "envoy",
                "app.kubernetes.io/component": "proxy",
                "app.kubernetes.io/managed-by": "envoy-gateway",
                "gateway.envoyproxy.io/owning-gateway-name": name,
                "gateway.envoyproxy.io/owning-gateway-namespace": namespace,
            },
            annotations={},
            containers=(
                monitors.Container(
                    "ai-gateway-extproc", (monitors.ContainerPort("aigw-metrics", EXTPROC_METRICS_PORT),)
                ),
            ),
            port_map={} if self.pod.netns else {EXTPROC_METRICS_PORT: self.pod.port(EXTPROC_METRICS_PORT)},
        )

    def metrics_url(self) -> str:
        assert self.pod is not None, "start_services() first"
        host, port = self.pod.endpoint(EXTPROC_METRICS_PORT)
        return f"http://{host}:{port}/metrics"


def _clusters(bootstrap: Mapping[str, Any]) -> set[str]:
    return {c["name"] for c in bootstrap["static_resources"]["clusters"]}


def _wait_grpc(name: str, socket: Path, process: ManagedProcess, timeout_s: float) -> None:
    def ready() -> bool:
        if not socket.exists():
            return False
        with grpc.insecure_channel(f"unix://{socket}") as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1.0)
            except grpc.FutureTimeoutError:
                return False
        return True

    def dead() -> str | None:
        return None if process.alive() else f"{name} exited; log {process.log_path}:\n{process.log_tail()}"

    wait_until(name, ready, timeout_s, dead, fix=f"see {process.log_path}")
