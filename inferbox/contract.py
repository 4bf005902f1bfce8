"""The platform contract: the one typed interface every suite uses, whatever the target.

Suites never import a target. They receive a ``Platform`` (the ``platform`` session fixture) and
use only what is declared here: what exists (tenants, models, routes, read from the manifests), the
promises (the conformance profile), the gateway, tokens (real ones from the token endpoint and
crafted ones signed with the platform's key), clients, component health, logs and capabilities.

Optional abilities are capabilities, and only capabilities: a method that needs one says so, and a
target without it inherits ``PlatformBase``'s version, which raises ``MissingCapability``. Checks
declare what they need with ``@pytest.mark.capability(...)`` and are skipped, naming it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from inferbox.client import GatewayClient
from inferbox.contract_types import (
    PROMETHEUS_TARGET_UPDATE_S,
    STOPPABLE_COMPONENTS,
    Capability,
    ComponentHealth,
    Credentials,
    Fault,
    FaultKind,
    Feature,
    InClusterLoadPlace,
    LoadClientPlace,
    MetricCatalogue,
    MissingCapability,
    Observability,
    ReplicaPause,
    Signal,
    SigningKey,
    TraceNaming,
)
from inferbox.held_load import HeldLoad
from inferbox.mesh import MeshClient, MeshSource, QuotaStatus, ScaleOutcome, Workload
from inferbox.profile import ConformanceProfile
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus
from inferbox.tokens import TokenForge
from inferbox.topology import Model, Topology

__all__ = [
    "PROMETHEUS_TARGET_UPDATE_S",
    "STOPPABLE_COMPONENTS",
    "Capability",
    "ComponentHealth",
    "Credentials",
    "Fault",
    "FaultKind",
    "Feature",
    "HeldLoad",
    "InClusterLoadPlace",
    "LoadClientPlace",
    "MetricCatalogue",
    "MissingCapability",
    "Observability",
    "Platform",
    "PlatformBase",
    "ReplicaPause",
    "Signal",
    "SigningKey",
    "TraceNaming",
]


@runtime_checkable
class Platform(Protocol):
    """A running Inference-in-a-Box platform, as the suites see it."""

    @property
    def target(self) -> str:
        """embedded, kind or existing."""

    @property
    def profile(self) -> ConformanceProfile:
        """The promises the platform is checked against."""

    @property
    def topology(self) -> Topology:
        """Tenants, models and routes, read from the manifests."""

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway as this machine reaches it (requests carry the Host header)."""

    @property
    def policy_convergence_s(self) -> float:
        """How long the manifests' mesh and network policies may take to be enforced at every ready
        workload; checks of that enforcement retry this long before a difference is a failure."""

    def gateway(self) -> GatewayClient:
        """A client that calls models and the token endpoint through the gateway."""

    def credentials(self, tenant: str) -> Credentials:
        """The tenant's client credentials for the token endpoint."""

    def signing_key(self) -> SigningKey:
        """The platform issuer's current signing key (needs Capability.TOKEN_SIGNING_KEY)."""

    def tokens(self) -> TokenForge:
        """Crafts valid and deliberately broken tokens with the platform's key and the profile's claims."""

    def components(self) -> list[ComponentHealth]:
        """Health of every platform component."""

    def logs(self, component: str) -> str:
        """The log of one component (names as returned by components())."""

    def versions(self) -> dict[str, str]:
        """Versions of the components actually running."""

    def ai_gateway_url(self) -> str:
        """Base URL of the AI Gateway (OpenAI's API for the generative models) as this machine reaches
        it (needs Capability.AI_GATEWAY)."""

    # -- the mesh (needs Capability.MESH_PROBES) --------------------------------------------------
    def workloads(self) -> list[Workload]:
        """Every pod serving a model, as mesh clients address it."""

    def mesh_client(self, source: MeshSource) -> MeshClient:
        """A client in ``source``'s network place with its identity (none outside the mesh)."""

    def mesh_trust_anchors(self) -> list[bytes]:
        """PEM root certificates of the platform CA that issues workload identities."""

    def mesh_client_with_identity(self, source: MeshSource, namespace: str, service_account: str) -> MeshClient:
        """A client in ``source``'s network place presenting the mesh identity of ``namespace``/
        ``service_account``, issued by the platform CA (needs Capability.BORROWED_MESH_IDENTITY)."""

    # -- quotas (needs Capability.RESOURCE_QUOTA) -------------------------------------------------
    def resource_quota(self, tenant: str) -> QuotaStatus | None:
        """The quota enforced in a tenant's namespace, or None when it has none."""

    def scale_model(self, model: Model, replicas: int, settle_s: float) -> ScaleOutcome:
        """Asks the platform to run ``model`` at ``replicas`` replicas (its bounds pinned to that, for
        every revision that receives traffic); returns once settled. ``restore_model`` undoes it."""

    # -- serving (needs Capability.AUTOSCALING) ---------------------------------------------------
    def autoscaling(self, model: Model) -> AutoscalingSettings:
        """How the platform autoscales the model's revisions, as configured on the platform."""

    def revisions(self, model: Model) -> list[RevisionStatus]:
        """The model's revisions: traffic share and replica counts right now."""

    def replica_timings(self, model: Model, since: float) -> list[ReplicaTiming]:
        """Replicas of the model requested at or after wall-clock time ``since``, oldest first."""

    def served_requests(self, model: Model) -> dict[str, int]:
        """Requests routed to each revision of the model so far (a counter; compare two readings)."""

    def set_scale_bounds(
        self, model: Model, min_replicas: int | None, max_replicas: int | None, settle_s: float
    ) -> ScaleOutcome:
        """Overrides the model's replica bounds (None keeps the declared one); returns once every
        revision that receives traffic has its replicas ready within them, or was refused."""

    def promote_canary(self, model: Model, settle_s: float) -> None:
        """Routes all of the model's traffic to its latest revision (KServe: canaryTrafficPercent
        removed); returns once the routing is in effect."""

    def restore_model(self, model: Model, settle_s: float) -> None:
        """Back to what the manifests declare for the model: autoscaling bounds and traffic split."""

    def hold_requests(
        self, model: Model, token: str, payload: Any, count: int, seconds: float, limit_s: float
    ) -> AbstractContextManager[HeldLoad]:
        """Keeps ``count`` V1 predict requests (``payload``, sent with ``token``) in flight at the
        model's revisions, sent by a workload of the model's own tenant inside the mesh (as a real
        in-cluster caller: its identity, the model's cluster-local address, the traffic split), each
        body uploaded over about ``seconds``; a request that ends is followed by the next, until the
        context ends or ``limit_s`` has passed (needs Capability.HELD_LOAD). The context's value
        collects every request's result."""

    # -- telemetry (needs Capability.METRICS) ---------------------------------------------------
    def observability(self) -> Observability:
        """Prometheus, the trace store, Grafana and Kiali endpoints and the metric catalogue
        (needs Capability.METRICS)."""

    # -- chaos (needs Capability.PAUSE_REPLICA) -------------------------------------------------
    def pause_replica(self, model: Model, seconds: float, replica: int = 0) -> ReplicaPause:
        """Stops the replica's processes for ``seconds`` (bounded), then resumes them; returns when resumed."""

    # -- chaos: bounded faults, each rolled back by the platform at its bound at the latest ------------
    def kill_replica(self, model: Model, replica: int = 0, starting: bool = False) -> Fault:
        """Kills one ready replica at once (needs Capability.KILL_REPLICA); the platform replaces it.
        With ``starting``, the replica being started (waiting, bounded, for one to start)."""

    def stall_replica(self, model: Model, seconds: float, replica: int = 0) -> Fault:
        """Freezes one ready replica for ``seconds`` and returns at once (needs Capability.PAUSE_REPLICA);
        it resumes at the bound or on ``heal``."""

    def kill_gateway(self) -> Fault:
        """Kills the gateway's proxy at once (needs Capability.KILL_GATEWAY); the platform restarts it."""

    def stop_component(self, component: str, seconds: float) -> Fault:
        """Stops a platform component (one of STOPPABLE_COMPONENTS) for ``seconds`` (needs
        Capability.STOP_COMPONENT); it starts again at the bound or on ``heal``."""

    def partition(self, tenant: str, seconds: float) -> Fault:
        """Cuts the gateway off from the tenant's pods for ``seconds`` (needs Capability.PARTITION)."""

    def heal(self, fault: Fault) -> Fault:
        """Rolls a fault back now (idempotent); returns it with its ``healed`` time."""

    def faults(self) -> list[Fault]:
        """Faults injected on this platform that are still in force (to roll back after a crash)."""

    def stage_signing_key(self) -> str:
        """Publishes a new signing key that does not sign yet; returns its key id (Capability.KEY_ROTATION)."""

    def activate_signing_key(self) -> str:
        """The staged key signs from now on; the previous one is retired (still published for its grace)."""

    def retire_signing_key(self, kid: str) -> None:
        """Ends a retired key's grace period now: it leaves the published keys."""

    # -- load (needs Capability.DIRECT_MODEL_ACCESS / IN_CLUSTER_LOAD) --------------------------
    def load_client(self, name: str, tenant: str | None = None) -> AbstractContextManager[LoadClientPlace]:
        """A place for a load generator, removed when the context ends; with ``tenant``, one that calls
        that tenant's replicas directly as a workload of the tenant would (its mesh identity)."""

    def in_cluster_load(self) -> InClusterLoadPlace:
        """How load workers run as a Job inside the cluster."""

    # -- evidence (needs Capability.FAILURE_EVIDENCE) -------------------------------------------
    def dump_evidence(self, dest: Path) -> Path:
        """Saves events, pod status and logs that explain a failed check into ``dest``; returns where."""

    def close(self) -> None:
        """Releases clients the platform handed out (the session ends)."""


