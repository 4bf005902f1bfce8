"""The embedded target as a ``Platform``: built from a running platform's state, with its control
plane in this process or reached through a kept platform's control channel."""

from __future__ import annotations

import platform as pyplatform
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from inferbox.client import GatewayClient
from inferbox.contract import (
    Capability,
    ComponentHealth,
    Credentials,
    Fault,
    FaultKind,
    HeldLoad,
    LoadClientPlace,
    Observability,
    PlatformBase,
    ReplicaPause,
    SigningKey,
)
from inferbox.embedded.catalogue import CATALOGUE, trace_naming
from inferbox.embedded.control import ControlPlane
from inferbox.embedded.envoy_launcher import envoy_version
from inferbox.embedded.held_load import ReplicaChooser
from inferbox.embedded.knobs import read_knobs
from inferbox.embedded.mesh_client import EmbeddedMeshClient
from inferbox.embedded.netpol import nft_available
from inferbox.embedded.processes import is_same_process
from inferbox.embedded.state import ComponentStatus, PlatformState
from inferbox.errors import PlatformError
from inferbox.held_load import check_bounds, run_workers
from inferbox.jwtserver.clients import read_credentials
from inferbox.jwtserver.keystore import KeyStore
from inferbox.manifests import load_manifests
from inferbox.mesh import MeshClient, MeshSource, Outcome, ProbeResult, QuotaStatus, ScaleOutcome, Workload
from inferbox.profile import ConformanceProfile
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus
from inferbox.tokens import TokenForge
from inferbox.topology import Model, Topology, read_topology

HOLD_SETTLE_S = 90.0  # replicas starting from zero while a model is held warm
NO_REPLICA_POLL_S = 0.2  # how often a held request looks again for a ready replica of its model
LEFT_REPLICA_RETRIES = 2  # Istio's default retry attempts


