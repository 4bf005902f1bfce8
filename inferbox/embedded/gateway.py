"""The embedded gateway: Envoy Gateway's data plane as one real Envoy process.

Its network place and mesh identity exist before the workloads (policies name them); its endpoint
and route files (filesystem xDS) exist before it starts, so the serving control plane can publish
at any time; its configuration comes from the pure builder in ``gateway_config``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from inferbox.embedded.envoy_launcher import envoy_command
from inferbox.embedded.gateway_config import (
    GatewayInputs,
    GatewayPorts,
    MeshUpstream,
    Revisions,
    render_gateway,
    route_config_name,
    service_backends,
)
from inferbox.embedded.gateway_plan import GatewayPlan
from inferbox.embedded.health import wait_until
from inferbox.embedded.knobs import Knobs
from inferbox.embedded.network import Network, Pod, free_port
from inferbox.embedded.processes import ManagedProcess, RestartPolicy, Supervisor, Watch
from inferbox.embedded.xds_files import EdsFiles, RoutesFile

GATEWAY_POD_PORT = 80  # the Gateway's listener port, on the gateway pod's own address
ADMIN_POD_PORT = 15000  # Envoy's admin inside the gateway's namespace
GATEWAY_POD_NAME = "envoy-gateway-system.inference-gateway"

Endpoint = tuple[str, int]
ServiceEndpoints = Callable[[str, str, int], list[Endpoint]]


class EmbeddedGateway:
    def __init__(
        self,
        plan: GatewayPlan,
        network: Network,
        supervisor: Supervisor,
        state_dir: Path,
        public_port: int = 0,
        admin_port: int = 0,
    ) -> None:
        self.plan = plan
        self.network = network
        self.supervisor = supervisor
        self.state_dir = state_dir
        self.public_port = public_port or free_port()
        self.admin_port = admin_port or free_port()
        self.xds_dir = state_dir / "xds"
        self.eds = EdsFiles(self.xds_dir)
        self.routes = RoutesFile(self.xds_dir, route_config_name(plan))
        self.pod: Pod = network.add_pod(GATEWAY_POD_NAME)
        self.process: ManagedProcess | None = None
        self.watch: Watch | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def stop(self) -> None:
        """Stops Envoy (the endpoint and route files stay, for the next start)."""
        if self.process is not None:
            self.supervisor.stop(self.process)
            self.process = None

    def start(
        self,
        service_endpoints: ServiceEndpoints,
        mesh: MeshUpstream | None,
        revisions: Revisions,
        knobs: Knobs,
        decorate: Callable[[dict[str, Any]], None],
        timeout_s: float,
        restart: RestartPolicy | None = None,
    ) -> None:
        """Writes the configuration, starts Envoy and waits until its listeners are ready; from then
        on the supervisor restarts it whenever it exits (``restart``), as the kubelet would."""
        pod = self.pod
        ports = GatewayPorts(
            public=self.public_port,
            admin=self.admin_port,
            pod_ip=pod.ip if pod.netns else None,
            pod_port=GATEWAY_POD_PORT,
            admin_internal=ADMIN_POD_PORT,
        )
        services = {
            name: service_endpoints(svc.namespace, svc.name, svc.port)
            for name, svc in service_backends(self.plan).items()
        }
        config = render_gateway(
            GatewayInputs(
                plan=self.plan,
                ports=ports,
                xds_dir=self.xds_dir,
                service_endpoints=services,
                host_netns=self.network.host_netns_path(),
                mesh=mesh,
                revisions=revisions,
                rds=True,
                jwt_clock_skew_s=knobs.jwt_clock_skew_s,
                skip_path_normalization=knobs.gateway_skips_path_normalization,
                jwks_cache_s=knobs.jwks_cache_s,
                jwks_fail_open=knobs.jwks_fail_open,
            )
        )
        for cluster in config.eds_clusters:
            self.eds.ensure(cluster)
        self.routes.write(config.routes)
        bootstrap = config.bootstrap
        decorate(bootstrap)
        path = self.state_dir / "gateway-envoy.yaml"
        path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
        argv = envoy_command(path, service_cluster="inference-gateway")
        process = self.supervisor.start("gateway", argv, pod)
        self.process = process

        def ready() -> bool:
            return httpx.get(f"{self.admin_url}/ready", timeout=1.0).status_code == 200

        def dead() -> str | None:
            return None if process.alive() else f"Envoy exited; log {process.log_path}:\n{process.log_tail()}"

        wait_until("the gateway (Envoy)", ready, timeout_s, dead, fix=f"see {process.log_path}")
        self.watch = self.supervisor.keep_running(
            process, lambda: self.supervisor.start("gateway", argv, pod), self._restarted, restart or RestartPolicy()
        )

    def _restarted(self, process: ManagedProcess) -> None:
        self.process = process

    @property
    def restarts(self) -> list[float]:
        """Wall-clock times the supervisor restarted the gateway."""
        return list(self.watch.restarts) if self.watch else []
