"""The embedded platform: the manifests interpreted into real processes on this machine.

This module only wires the parts together. Start order, each step waiting on health: network and
pods, secrets (keys, client credentials), the gateway's place and identity, the mesh's probes, the
trace store, the revisions and activator, the workloads' replicas (in parallel, through the
deployer), the gateway (real Envoy, which fetches its JWKS before its listener opens), the
autoscaler and Prometheus. Stop order is the reverse; a reaper process cleans up if the owner dies.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferbox.embedded.ai_gateway import EmbeddedAIGateway
from inferbox.embedded.ai_gateway_plan import AIGatewayPlan, plan_ai_gateway
from inferbox.embedded.chaos import ChaosControl
from inferbox.embedded.control import LocalControl
from inferbox.embedded.deployer import Deployer, process_status
from inferbox.embedded.events import EventLog
from inferbox.embedded.gateway import GATEWAY_POD_PORT, EmbeddedGateway
from inferbox.embedded.gateway_config import MeshUpstream
from inferbox.embedded.gateway_plan import GatewayPlan, plan_gateway
from inferbox.embedded.knobs import Knobs, read_knobs
from inferbox.embedded.mesh_plan import check_mesh_policies
from inferbox.embedded.mesh_runtime import GATEWAY_META, MeshControlPlane
from inferbox.embedded.network import NETNS_PREFIX, Network, ensure_port_free, make_network
from inferbox.embedded.observability import EmbeddedObservability
from inferbox.embedded.processes import RestartPolicy, Supervisor, proc_start_time
from inferbox.embedded.reconfigure import change_between
from inferbox.embedded.replica_template import ReplicaTemplate
from inferbox.embedded.serving import ServingControlPlane
from inferbox.embedded.socket_dir import remove_socket_dir
from inferbox.embedded.state import ComponentStatus, PlatformState, PodAddress, write_state
from inferbox.embedded.subset import check_all_supported
from inferbox.embedded.workloads import read_workloads, secret_dir
from inferbox.errors import PlatformError
from inferbox.jwtserver.clients import generate_clients, write_clients, write_credentials
from inferbox.jwtserver.keystore import KeyStore
from inferbox.manifests import ManifestSet, load_manifests
from inferbox.mesh import ScaleOutcome
from inferbox.topology import Topology, read_topology

__all__ = ["GATEWAY_POD_PORT", "EmbeddedOptions", "EmbeddedPlatform"]

REPLICA_WARNINGS = "ignore::DeprecationWarning"  # as every replica runs (the deployer sets the same)


@dataclass
class EmbeddedOptions:
    manifests_dir: Path
    state_dir: Path
    log_dir: Path
    gateway_port: int = 0  # 0: any free port
    admin_port: int = 0
    network: str = "auto"
    ai_gateway_port: int = 0  # 0: the gateway's port + 1 when that is fixed (8081 for `inferbox up`), else any
    ready_timeout_s: float = float(os.environ.get("INFERBOX_READY_TIMEOUT", "90"))
    knobs: Knobs = field(default_factory=read_knobs)
    # Model-server replicas are forked from a pre-imported template (False: each starts from scratch).
    replica_template: bool = True


class EmbeddedPlatform:
    def __init__(self, options: EmbeddedOptions) -> None:
        self.options = options
        self.manifests: ManifestSet = load_manifests(options.manifests_dir)
        check_all_supported(self.manifests)
        self.plan: GatewayPlan = plan_gateway(
            self.manifests, envoy_patch_policy=False if options.knobs.envoy_patch_policy_disabled else None
        )
        self.ai_plan: AIGatewayPlan | None = plan_ai_gateway(self.manifests)
        self.topology: Topology = read_topology(self.manifests)
        self.workloads = read_workloads(self.manifests)
        check_mesh_policies(self.manifests)
        self.observability = EmbeddedObservability(self.manifests, self.plan.gateway)
        self.instance = secrets.token_hex(3)
        self.started_at = 0.0
        self.ready_after_s = 0.0
        self._reaper: subprocess.Popen[bytes] | None = None
        self._network: Network | None = None
        self._supervisor: Supervisor | None = None
        self._mesh: MeshControlPlane | None = None
        self._deployer: Deployer | None = None
        self._gateway: EmbeddedGateway | None = None
        self._serving: ServingControlPlane | None = None
        self._ai_gateway: EmbeddedAIGateway | None = None
        self._chaos: ChaosControl | None = None

    # -- the running parts (each exists once start() has created it) --------------------------
    @property
    def network(self) -> Network:
        assert self._network is not None, "the platform is not started"
        return self._network

    @property
    def supervisor(self) -> Supervisor:
        assert self._supervisor is not None, "the platform is not started"
        return self._supervisor

    @property
    def mesh(self) -> MeshControlPlane:
        assert self._mesh is not None, "the platform is not started"
        return self._mesh

    @property
    def deployer(self) -> Deployer:
        assert self._deployer is not None, "the platform is not started"
        return self._deployer

    @property
    def gateway(self) -> EmbeddedGateway:
        assert self._gateway is not None, "the platform is not started"
        return self._gateway

    @property
    def serving(self) -> ServingControlPlane:
        assert self._serving is not None, "the platform is not started"
        return self._serving

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        opts = self.options
        self.started_at = time.monotonic()
        if opts.gateway_port:
            ensure_port_free(opts.gateway_port, "gateway", "--gateway-port")
        if opts.admin_port:
            ensure_port_free(opts.admin_port, "gateway admin", "--admin-port")
        ai_port = self._ai_gateway_port()
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        supervisor = self._supervisor = Supervisor(opts.state_dir, opts.log_dir)
        events = EventLog(opts.log_dir)
        self._start_reaper()
        try:
            template = (
                ReplicaTemplate(supervisor, opts.state_dir, {"PYTHONWARNINGS": REPLICA_WARNINGS})
                if opts.replica_template and any(w.kind == "InferenceService" for w in self.workloads)
                else None
            )
            network = self._network = make_network(opts.network, self.instance)
            mesh = self._mesh = MeshControlPlane(
                self.manifests,
                network,
                supervisor,
                opts.state_dir,
                opts.knobs,
                # Sidecars may start before the JWT server is ready; Envoy refetches keys until it is.
                lambda namespace, name, port: self.deployer.service_endpoints(namespace, name, port, ready_only=False),
                events.record,
            )
            deployer = self._deployer = Deployer(
                self.manifests,
                self.workloads,
                network,
                supervisor,
                mesh,
                self.observability,
                events,
                opts.state_dir,
                opts.ready_timeout_s,
                template,
            )
            self._write_secrets()
            gateway = self._gateway = EmbeddedGateway(
                self.plan, network, supervisor, opts.state_dir, opts.gateway_port, opts.admin_port
            )
            mesh.issue_gateway_cert()
            mesh.register(gateway.pod, GATEWAY_META)
            mesh.create_probes([t.name for t in self.topology.tenants], gateway.pod)
            self.observability.start_trace_store(network, supervisor, opts.ready_timeout_s, mesh.register)
            serving = self._serving = ServingControlPlane(
                self.manifests,
                self.plan,
                deployer,
                mesh,
                gateway.eds,
                gateway.routes,
                opts.knobs,
                events,
                opts.log_dir,
            )
            serving.create_revisions(network)
            if template is not None:
                template.wait_ready(opts.ready_timeout_s)
            self._start_workloads()
            self._ai_gateway = self._start_ai_gateway(ai_port)
            self._start_gateway()
            serving.start_autoscaler(gateway.admin_url)
            deployer.watch_liveness()
            self._chaos = ChaosControl(
                self.manifests,
                network,
                supervisor,
                deployer,
                gateway,
                self.observability,
                lambda: serving.activator_pod,
                opts.knobs.partition_all_tenants,
            )
            self.observability.start_prometheus(
                network, supervisor, mesh.register, opts.state_dir, deployer, gateway.pod, events, opts.ready_timeout_s
            )
            self.ready_after_s = time.monotonic() - self.started_at
        except BaseException:
            self.stop()
            raise

    def _start_gateway(self) -> None:
        opts = self.options
        self.gateway.start(
            self.deployer.service_endpoints,
            self._mesh_upstream(),
            self.serving.revisions_for,
            opts.knobs,
            lambda bootstrap: self._decorate_gateway(bootstrap, self._ai_gateway),
            opts.ready_timeout_s,
            RestartPolicy(never=opts.knobs.gateway_restart_never),
        )

    def reconfigure(self, manifests_dir: Path, knobs: Knobs) -> list[str]:
        """Takes a new manifest set (and knobs) in place, restarting only the parts that read what
        changed (see ``reconfigure.py``); returns their names. A change no part owns alone is
        refused: it needs a new platform."""
        manifests = load_manifests(manifests_dir)
        check_all_supported(manifests)
        change = change_between(self.manifests, manifests, self.options.knobs, knobs)
        parts = change.parts()
        if parts is not None and plan_ai_gateway(manifests) != self.ai_plan:
            # The AI Gateway's processor and rate-limit service read their plan at start only.
            parts = None
        if parts is None:
            unowned = change.unowned() or ["what the AI Gateway reads"]
            raise PlatformError(
                f"cannot apply {manifests_dir} to the running platform: {', '.join(unowned)} changed",
                "start a new platform with these manifests",
            )
        plan = plan_gateway(manifests)
        if "autoscaler" in parts:
            self.serving.retune(manifests, knobs)
        if "gateway" in parts:
            self.gateway.stop()
            self.gateway.plan = plan
            self.serving.replan(plan, knobs)
        self.manifests, self.plan, self.topology = manifests, plan, read_topology(manifests)
        self.options.manifests_dir, self.options.knobs = manifests_dir, knobs
        if "gateway" in parts:
            self._start_gateway()
        return sorted(parts)

    def _ai_gateway_port(self) -> int:
        """The AI Gateway's host port: as asked, else the gateway's next port when that one is fixed
        (8081 for `inferbox up`) and free, else any free port (`inferbox up` and status print it)."""
        opts = self.options
        if self.ai_plan is None:
            return 0
        if opts.ai_gateway_port:
            ensure_port_free(opts.ai_gateway_port, "AI Gateway", "another AI Gateway port")
            return opts.ai_gateway_port
        if opts.gateway_port:
            try:
                ensure_port_free(opts.gateway_port + 1, "AI Gateway", "")
            except PlatformError:
                return 0
            return opts.gateway_port + 1
        return 0

    def _start_ai_gateway(self, port: int) -> EmbeddedAIGateway | None:
        """AI Gateway's processor and the rate-limit service in the gateway's pod (before Envoy)."""
        if self.ai_plan is None:
            return None
        ai_gateway = self._ai_gateway = EmbeddedAIGateway(self.ai_plan, self.options.state_dir, port)
        ai_gateway.start_services(self.supervisor, self.gateway.pod, self.options.ready_timeout_s)
        self.observability.extra_views.append(ai_gateway.pod_view())
        return ai_gateway

    def _decorate_gateway(self, bootstrap: dict[str, Any], ai_gateway: EmbeddedAIGateway | None) -> None:
        self.observability.decorate_gateway(bootstrap, self.gateway.pod)
        if ai_gateway is not None:
            ai_gateway.decorate(
                bootstrap,
                host_netns=self.network.host_netns_path(),
                eds=self.gateway.eds,
                revisions=self.serving.revisions_for,
                service_endpoints=self.deployer.service_endpoints,
                mesh=self._mesh_upstream(),
                jwt_clock_skew_s=self.options.knobs.jwt_clock_skew_s,
            )

    def _mesh_upstream(self) -> MeshUpstream:
        """The gateway's mesh identity and, per revision cluster, the identity its replicas present."""
        cert = self.mesh.gateway_cert
        return MeshUpstream(str(cert.cert), str(cert.key), str(self.mesh.pki.bundle_path), self.serving.identities())

    def _start_workloads(self) -> None:
        """Deployments at their replicas, each revision at its initial scale; all waited on together."""
        started = [
            self.deployer.start_replica(spec)
            for spec in self.workloads
            if spec.kind != "InferenceService"  # a model's replicas belong to its revisions
            for _ in range(spec.min_replicas)
        ]
        models = self.serving.start_initial()
        self.deployer.wait_all_ready(started + models)
        self.serving.initial_ready(models)

    def stop(self) -> None:
        if self._deployer is not None:
            self._deployer.stop_watching()  # before any process stops: an exit now is no crash
        if self._chaos is not None:
            self._chaos.heal_all()  # resumed processes stop cleanly; partition rules go with their pods anyway
        if self._serving is not None:
            self._serving.stop()
        self.observability.stop()
        if self._supervisor is not None:
            self._supervisor.stop_all()
        if self._network is not None:
            self._network.teardown()
        remove_socket_dir(self.options.state_dir)
        if self._deployer is not None:
            self._deployer.forget_all()
        if self._reaper and self._reaper.stdin:
            self._reaper.stdin.close()  # nothing is left, so the reaper only checks and exits
            try:
                self._reaper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._reaper.kill()
            self._reaper = None

    def _start_reaper(self) -> None:
        self._reaper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inferbox.embedded.reaper",
                str(self.options.state_dir),
                f"{NETNS_PREFIX}{self.instance}-",
            ],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )

    def scale(self, namespace: str, name: str, replicas: int) -> ScaleOutcome:
        """Runs a workload at ``replicas`` replicas (a model's revisions through the autoscaler's
        bounds); returns once new replicas are ready or refused."""
        if self.deployer.spec(namespace, name).kind == "InferenceService":
            return self.serving.set_bounds(namespace, name, replicas, replicas, self.options.ready_timeout_s)
        return self.deployer.scale_deployment(namespace, name, replicas)

    # -- secrets -----------------------------------------------------------------------------
    @property
    def key_dir(self) -> Path:
        return secret_dir(self.options.state_dir, "jwt-server-keys")

    @property
    def credentials_path(self) -> Path:
        return self.options.state_dir / "credentials.json"

    def _write_secrets(self) -> None:
        KeyStore.initialise(self.key_dir)
        tenants = [t.name for t in self.topology.tenants]
        clients, credentials = generate_clients(tenants)
        write_clients(secret_dir(self.options.state_dir, "jwt-server-clients") / "clients.json", clients)
        write_credentials(self.credentials_path, credentials)

    # -- facts for the contract --------------------------------------------------------------
    def control(self) -> LocalControl:
        """The control plane as the embedded target uses it."""
        return LocalControl(
            self.deployer, self.serving, self.mesh.ledger, self.component_status, self._reconfigured, self._chaos
        )

    def _reconfigured(self, manifests_dir: Path, knobs: Knobs) -> list[str]:
        parts = self.reconfigure(manifests_dir, knobs)
        self.write_state()
        return parts

    def component_status(self) -> dict[str, ComponentStatus]:
        status: dict[str, ComponentStatus] = {}
        if self._gateway is not None and self._gateway.process is not None:
            status["gateway"] = process_status(self._gateway.process)
        if self._deployer is not None and self._deployer.template is not None:
            status["model-server-template"] = process_status(self._deployer.template.process)
        if self._ai_gateway is not None:
            status.update({name: process_status(p) for name, p in self._ai_gateway.processes.items()})
        for name, component in self.observability.components().items():
            status[name] = process_status(component.process)
        if self._deployer is not None:
            status.update(self._deployer.component_rows())
        return status

    def state(self) -> PlatformState:
        """What another process needs to use this running platform (written to state.json)."""
        gateway = self.gateway
        return PlatformState(
            instance=self.instance,
            owner_pid=os.getpid(),
            owner_start_time=proc_start_time(os.getpid()) or 0.0,
            manifests_dir=str(self.options.manifests_dir),
            state_dir=str(self.options.state_dir),
            log_dir=str(self.options.log_dir),
            gateway_url=gateway.url,
            admin_url=gateway.admin_url,
            gateway_pod=PodAddress(gateway.pod.ip, gateway.pod.netns, GATEWAY_POD_PORT),
            network=self._network.kind if self._network else "none",
            key_dir=str(self.key_dir),
            credentials=str(self.credentials_path),
            ready_after_s=round(self.ready_after_s, 3),
            components=self.component_status(),
            mesh=self.mesh.state(),
            workloads=tuple(self.deployer.workload_rows()),
            observability=self.observability.state(),
            ai_gateway_url=self._ai_gateway.url if self._ai_gateway else None,
        )

    def write_state(self) -> Path:
        path = self.options.state_dir / "state.json"
        write_state(path, self.state())
        return path