class PlatformBase:
    """Optional abilities a target does not have: each raises ``MissingCapability``.

    Targets inherit this and override what their capabilities promise.
    """

    target: str
    # On a cluster istiod pushes policies to the sidecars and the CNI programs the network rules.
    policy_convergence_s: float = 10.0

    def _missing(self, capability: Capability) -> MissingCapability:
        return MissingCapability(self.target, capability)

    def signing_key(self) -> SigningKey:
        raise self._missing(Capability.TOKEN_SIGNING_KEY)

    def ai_gateway_url(self) -> str:
        raise self._missing(Capability.AI_GATEWAY)

    def workloads(self) -> list[Workload]:
        raise self._missing(Capability.MESH_PROBES)

    def mesh_client(self, source: MeshSource) -> MeshClient:
        raise self._missing(Capability.MESH_PROBES)

    def mesh_trust_anchors(self) -> list[bytes]:
        raise self._missing(Capability.MESH_PROBES)

    def mesh_client_with_identity(self, source: MeshSource, namespace: str, service_account: str) -> MeshClient:
        raise self._missing(Capability.BORROWED_MESH_IDENTITY)

    def resource_quota(self, tenant: str) -> QuotaStatus | None:
        raise self._missing(Capability.RESOURCE_QUOTA)

    def scale_model(self, model: Model, replicas: int, settle_s: float) -> ScaleOutcome:
        raise self._missing(Capability.RESOURCE_QUOTA)

    def autoscaling(self, model: Model) -> AutoscalingSettings:
        raise self._missing(Capability.AUTOSCALING)

    def revisions(self, model: Model) -> list[RevisionStatus]:
        raise self._missing(Capability.AUTOSCALING)

    def replica_timings(self, model: Model, since: float) -> list[ReplicaTiming]:
        raise self._missing(Capability.AUTOSCALING)

    def served_requests(self, model: Model) -> dict[str, int]:
        raise self._missing(Capability.AUTOSCALING)

    def set_scale_bounds(
        self, model: Model, min_replicas: int | None, max_replicas: int | None, settle_s: float
    ) -> ScaleOutcome:
        raise self._missing(Capability.AUTOSCALING)

    def promote_canary(self, model: Model, settle_s: float) -> None:
        raise self._missing(Capability.AUTOSCALING)

    def restore_model(self, model: Model, settle_s: float) -> None:
        raise self._missing(Capability.AUTOSCALING)

    def hold_requests(
        self, model: Model, token: str, payload: Any, count: int, seconds: float, limit_s: float
    ) -> AbstractContextManager[HeldLoad]:
        raise self._missing(Capability.HELD_LOAD)

    def observability(self) -> Observability:
        raise self._missing(Capability.METRICS)

    def pause_replica(self, model: Model, seconds: float, replica: int = 0) -> ReplicaPause:
        raise self._missing(Capability.PAUSE_REPLICA)

    def kill_replica(self, model: Model, replica: int = 0, starting: bool = False) -> Fault:
        raise self._missing(Capability.KILL_REPLICA)

    def stall_replica(self, model: Model, seconds: float, replica: int = 0) -> Fault:
        raise self._missing(Capability.PAUSE_REPLICA)

    def kill_gateway(self) -> Fault:
        raise self._missing(Capability.KILL_GATEWAY)

    def stop_component(self, component: str, seconds: float) -> Fault:
        raise self._missing(Capability.STOP_COMPONENT)

    def partition(self, tenant: str, seconds: float) -> Fault:
        raise self._missing(Capability.PARTITION)

    def heal(self, fault: Fault) -> Fault:
        return fault  # a target that injects nothing has nothing to roll back

    def faults(self) -> list[Fault]:
        return []

    def stage_signing_key(self) -> str:
        raise self._missing(Capability.KEY_ROTATION)

    def activate_signing_key(self) -> str:
        raise self._missing(Capability.KEY_ROTATION)

    def retire_signing_key(self, kid: str) -> None:
        raise self._missing(Capability.KEY_ROTATION)

    def load_client(self, name: str, tenant: str | None = None) -> AbstractContextManager[LoadClientPlace]:
        raise self._missing(Capability.DIRECT_MODEL_ACCESS)

    def in_cluster_load(self) -> InClusterLoadPlace:
        raise self._missing(Capability.IN_CLUSTER_LOAD)

    def dump_evidence(self, dest: Path) -> Path:
        raise self._missing(Capability.FAILURE_EVIDENCE)

    def close(self) -> None:
        return None
