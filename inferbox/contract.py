"""The platform contract: the one typed interface every suite uses, whatever the target.

Suites never import a target. They receive a ``Platform`` (the ``platform`` session fixture) and
use only what is declared here: what exists (tenants, models, routes, read from the manifests), the
promises (the conformance profile), the gateway, tokens (real ones from the token endpoint and
crafted ones signed with the platform's key), clients, component health, logs and capabilities.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from inferbox.client import GatewayClient
from inferbox.jwtserver.clients import Credentials
from inferbox.jwtserver.keystore import SigningKey
from inferbox.mesh import MeshClient, MeshSource, QuotaStatus, ScaleOutcome, Workload
from inferbox.profile import ConformanceProfile
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus
from inferbox.tokens import TokenForge
from inferbox.topology import Model, Topology


class Feature(StrEnum):
    """Platform features a check exercises (recorded in the report, like Gateway API's features)."""

    TOKEN_ENDPOINT = "token-endpoint"  # noqa: S105 - a feature name, not a secret
    JWT_AUTHENTICATION = "jwt-authentication"
    TENANT_AUTHORIZATION = "tenant-authorization"
    IDENTITY_HEADERS = "identity-headers"
    RATE_LIMIT = "rate-limit"
    SERVING_V1 = "serving-v1"
    SERVING_V2 = "serving-v2"
    MODEL_METADATA = "model-metadata"
    MESH_MTLS = "mesh-mtls"
    MESH_AUTHORIZATION = "mesh-authorization"
    NETWORK_ISOLATION = "network-isolation"
    RESOURCE_QUOTA = "resource-quota"
    SCALE_TO_ZERO = "scale-to-zero"
    COLD_START = "cold-start"
    AUTOSCALING = "autoscaling"
    CANARY = "canary"
    METRICS = "metrics"
    TRACING = "tracing"
    DASHBOARDS = "dashboards"


class Capability(StrEnum):
    """What a target can do for the suite. A check needing a missing one is skipped, naming it."""

    # The suite can sign tokens with the platform's own key (to craft expired, wrong-audience... tokens).
    TOKEN_SIGNING_KEY = "token-signing-key"  # noqa: S105 - a capability name, not a secret
    # The platform's workloads live in separate network places (network namespaces or pods).
    WORKLOAD_NETWORK = "workload-network"
    # Mesh clients with a tenant's identity, the gateway's, or none, calling workloads directly;
    # workloads behind sidecars that enforce mTLS and Istio policies.
    MESH_PROBES = "mesh-probes"
    # NetworkPolicies are enforced between the network places of workloads.
    NETWORK_POLICY = "network-policy"
    # The deployer and autoscaler honour ResourceQuotas, and replica counts can be requested.
    RESOURCE_QUOTA = "resource-quota"
    # Revisions and their replica counts can be read and their replica bounds and canary promotion
    # changed (and restored); replicas' start and ready times are known (cold-start breakdowns).
    AUTOSCALING = "autoscaling"
    # Chaos: a model replica's processes can be stopped for a bounded time (a backend stall); see PausesReplicas.
    PAUSE_REPLICA = "pause-replica"
    # A load generator can be placed beside the workloads and reach model replicas directly, bypassing
    # the gateway (to measure the gateway's overhead); see PlacesLoadClients.
    DIRECT_MODEL_ACCESS = "direct-model-access"
    # Prometheus scrapes the platform (Platform.observability().prometheus_url and the catalogue).
    METRICS = "metrics"
    # A trace store answers Jaeger's query API (Platform.observability().jaeger_query_url).
    TRACES = "traces"
    # Grafana serves the platform's dashboards (Platform.observability().grafana_url).
    GRAFANA = "grafana"
    # Kiali draws the mesh's traffic graph (Platform.observability().kiali_url).
    MESH_GRAPH = "mesh-graph"


class Signal(StrEnum):
    """What the observability checks read from Prometheus; each target maps every signal to PromQL.

    Placeholders in the PromQL templates: ``{tenant}``, ``{model}``, ``{code}`` (a regex of HTTP
    status codes), ``{window}`` (a PromQL duration), ``{window_s}`` (seconds) and ``{q}`` (a quantile).
    """

    # Requests of one tenant's model answered through the gateway, by response code (a counter).
    REQUESTS = "requests"
    # Samples in the gateway's latency histogram for one tenant's model (a counter: the _count).
    REQUEST_LATENCY_COUNT = "request-latency-count"
    # A latency quantile of the same histogram, in seconds, over {window}.
    REQUEST_LATENCY_QUANTILE = "request-latency-quantile"
    # Tokens the gateway accepted / refused (401), for every route.
    JWT_ALLOWED = "jwt-allowed"
    JWT_DENIED = "jwt-denied"
    # Requests the gateway refused by authorization (403), for every route.
    AUTHZ_DENIED = "authz-denied"
    # Requests the gateway answered itself with a 4xx (401, 403, 429, 404 ...), for every route.
    GATEWAY_4XX = "gateway-4xx"
    # Requests refused with 429 by the gateway's rate limiter, for every route.
    RATE_LIMITED = "rate-limited"
    # Ready replicas of one tenant's model.
    REPLICAS = "replicas"
    # Replicas of one tenant's model that started within {window_s} seconds (cold starts and restarts).
    COLD_STARTS = "cold-starts"
    # Samples in the model server's inference (predict) latency histogram (a counter: the _count).
    MODEL_LATENCY_COUNT = "model-latency-count"
    # A quantile of the model server's predict latency, in seconds, over {window}.
    MODEL_LATENCY_QUANTILE = "model-latency-quantile"


_PLACEHOLDER = re.compile(r"\{(tenant|model|code|window|window_s|q)\}")


@dataclass(frozen=True)
class MetricCatalogue:
    """PromQL per signal on one target, plus how to find each of the platform's scrape targets."""

    target: str
    queries: Mapping[Signal, str]
    # Selectors of ``up`` series: the gateway, the token issuer, and one per model ({tenant}, {model}).
    gateway_target: str
    issuer_target: str
    model_target: str

    def query(self, signal: Signal, **params: object) -> str:
        template = self.queries.get(signal)
        if template is None:
            raise KeyError(f"the {self.target} catalogue has no PromQL for signal {signal}")
        return _fill(template, params, signal)

    def model_up(self, tenant: str, model: str) -> str:
        return _fill(self.model_target, {"tenant": tenant, "model": model}, "model scrape target")


def _fill(template: str, params: Mapping[str, object], what: object) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"PromQL for {what} needs the parameter {name}")
        return str(params[name])

    return _PLACEHOLDER.sub(sub, template)


