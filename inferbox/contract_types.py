"""The value types of the platform contract: what suites and targets exchange.

Suites, targets and the JWT server all import these; this module imports no target and no server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inferbox.errors import InferboxError


class Feature(StrEnum):
    """Platform features a check exercises (recorded in the report, like Gateway API's features)."""

    TOKEN_ENDPOINT = "token-endpoint"  # noqa: S105 - a feature name, not a secret
    JWT_AUTHENTICATION = "jwt-authentication"
    TENANT_AUTHORIZATION = "tenant-authorization"
    REQUEST_LIMITS = "request-limits"  # the gateway's own refusals: body size, paths leaving a route
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
    AI_GATEWAY = "ai-gateway"
    TOKEN_BUDGET = "token-budget"  # noqa: S105 - a feature name, not a secret


class Capability(StrEnum):
    """What a target can do for the suite. A check needing a missing one is skipped, naming it."""

    # The suite can sign tokens with the platform's own key (to craft expired, wrong-audience... tokens).
    TOKEN_SIGNING_KEY = "token-signing-key"  # noqa: S105 - a capability name, not a secret
    # The platform's workloads live in separate network places (network namespaces or pods).
    WORKLOAD_NETWORK = "workload-network"
    # Mesh clients with a tenant's identity, the gateway's, or none, calling workloads directly;
    # workloads behind sidecars that enforce mTLS and Istio policies.
    MESH_PROBES = "mesh-probes"
    # A mesh client in one place presenting another workload's identity, issued by the platform's
    # CA (what a stolen or mis-issued certificate gives an intruder), to prove mesh authorization alone.
    BORROWED_MESH_IDENTITY = "borrowed-mesh-identity"
    # NetworkPolicies are enforced between the network places of workloads.
    NETWORK_POLICY = "network-policy"
    # The deployer and autoscaler honour ResourceQuotas, and replica counts can be requested.
    RESOURCE_QUOTA = "resource-quota"
    # Revisions and their replica counts can be read and their replica bounds and canary promotion
    # changed (and restored); replicas' start and ready times are known (cold-start breakdowns).
    AUTOSCALING = "autoscaling"
    # Chaos: a model replica's processes can be stopped for a bounded time (a backend stall):
    # Platform.pause_replica.
    PAUSE_REPLICA = "pause-replica"
    # A load generator can be placed beside the workloads and reach model replicas directly, bypassing
    # the gateway (to measure the gateway's overhead): Platform.load_client.
    DIRECT_MODEL_ACCESS = "direct-model-access"
    # Load workers can run inside the cluster as a Job, reporting to a master on this machine:
    # Platform.in_cluster_load.
    IN_CLUSTER_LOAD = "in-cluster-load"
    # After a failed check the target can save what a person needs to see why (events, pod status,
    # logs): Platform.dump_evidence.
    FAILURE_EVIDENCE = "failure-evidence"
    # Prometheus scrapes the platform (Platform.observability().prometheus_url and the catalogue).
    METRICS = "metrics"
    # A trace store answers Jaeger's query API (Platform.observability().jaeger_query_url).
    TRACES = "traces"
    # Grafana serves the platform's dashboards (Platform.observability().grafana_url).
    GRAFANA = "grafana"
    # Kiali draws the mesh's traffic graph (Platform.observability().kiali_url).
    MESH_GRAPH = "mesh-graph"
    # The manifests' AI Gateway (Envoy AI Gateway's OpenAI entry point) is reachable:
    # Platform.ai_gateway_url.
    AI_GATEWAY = "ai-gateway"
    # Chaos: a model replica is killed at once (SIGKILL / pod delete with grace 0) and the platform
    # replaces it: Platform.kill_replica.
    KILL_REPLICA = "kill-replica"
    # Chaos: the gateway's proxy is killed and the platform restarts it (a supervisor's restart
    # policy / the Deployment): Platform.kill_gateway.
    KILL_GATEWAY = "kill-gateway"
    # Chaos: a platform component (the token issuer, the telemetry stack) is stopped for a bounded
    # time and started again: Platform.stop_component.
    STOP_COMPONENT = "stop-component"
    # Chaos: the gateway is cut off from one tenant's pods for a bounded time: Platform.partition.
    PARTITION = "partition"
    # Chaos: the issuer's signing keys are rotated in stages (publish, activate, retire):
    # Platform.stage_signing_key / activate_signing_key / retire_signing_key.
    KEY_ROTATION = "key-rotation"
    # Requests can be kept in flight at a model's revisions by a workload of the model's own tenant
    # inside the mesh, their bodies uploaded slowly (load Knative counts, which the gateway's request
    # buffering would hold back): Platform.hold_requests.
    HELD_LOAD = "held-load"


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


@dataclass(frozen=True)
class Credentials:
    """A tenant client's id and plaintext secret for the token endpoint, as handed to that tenant."""

    client_id: str
    client_secret: str
    tenant: str


@dataclass(frozen=True)
class SigningKey:
    """One of the platform issuer's signing keys: its key id and RSA private key."""

    kid: str
    key: rsa.RSAPrivateKey

    @property
    def pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


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


class FaultKind(StrEnum):
    """The faults chaos experiments inject through the contract."""

    REPLICA_KILL = "replica-kill"
    REPLICA_PAUSE = "replica-pause"
    GATEWAY_KILL = "gateway-kill"
    COMPONENT_STOP = "component-stop"
    PARTITION = "partition"


# Components Platform.stop_component knows: the token issuer, and the telemetry stack (metrics and
# the trace store together).
STOPPABLE_COMPONENTS = ("token-issuer", "telemetry")


@dataclass(frozen=True)
class Fault:
    """A fault the platform injected. Times are wall-clock (``time.time()``). ``bound_s``: the
    platform rolls it back by itself at ``started + bound_s`` at the latest, whoever asked for it
    (0: nothing to roll back, e.g. a killed replica the platform replaces itself)."""

    id: str
    kind: str  # a FaultKind value
    target: str  # what it hit: "<tenant>/<model> replica <name>", "gateway", a component, a tenant
    started: float
    bound_s: float
    healed: float | None = None  # when it was rolled back (None: still in force, or nothing to undo)
    detail: str = ""

    @property
    def active(self) -> bool:
        return self.bound_s > 0 and self.healed is None


@dataclass(frozen=True)
class LoadClientPlace:
    """Where a load generator runs and how it reaches the platform from there."""

    command_prefix: tuple[str, ...]  # prepended to a command to start it there (empty: this machine)
    gateway_url: str  # the gateway as reached from there (requests carry the Host header)
    # "<tenant>/<model>" -> base URLs of its ready replicas, reached directly (DIRECT_MODEL_ACCESS only)
    replica_urls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # (certificate, key, CA bundle) files of the mesh identity presented to replicas' sidecars, if any
    replica_tls: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class InClusterLoadPlace:
    """How load workers run inside a cluster (Capability.IN_CLUSTER_LOAD)."""

    gateway_url: str  # the gateway as pods reach it
    kube_context: str | None  # the kubectl context of the cluster ("" or None: the current one)
    default_master_host: str | None  # this machine's address as pods reach it, when the target knows it


class MissingCapability(InferboxError):
    """A target was asked for something it cannot do; checks declare the capability and are skipped."""

    def __init__(self, target: str, capability: Capability) -> None:
        super().__init__(
            f"the {target} target does not have the capability {capability.value}",
            "run the check on a target that has it, or mark the check with @pytest.mark.capability",
        )
        self.capability = capability
