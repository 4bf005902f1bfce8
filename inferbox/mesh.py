"""The mesh part of the platform contract: workloads, callers inside and outside the mesh, probe
results, quotas. Target-agnostic: the embedded target and the Kind target both implement it.

A probe is one request from a *source* (a tenant's workload, the gateway's hop into tenants, or a
pod outside the mesh) straight to a *workload's* port, bypassing the gateway. Its result says how
far it got: no connection at all (network policy), a refused handshake or plaintext (mutual TLS),
a 401 or 403 from the workload's sidecar (token or authorization policy), or an answer from the
application behind the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

# Envoy's answers when its filters refuse a request (the sidecar is Envoy on both targets).
RBAC_DENIED_BODY = "RBAC: access denied"
JWT_FAILURE_BODIES = ("Jwt ", "Jwks ", "Audiences in Jwt")


class SourceKind(StrEnum):
    TENANT = "tenant"  # a workload in a tenant namespace, with that namespace's mesh identity
    GATEWAY = "gateway"  # the gateway's hop into tenant pods, with its mesh identity
    OUTSIDE = "outside"  # a pod in a namespace without sidecar injection: no mesh identity


@dataclass(frozen=True)
class MeshSource:
    kind: SourceKind
    tenant: str | None = None

    @classmethod
    def in_tenant(cls, tenant: str) -> MeshSource:
        return cls(SourceKind.TENANT, tenant)

    @classmethod
    def gateway(cls) -> MeshSource:
        return cls(SourceKind.GATEWAY)

    @classmethod
    def outside(cls) -> MeshSource:
        return cls(SourceKind.OUTSIDE)

    @property
    def label(self) -> str:
        if self.kind is SourceKind.TENANT:
            return str(self.tenant)
        return "gateway" if self.kind is SourceKind.GATEWAY else "outside-mesh"

    def caller_kind(self, destination_tenant: str) -> str:
        """The profile's name for this caller as seen by a workload of ``destination_tenant``."""
        if self.kind is SourceKind.GATEWAY:
            return "gateway"
        if self.kind is SourceKind.OUTSIDE:
            return "outsideMesh"
        return "ownTenant" if self.tenant == destination_tenant else "otherTenant"


@dataclass(frozen=True)
class Workload:
    """One pod serving a model, as mesh clients address it."""

    namespace: str
    name: str  # the pod (replica) name
    model: str | None  # the InferenceService it serves
    service_account: str
    address: str  # where a client in the mesh sends (pod address or private service name)
    ports: tuple[tuple[str, int], ...]  # (name, number) of the ports the workload serves
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    sidecar: bool = True  # whether a mesh sidecar fronts it (Istio injection)

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.model or self.name}"


@dataclass(frozen=True)
class SourcePlace:
    """What policies can know about a source: its namespace, pod labels and mesh identity."""

    namespace: str
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    identity: str | None = None  # the SPIFFE ID it presents; None outside the mesh


class Transport(StrEnum):
    # As the mesh sends it: mutual TLS with the source's identity to a workload with a sidecar;
    # plaintext to one without (Istio's auto mTLS), and always plaintext from outside the mesh.
    MESH = "mesh"
    PLAINTEXT = "plaintext"  # plain HTTP, whatever the source
    FOREIGN_CA = "foreign-ca"  # TLS with a client certificate from a CA the platform does not know


class Outcome(StrEnum):
    ANSWERED = "answered"  # the application behind the sidecar answered
    NETWORK_DENIED = "network-denied"  # no connection: refused or timed out (network policy)
    TRANSPORT_REFUSED = "transport-refused"  # connected, but the handshake or the plaintext request failed
    AUTHN_DENIED = "authn-denied"  # 401 from the sidecar's token verification
    AUTHZ_DENIED = "authz-denied"  # 403 from the sidecar's authorization policy
    ERROR = "error"  # anything else (a 5xx, an unexpected reply): never counted as a denial


@dataclass(frozen=True)
class ProbeResult:
    outcome: Outcome
    status: int | None = None
    body: str = ""
    detail: str = ""

    @property
    def connected(self) -> bool:
        return self.outcome not in (Outcome.NETWORK_DENIED, Outcome.ERROR)

    @property
    def answered(self) -> bool:
        return self.outcome is Outcome.ANSWERED and self.status == 200

    def describe(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.outcome}{status}{extra}: {self.body[:100]!r}"


def classify_http(status: int, body: str, headers: dict[str, str]) -> Outcome:
    """Who answered an HTTP response received straight from a workload's sidecar."""
    if status == 403 and body.startswith(RBAC_DENIED_BODY):
        return Outcome.AUTHZ_DENIED
    # Envoy's jwt_authn answers 401, and 403 for a token of another audience.
    if status in (401, 403) and body.startswith(JWT_FAILURE_BODIES):
        return Outcome.AUTHN_DENIED
    if "application/json" in headers.get("content-type", "") and status < 500:
        return Outcome.ANSWERED
    return Outcome.ERROR


class MeshClient(Protocol):
    """Sends requests from one source's network place, with its identity, straight to workloads."""

    source: MeshSource
    place: SourcePlace

    def request(
        self,
        workload: Workload,
        port: int,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        transport: Transport = Transport.MESH,
    ) -> ProbeResult: ...

    def peer_certificates(self, workload: Workload, port: int) -> list[bytes]:
        """The DER certificate chain the workload presents on ``port`` (leaf first)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class QuotaStatus:
    """A tenant namespace's ResourceQuota as the platform enforces it (hard limits and usage)."""

    namespace: str
    hard: dict[str, str]
    used: dict[str, str]

    @property
    def pods(self) -> int | None:
        return int(self.hard["pods"]) if "pods" in self.hard else None

    @property
    def pods_used(self) -> int:
        return int(self.used.get("pods", "0"))


@dataclass(frozen=True)
class ScaleOutcome:
    """What a request to run a model at ``requested`` replicas led to."""

    requested: int
    running: int  # replicas that exist (ready or starting) once the platform settled
    refusals: tuple[str, ...]  # events or log lines in which the platform refused a replica