class EmbeddedTarget(PlatformBase):
    """``control`` is the platform's control plane (None when it cannot be reached: then only what
    the state file says is known, and capabilities that change the platform are absent)."""

    target = "embedded"
    # A workload's policies are part of its sidecar's configuration and its namespace's rules from
    # its start: there is nothing to converge; the margin covers a probe lost on a busy machine.
    policy_convergence_s = 2.0

    def __init__(self, state: PlatformState, profile: ConformanceProfile, control: ControlPlane | None) -> None:
        self.state = state
        self.profile = profile
        self.control = control
        self.topology: Topology = read_topology(load_manifests(Path(state.manifests_dir)))
        self._credentials: dict[str, Credentials] = read_credentials(Path(state.credentials))
        self._keys = KeyStore(state.key_dir)
        self._clients: list[GatewayClient] = []

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.TOKEN_SIGNING_KEY, Capability.PAUSE_REPLICA, Capability.DIRECT_MODEL_ACCESS}
        if self.state.ai_gateway_url:
            caps.add(Capability.AI_GATEWAY)
        if self.state.network == "netns":
            caps.add(Capability.WORKLOAD_NETWORK)
        if self.state.mesh is not None:
            caps.add(Capability.MESH_PROBES)
            caps.add(Capability.BORROWED_MESH_IDENTITY)
            caps.add(Capability.HELD_LOAD)
            if self.state.mesh.network_policy:
                caps.add(Capability.NETWORK_POLICY)
        caps.add(Capability.KEY_ROTATION)  # the issuer's key folder is this machine's
        if self.control is not None:
            # Replica counts and bounds need the control plane (in this process or its channel).
            caps.add(Capability.RESOURCE_QUOTA)
            caps.add(Capability.AUTOSCALING)
            # Faults are injected (and rolled back at their bound) by the process owning the platform.
            caps |= {Capability.KILL_REPLICA, Capability.KILL_GATEWAY, Capability.STOP_COMPONENT}
            if self.state.network == "netns" and nft_available():
                caps.add(Capability.PARTITION)
        telemetry = self.state.observability
        if telemetry.prometheus_url:
            caps.add(Capability.METRICS)
        if telemetry.jaeger_query_url:
            caps.add(Capability.TRACES)
        return frozenset(caps)

    def _control(self) -> ControlPlane:
        if self.control is None:
            raise PlatformError(
                "this needs the embedded control plane, in this process or through a kept platform's control channel",
                "run without --inferbox-keep-platform, or restart the kept platform with `inferbox up`",
            )
        return self.control

    def _components(self) -> dict[str, ComponentStatus]:
        """Processes running now: replicas come and go (scale to zero), the control plane knows them."""
        return self.control.component_status() if self.control is not None else self.state.components

    # -- basics --------------------------------------------------------------------------------------
    def observability(self) -> Observability:
        telemetry = self.state.observability
        if not telemetry.prometheus_url:
            raise PlatformError(
                "this embedded platform runs no Prometheus", "its manifests define no PodMonitor or ServiceMonitor"
            )
        service = telemetry.gateway_trace_service
        return Observability(
            prometheus_url=telemetry.prometheus_url,
            catalogue=CATALOGUE,
            scrape_interval_s=telemetry.scrape_interval_s,
            trace_export_interval_s=telemetry.trace_export_interval_s,
            jaeger_query_url=telemetry.jaeger_query_url,
            traces=trace_naming(service) if service else None,
        )

    @property
    def gateway_url(self) -> str:
        return self.state.gateway_url

    def ai_gateway_url(self) -> str:
        if not self.state.ai_gateway_url:
            raise self._missing(Capability.AI_GATEWAY)
        return self.state.ai_gateway_url

    def gateway(self) -> GatewayClient:
        client = GatewayClient(self.gateway_url, self.profile)
        self._clients.append(client)
        return client

    def credentials(self, tenant: str) -> Credentials:
        return self._credentials[tenant]

    def signing_key(self) -> SigningKey:
        return self._keys.active()

    def tokens(self) -> TokenForge:
        return TokenForge(self.signing_key(), self.profile)

    def components(self) -> list[ComponentHealth]:
        health = []
        for name, info in sorted(self._components().items()):
            alive = is_same_process(info.pid, info.start_time)
            health.append(ComponentHealth(name, alive, f"pid {info.pid}" if alive else "process is gone"))
        try:
            ready = httpx.get(f"{self.state.admin_url}/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError as exc:
            ready, detail = False, str(exc)
        else:
            detail = "listeners ready" if ready else "Envoy reports not ready"
        health.append(ComponentHealth("gateway-listeners", ready, detail))
        return health

    def logs(self, component: str) -> str:
        path = Path(self.state.log_dir) / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def versions(self) -> dict[str, str]:
        versions = {"envoy": envoy_version(), "python": pyplatform.python_version()}
        if self.state.observability.prometheus_url:
            from inferbox.embedded.observability import prometheus_version

            versions["prometheus"] = prometheus_version()
        for package in ("kserve", "scikit-learn", "fastapi", "inferbox"):
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[package] = "not installed"
        return versions

    # -- the mesh ------------------------------------------------------------------------------------
    def workloads(self) -> list[Workload]:
        rows = self.control.workload_rows() if self.control is not None else list(self.state.workloads)
        return [row.workload() for row in rows if row.ready]

    def mesh_client(self, source: MeshSource) -> MeshClient:
        if self.state.mesh is None:
            raise self._missing(Capability.MESH_PROBES)
        return EmbeddedMeshClient(self.state.mesh, source)

    def mesh_client_with_identity(self, source: MeshSource, namespace: str, service_account: str) -> MeshClient:
        if self.state.mesh is None:
            raise self._missing(Capability.BORROWED_MESH_IDENTITY)
        return EmbeddedMeshClient(self.state.mesh, source, borrowed=(namespace, service_account))

    def mesh_trust_anchors(self) -> list[bytes]:
        if self.state.mesh is None:
            raise self._missing(Capability.MESH_PROBES)
        return [Path(self.state.mesh.root_ca).read_bytes()]

    def resource_quota(self, tenant: str) -> QuotaStatus | None:
        return self._control().quota_status(tenant)

    def scale_model(self, model: Model, replicas: int, settle_s: float) -> ScaleOutcome:
        # The embedded deployer is synchronous: it returns once new replicas are ready or refused.
        return self._control().set_bounds(model.tenant, model.name, replicas, replicas, settle_s)

    def restore_model(self, model: Model, settle_s: float) -> None:
        self._control().restore(model.tenant, model.name, settle_s)

    # -- serving -------------------------------------------------------------------------------------
    def autoscaling(self, model: Model) -> AutoscalingSettings:
        return self._control().settings(model.tenant, model.name)

    def revisions(self, model: Model) -> list[RevisionStatus]:
        return self._control().revision_status(model.tenant, model.name)

    def replica_timings(self, model: Model, since: float) -> list[ReplicaTiming]:
        return self._control().timings(model.tenant, model.name, since)

    def served_requests(self, model: Model) -> dict[str, int]:
        return self._control().served(model.tenant, model.name)

    def set_scale_bounds(
        self, model: Model, min_replicas: int | None, max_replicas: int | None, settle_s: float
    ) -> ScaleOutcome:
        return self._control().set_bounds(model.tenant, model.name, min_replicas, max_replicas, settle_s)

    def promote_canary(self, model: Model, settle_s: float) -> None:
        self._control().promote(model.tenant, model.name, settle_s)

    @contextmanager
    def hold_requests(
        self, model: Model, token: str, payload: Any, count: int, seconds: float, limit_s: float
    ) -> Iterator[HeldLoad]:
        check_bounds(count, seconds, limit_s)
        if self.state.mesh is None:
            raise self._missing(Capability.HELD_LOAD)
        client = EmbeddedMeshClient(self.state.mesh, MeshSource.in_tenant(model.tenant))
        traffic = (lambda: self.revisions(model)) if self.control is not None else list
        chooser = ReplicaChooser(model, self.workloads, traffic)
        path = f"/v1/models/{model.name}:predict"

        def one(_index: int, stop: threading.Event, _deadline: float) -> list[ProbeResult]:
            for _attempt in range(1 + LEFT_REPLICA_RETRIES):
                replica = chooser.next()
                if replica is None:
                    stop.wait(NO_REPLICA_POLL_S)  # polling for a ready replica; the hold's limit bounds it
                    return []
                port = replica.ports[0][1]
                result = client.slow_request(replica, port, path, token=token, json=payload, seconds=seconds, stop=stop)
                # Cut by a replica that was leaving: sent again (see embedded/held_load.py).
                if result.outcome is not Outcome.TRANSPORT_REFUSED or chooser.still_ready(replica):
                    break
            return [result]

        with run_workers(HeldLoad(model.tenant, model.name, count, seconds), count, limit_s, one) as load:
            yield load

    # -- chaos and load ------------------------------------------------------------------------------
    def pause_replica(self, model: Model, seconds: float, replica: int = 0) -> ReplicaPause:
        from inferbox.embedded.pause import pause_replica

        return pause_replica(self._components(), model, seconds, replica)

    def kill_replica(self, model: Model, replica: int = 0, starting: bool = False) -> Fault:
        target = {"tenant": model.tenant, "model": model.name, "replica": replica, "starting": starting}
        return self._control().chaos_inject(FaultKind.REPLICA_KILL, target, 0.0)

    def stall_replica(self, model: Model, seconds: float, replica: int = 0) -> Fault:
        target = {"tenant": model.tenant, "model": model.name, "replica": replica}
        return self._control().chaos_inject(FaultKind.REPLICA_PAUSE, target, seconds)

    def kill_gateway(self) -> Fault:
        return self._control().chaos_inject(FaultKind.GATEWAY_KILL, {}, 0.0)

    def stop_component(self, component: str, seconds: float) -> Fault:
        return self._control().chaos_inject(FaultKind.COMPONENT_STOP, {"component": component}, seconds)

    def partition(self, tenant: str, seconds: float) -> Fault:
        if Capability.PARTITION not in self.capabilities:
            raise self._missing(Capability.PARTITION)
        return self._control().chaos_inject(FaultKind.PARTITION, {"tenant": tenant}, seconds)

    def heal(self, fault: Fault) -> Fault:
        if not fault.bound_s:
            return fault
        return self._control().chaos_heal(fault.id)

    def faults(self) -> list[Fault]:
        return self.control.chaos_faults() if self.control is not None else []

    def stage_signing_key(self) -> str:
        if read_knobs().rotation_without_staging:
            return "(not staged)"  # the broken rotation a mutant asks for: nothing published ahead
        return self._keys.stage()

    def activate_signing_key(self) -> str:
        return self._keys.rotate()

    def retire_signing_key(self, kid: str) -> None:
        self._keys.withdraw(kid)

    @contextmanager
    def load_client(self, name: str, tenant: str | None = None) -> Iterator[LoadClientPlace]:  # noqa: ARG002
        # ``name`` labels the place on targets that create a pod for it; embedded places are numbered.
        from inferbox.embedded.loadclient import load_client

        # A client calling replicas directly bypasses the gateway, whose request counter the autoscaler
        # reads (its short requests are rarely in flight at a tick): the tenant's models keep a
        # replica while it runs (and their bounds come back after).
        held = [m for m in self.topology.models if m.tenant == tenant] if self.control is not None else []
        for model in held:
            self.set_scale_bounds(model, 1, None, HOLD_SETTLE_S)
        try:
            with load_client(self.state, self._components(), tenant) as place:
                yield place
        finally:
            for model in held:
                self.restore_model(model, HOLD_SETTLE_S)

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def copy_logs(self, dest: Path) -> None:
        """The platform's component logs into ``dest`` (a kept platform's logs live in its state folder)."""
        logs = Path(self.state.log_dir)
        if logs.is_dir() and logs.resolve() != dest.resolve():
            shutil.copytree(logs, dest, dirs_exist_ok=True)
