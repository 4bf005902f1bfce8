"""The embedded target as a ``Platform``: built from a running platform's state (in this process or
in an ``inferbox up`` daemon)."""

from __future__ import annotations

import json
import platform as pyplatform
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from inferbox.client import GatewayClient
from inferbox.contract import Capability, ComponentHealth, LoadClientPlace, Observability, ReplicaPause
from inferbox.embedded.control import RemotePlatform, remote
from inferbox.embedded.mesh_client import EmbeddedMeshClient
from inferbox.embedded.processes import is_same_process
from inferbox.jwtserver.clients import Credentials, read_credentials
from inferbox.jwtserver.keystore import KeyStore, SigningKey
from inferbox.manifests import load_manifests
from inferbox.mesh import MeshClient, MeshSource, QuotaStatus, ScaleOutcome, Workload
from inferbox.profile import ConformanceProfile
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus
from inferbox.tokens import TokenForge
from inferbox.topology import Model, Topology, read_topology

HOLD_SETTLE_S = 90.0  # replicas starting from zero while a model is held warm
# `envoy --version` prints "<binary path>  version: <commit>/<version>/<status>/<build>/<ssl>".
ENVOY_VERSION = re.compile(r"version: [0-9a-f]+/(\d+\.\d+\.\d+[^/\s]*)/")


def envoy_version(output: str) -> str:
    """The release from ``envoy --version`` output (the binary's path comes first and may hold "/")."""
    found = ENVOY_VERSION.search(output)
    return found.group(1) if found else f"unknown ({output.strip()[-80:] or 'no output'})"