@dataclass(frozen=True)
class TraceNaming:
    """How the platform's spans are named in the trace store."""

    gateway_service: str
    # Regex of the service name of a model's spans, with {tenant} and {model} placeholders.
    model_service: str
    # The gateway span tag carrying the verified tenant.
    tenant_tag: str = "tenant"

    def model_service_pattern(self, tenant: str, model: str) -> re.Pattern[str]:
        return re.compile(_fill(self.model_service, {"tenant": re.escape(tenant), "model": re.escape(model)}, "trace"))


# Prometheus's scrape manager applies changed target sets at most this often (seconds).
PROMETHEUS_TARGET_UPDATE_S = 5.0


@dataclass(frozen=True)
class Observability:
    """Where the platform's telemetry can be read, and how it is named."""

    prometheus_url: str
    catalogue: MetricCatalogue
    # Longest interval between two scrapes of any target, and between two span exports.
    scrape_interval_s: float
    trace_export_interval_s: float
    jaeger_query_url: str | None = None
    traces: TraceNaming | None = None
    grafana_url: str | None = None
    grafana_auth: tuple[str, str] | None = None
    kiali_url: str | None = None
    # Kiali: namespaces to graph, and regexes of the gateway-side and model-side workload names.
    mesh_graph: Mapping[str, str] = field(default_factory=dict)

    def metrics_deadline_s(self) -> float:
        """How long a fact may take to reach Prometheus: a measurement is exported at the next
        scrape, and histograms may wait one more; three intervals, plus Prometheus's period for
        applying new targets (a replica that just started may already serve before it is scraped),
        plus a margin for a busy machine."""
        return 3 * self.scrape_interval_s + PROMETHEUS_TARGET_UPDATE_S + 5.0

    def traces_deadline_s(self) -> float:
        """Spans are batched by each emitter and exported every interval; two emitters in a row."""
        return 3 * self.trace_export_interval_s + 5.0


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    healthy: bool
    detail: str = ""


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

    # -- the mesh (needs Capability.MESH_PROBES) --------------------------------------------------
    def workloads(self) -> list[Workload]:
        """Every pod serving a model, as mesh clients address it."""

    def mesh_client(self, source: MeshSource) -> MeshClient:
        """A client in ``source``'s network place with its identity (none outside the mesh)."""

    def mesh_trust_anchors(self) -> list[bytes]:
        """PEM root certificates of the platform CA that issues workload identities."""

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
        """Asks the platform to run ``model`` at ``replicas`` replicas; returns once settled."""

    # -- telemetry (needs Capability.METRICS) ---------------------------------------------------
    def observability(self) -> Observability:
        """Prometheus, the trace store, Grafana and Kiali endpoints and the metric catalogue
        (needs Capability.METRICS)."""


@dataclass(frozen=True)
class ReplicaPause:
    """A finished stall of one model replica. Times are ``time.monotonic()`` of this machine."""

    model: str
    tenant: str
    replica: str
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@runtime_checkable
class PausesReplicas(Protocol):
    """Chaos action of targets with Capability.PAUSE_REPLICA."""

    def pause_replica(self, model: Model, seconds: float, replica: int = 0) -> ReplicaPause:
        """Stops the replica's processes for ``seconds`` (bounded), then resumes them; returns when resumed."""


@dataclass(frozen=True)
class LoadClientPlace:
    """Where a load generator runs and how it reaches the platform from there."""

    command_prefix: tuple[str, ...]  # prepended to a command to start it there (empty: this machine)
    gateway_url: str  # the gateway as reached from there (requests carry the Host header)
    # "<tenant>/<model>" -> base URLs of its ready replicas, reached directly (DIRECT_MODEL_ACCESS only)
    replica_urls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # (certificate, key, CA bundle) files of the mesh identity presented to replicas' sidecars, if any
    replica_tls: tuple[str, str, str] | None = None


@runtime_checkable
class PlacesLoadClients(Protocol):
    """Targets that place load generators next to the workloads (Capability.DIRECT_MODEL_ACCESS)."""

    def load_client(self, name: str, tenant: str | None = None) -> AbstractContextManager[LoadClientPlace]:
        """A place for a load generator, removed when the context ends; with ``tenant``, one that calls
        that tenant's replicas directly as a workload of the tenant would (its mesh identity)."""
