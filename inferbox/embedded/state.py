"""What another process needs to use a running embedded platform, as typed records.

``state.json`` in the platform's state folder holds a ``PlatformState``; the control channel answers
with ``ComponentStatus`` and ``WorkloadRow`` records. They are plain dataclasses; pydantic checks
them on the way in, so a state file of another inferbox version fails with a clear message rather
than a ``KeyError`` somewhere later.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from inferbox.errors import PlatformError
from inferbox.mesh import Workload


@dataclass(frozen=True)
class ComponentStatus:
    """One process of the platform (a model replica, its sidecar, the gateway, Prometheus...)."""

    alive: bool
    pid: int
    start_time: float  # when ``pid`` started: a reused PID is never mistaken for it
    log: str
    ready: bool | None = None  # replicas: ready to serve
    pod_ip: str | None = None
    port: int | None = None  # replicas: the pod's service port
    workload: str | None = None  # replicas: "<namespace>.<name>" of their workload


@dataclass(frozen=True)
class WorkloadRow:
    """A model replica as mesh clients address it (the contract's ``Workload``), and whether it is ready."""

    namespace: str
    name: str
    model: str
    service_account: str
    address: str
    ports: tuple[tuple[str, int], ...]
    labels: dict[str, str]
    sidecar: bool
    ready: bool

    def workload(self) -> Workload:
        return Workload(
            namespace=self.namespace,
            name=self.name,
            model=self.model,
            service_account=self.service_account,
            address=self.address,
            ports=self.ports,
            labels=dict(self.labels),
            sidecar=self.sidecar,
        )


@dataclass(frozen=True)
class PodAddress:
    ip: str
    netns: str | None
    port: int


@dataclass(frozen=True)
class ProbeState:
    """A probe pod of the suite: a place in the mesh to call workloads from, with its identity."""

    namespace: str
    labels: dict[str, str]
    ip: str
    netns_path: str | None
    identity: str | None  # SPIFFE ID; None outside the mesh
    cert: str | None
    key: str | None


@dataclass(frozen=True)
class MeshState:
    trust_domain: str
    root_ca: str
    trust_bundle: str
    foreign_ca_dir: str
    network_policy: bool  # NetworkPolicies are enforced (nftables in pod namespaces)
    probes: dict[str, ProbeState]  # by tenant name, "gateway" and "outside"


@dataclass(frozen=True)
class TelemetryState:
    prometheus_url: str | None = None
    jaeger_query_url: str | None = None
    scrape_interval_s: float = 1.0
    trace_export_interval_s: float = 1.0
    gateway_trace_service: str | None = None
    gateway_sampling_percent: float | None = None


@dataclass(frozen=True)
class PlatformState:
    instance: str
    owner_pid: int
    owner_start_time: float
    manifests_dir: str
    state_dir: str
    log_dir: str
    gateway_url: str
    admin_url: str
    gateway_pod: PodAddress
    network: str  # "netns" or "loopback"
    key_dir: str
    credentials: str
    ready_after_s: float
    components: dict[str, ComponentStatus] = field(default_factory=dict)
    mesh: MeshState | None = None
    workloads: tuple[WorkloadRow, ...] = ()
    observability: TelemetryState = field(default_factory=TelemetryState)
    ai_gateway_url: str | None = None  # the AI Gateway's listener, when the manifests have AIGatewayRoutes

    @property
    def netns_prefix(self) -> str:
        """The prefix of every network namespace this platform created."""
        return f"ib-{self.instance}-"


T = TypeVar("T")


def parse(kind: type[T], data: Any, source: str) -> T:
    """``data`` (decoded JSON) as ``kind``, or a PlatformError naming ``source``."""
    try:
        return TypeAdapter(kind).validate_python(data)
    except ValidationError as exc:
        raise PlatformError(
            f"{source} is not a state of this inferbox version: {exc.errors()[0]['msg']} at "
            f"{'.'.join(map(str, exc.errors()[0]['loc']))}",
            "stop that platform with the inferbox that started it, or remove the state folder",
        ) from exc


def to_json(value: Any) -> Any:
    """Dataclass records (also inside lists and dicts) as JSON-ready data."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def write_state(path: Path, state: PlatformState) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def read_state(path: Path) -> PlatformState:
    return parse(PlatformState, json.loads(path.read_text()), str(path))