@dataclass
class EmbeddedTarget:
    state: dict[str, Any]
    profile: ConformanceProfile
    topology: Topology = field(init=False)
    target: str = "embedded"

    def __post_init__(self) -> None:
        self.topology = read_topology(load_manifests(self.state["manifests_dir"]))
        self._credentials: dict[str, Credentials] = read_credentials(Path(self.state["credentials"]))
        self._keys = KeyStore(self.state["key_dir"])
        self._clients: list[GatewayClient] = []
        self._remote: RemotePlatform | bool | None = None  # a kept platform's control channel (False: none)

    def _control(self) -> Any:
        """The platform's control plane: in this process (``live``), or a kept platform's through its
        control channel; None when neither is reachable."""
        live = getattr(self, "live", None)
        if live is not None:
            return live
        if self._remote is None:
            self._remote = remote(Path(self.state["state_dir"])) or False
        return self._remote or None

    @classmethod
    def from_state_file(cls, path: Path, profile: ConformanceProfile) -> EmbeddedTarget:
        return cls(json.loads(path.read_text()), profile)

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.TOKEN_SIGNING_KEY, Capability.PAUSE_REPLICA, Capability.DIRECT_MODEL_ACCESS}
        if self.state.get("network") == "netns":
            caps.add(Capability.WORKLOAD_NETWORK)
        mesh = self.state.get("mesh")
        if mesh:
            caps.add(Capability.MESH_PROBES)
            if mesh.get("network_policy"):
                caps.add(Capability.NETWORK_POLICY)
        if self._control() is not None:
            # Replica counts and bounds need the control plane (in this process or its channel).
            caps.add(Capability.RESOURCE_QUOTA)
            caps.add(Capability.AUTOSCALING)
        telemetry = self.state.get("observability") or {}
        if telemetry.get("prometheus_url"):
            caps.add(Capability.METRICS)
        if telemetry.get("jaeger_query_url"):
            caps.add(Capability.TRACES)
        return frozenset(caps)

    def observability(self) -> Observability:
        from inferbox.embedded.catalogue import CATALOGUE, trace_naming

        telemetry = self.state.get("observability") or {}
        if not telemetry.get("prometheus_url"):
            raise RuntimeError("this embedded platform runs no Prometheus (its manifests define no monitors)")
        gateway_service = telemetry.get("gateway_trace_service")
        return Observability(
            prometheus_url=str(telemetry["prometheus_url"]),
            catalogue=CATALOGUE,
            scrape_interval_s=float(telemetry["scrape_interval_s"]),
            trace_export_interval_s=float(telemetry["trace_export_interval_s"]),
            jaeger_query_url=telemetry.get("jaeger_query_url"),
            traces=trace_naming(str(gateway_service)) if gateway_service else None,
        )

    @property
    def gateway_url(self) -> str:
        return str(self.state["gateway_url"])

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
        # Replicas come and go (scale to zero): the control plane knows the current ones.
        live = self._control()
        components = live.component_status() if live is not None else self.state.get("components", {})
        for name, info in sorted(components.items()):
            alive = is_same_process(int(info["pid"]), int(info["start_time"]))
            health.append(ComponentHealth(name, alive, f"pid {info['pid']}" if alive else "process is gone"))
        try:
            ready = httpx.get(f"{self.state['admin_url']}/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError as exc:
            ready, detail = False, str(exc)
        else:
            detail = "listeners ready" if ready else "Envoy reports not ready"
        health.append(ComponentHealth("gateway-listeners", ready, detail))
        return health

    def logs(self, component: str) -> str:
        path = Path(self.state["log_dir"]) / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def versions(self) -> dict[str, str]:
        from inferbox.embedded.platform import envoy_binary

        out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, check=False).stdout
        versions = {"envoy": envoy_version(out), "python": pyplatform.python_version()}
        if (self.state.get("observability") or {}).get("prometheus_url"):
            from inferbox.embedded.observability import prometheus_version

            versions["prometheus"] = prometheus_version()
        for package in ("kserve", "scikit-learn", "fastapi", "inferbox"):
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[package] = "not installed"
        return versions

    # -- the mesh ------------------------------------------------------------------------------------
    def _live(self) -> Any:
        live = self._control()
        if live is None:
            from inferbox.errors import PlatformError

            raise PlatformError(
                "this needs the embedded control plane, in this process or through a kept platform's control channel",
                "run without --keep-platform, or restart the kept platform with `inferbox up`",
            )
        return live

    def workloads(self) -> list[Workload]:
        live = self._control()
        rows = live.workload_state() if live is not None else self.state.get("workloads") or []
        return [
            Workload(
                namespace=row["namespace"],
                name=row["name"],
                model=row["model"],
                service_account=row["service_account"],
                address=row["address"],
                ports=tuple((str(n), int(p)) for n, p in row["ports"]),
                labels=dict(row["labels"]),
                sidecar=bool(row.get("sidecar", True)),
            )
            for row in rows
            if row.get("ready", True)
        ]

    def mesh_client(self, source: MeshSource) -> MeshClient:
        return EmbeddedMeshClient(self.state["mesh"], source)

    def mesh_trust_anchors(self) -> list[bytes]:
        return [Path(self.state["mesh"]["root_ca"]).read_bytes()]

    def resource_quota(self, tenant: str) -> QuotaStatus | None:
        status = self._live().mesh.ledger.status(tenant)
        return None if status is None else QuotaStatus(tenant, *status)

    def scale_model(self, model: Model, replicas: int, settle_s: float) -> ScaleOutcome:
        # The embedded deployer is synchronous: it returns once new replicas are ready or refused.
        outcome: ScaleOutcome = self._live().serving.set_bounds(model.tenant, model.name, replicas, replicas, settle_s)
        return outcome

    def restore_model(self, model: Model, settle_s: float) -> None:
        self._live().serving.restore(model.tenant, model.name, settle_s)

    # -- serving -------------------------------------------------------------------------------------
    def autoscaling(self, model: Model) -> AutoscalingSettings:
        settings: AutoscalingSettings = self._live().serving.settings(model.tenant, model.name)
        return settings

    def revisions(self, model: Model) -> list[RevisionStatus]:
        found: list[RevisionStatus] = self._live().serving.revision_status(model.tenant, model.name)
        return found

    def replica_timings(self, model: Model, since: float) -> list[ReplicaTiming]:
        found: list[ReplicaTiming] = self._live().serving.timings(model.tenant, model.name, since)
        return found

    def served_requests(self, model: Model) -> dict[str, int]:
        counts: dict[str, int] = self._live().serving.served(model.tenant, model.name)
        return counts

    def set_scale_bounds(
        self, model: Model, min_replicas: int | None, max_replicas: int | None, settle_s: float
    ) -> ScaleOutcome:
        outcome: ScaleOutcome = self._live().serving.set_bounds(
            model.tenant, model.name, min_replicas, max_replicas, settle_s
        )
        return outcome

    def promote_canary(self, model: Model, settle_s: float) -> None:
        self._live().serving.promote(model.tenant, model.name, settle_s)

    def _current_state(self) -> dict[str, Any]:
        """The platform's state with its current replicas (they come and go: scale to zero)."""
        live = self._control()
        return self.state if live is None else {**self.state, "components": live.component_status()}

    def pause_replica(self, model: Model, seconds: float, replica: int = 0) -> ReplicaPause:
        from inferbox.embedded.pause import pause_replica

        return pause_replica(self._current_state(), model, seconds, replica)

    @contextmanager
    def load_client(self, name: str, tenant: str | None = None) -> Iterator[LoadClientPlace]:
        from inferbox.embedded.loadclient import load_client

        # A client calling replicas directly bypasses the gateway, whose counters the autoscaler
        # reads: the tenant's models keep a replica while it runs (and their bounds come back after).
        held = [m for m in self.topology.models if m.tenant == tenant] if self._control() is not None else []
        for model in held:
            self.set_scale_bounds(model, 1, None, HOLD_SETTLE_S)
        try:
            with load_client(self._current_state(), tenant) as place:
                yield place
        finally:
            for model in held:
                self.restore_model(model, HOLD_SETTLE_S)

    def close(self) -> None:
        for client in self._clients:
            client.close()
