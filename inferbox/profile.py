"""The conformance profile: the platform's promises, read from profiles/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbox import strictyaml
from inferbox.data import data_path
from inferbox.errors import ProfileError

DEFAULT_PROFILE = data_path("profiles", "conformance.yaml")


@dataclass(frozen=True)
class AuthPromise:
    issuer: str
    audience: str
    tenant_claim: str
    algorithms: tuple[str, ...]
    max_token_lifetime_s: int
    max_clock_skew_s: int


@dataclass(frozen=True)
class IsolationPromise:
    tenants_isolated: bool
    models_only_through_gateway: bool
    identity_headers: tuple[str, ...]


@dataclass(frozen=True)
class CallerIntent:
    """Whether a kind of caller may connect to a tenant model's ports, and have its request answered."""

    connect: bool
    answered: bool


@dataclass(frozen=True)
class MeshPromise:
    trust_domain: str
    mtls: str  # the mode tenant workloads must enforce: STRICT
    callers: dict[str, CallerIntent]  # gateway, ownTenant, otherTenant, outsideMesh

    def spiffe_id(self, namespace: str, service_account: str) -> str:
        return f"spiffe://{self.trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class QuotaPromise:
    every_tenant: bool
    max_pods_per_tenant: int


@dataclass(frozen=True)
class ServingPromise:
    scale_to_zero: bool
    scale_to_zero_deadline_s: float
    cold_start_budget_s: float
    cold_start_cycles: int
    burst_requests: int
    scale_out: bool
    canary_false_failure_rate: float
    canary_requests: int


@dataclass(frozen=True)
class TokenEndpointPromise:
    """How the token endpoint holds up against abuse: a per-client issue budget and a backoff after
    failed authentications (a secret cannot be guessed at speed)."""

    max_tokens_per_client_per_minute: int
    max_failed_authentications_before_backoff: int


@dataclass(frozen=True)
class AIGatewayPromise:
    """What the OpenAI entry point of the generative models promises (Envoy AI Gateway)."""

    unknown_model_status: int  # the answer to a body naming a model no route serves
    tokens_per_tenant_per_minute: int  # the most tokens a tenant may spend in a minute


@dataclass(frozen=True)
class TokenChecksPromise:
    """What the gateway checks about a token beyond its signature, issuer and audience."""

    authorization_header_only: bool  # a token in a query parameter or a cookie is not read
    expiry_required: bool  # no exp, or exp further ahead than the maximum lifetime: refused
    future_issued_at_refused: bool  # iat further ahead than the allowed clock skew: refused


@dataclass(frozen=True)
class RequestChecksPromise:
    """What the gateway refuses about a request itself, before any model sees it."""

    max_body_bytes: int  # a larger request body is refused (413)
    paths_normalized: bool  # a path is routed as normalised: dot-segments cannot leave a route's match


@dataclass(frozen=True)
class ChaosPromise:
    """What the platform promises while a fault is in force and after it (spec.chaos)."""

    min_success_ratio: float  # valid requests answered during a fault that leaves a path open
    unaffected_success_ratio: float  # streams the fault must not touch (other tenants, telemetry down)
    max_request_s: float  # no request waits longer than this during any fault
    max_unauthenticated_successes: int  # unauthenticated, forged or wrong-tenant requests answered, ever
    recovery_s: dict[str, float]  # per fault: seconds from the fault's end (or start) to full service
    max_p99_increase_s: float  # p99 latency added while only telemetry is down
    key_propagation_s: float  # a published (or withdrawn) signing key takes effect at the gateway within this

    def recovery(self, kind: str) -> float:
        if kind not in self.recovery_s:
            raise ProfileError(
                f"the profile has no spec.chaos.recoverySeconds.{kind}", f"known: {', '.join(sorted(self.recovery_s))}"
            )
        return self.recovery_s[kind]


CALLER_KINDS = ("gateway", "ownTenant", "otherTenant", "outsideMesh")
RECOVERY_KINDS = ("replacementReady", "gateway", "tokenIssuer", "partition", "telemetry")


@dataclass(frozen=True)
class ConformanceProfile:
    """What the platform must guarantee; checks take expected verdicts and budgets from here."""

    name: str
    domain: str
    token_host: str
    auth: AuthPromise
    isolation: IsolationPromise
    rate_limit_per_tenant_rps: int
    raw: dict[str, Any]
    source: Path
    mesh: MeshPromise | None = None
    quota: QuotaPromise | None = None
    serving: ServingPromise | None = None
    token_endpoint: TokenEndpointPromise | None = None
    token_checks: TokenChecksPromise | None = None
    request_checks: RequestChecksPromise | None = None

    def require_token_checks(self) -> TokenChecksPromise:
        if self.token_checks is None:
            raise ProfileError(
                f"{self.source}: the profile has no spec.tokenChecks", "add it; see profiles/conformance.yaml"
            )
        return self.token_checks

    def require_request_checks(self) -> RequestChecksPromise:
        if self.request_checks is None:
            raise ProfileError(
                f"{self.source}: the profile has no spec.requestChecks", "add it; see profiles/conformance.yaml"
            )
        return self.request_checks

    chaos: ChaosPromise | None = None

    def require_chaos(self) -> ChaosPromise:
        if self.chaos is None:
            raise ProfileError(f"{self.source}: the profile has no spec.chaos", "add it; see profiles/conformance.yaml")
        return self.chaos

    ai_gateway: AIGatewayPromise | None = None

    def require_ai_gateway(self) -> AIGatewayPromise:
        if self.ai_gateway is None:
            raise ProfileError(
                f"{self.source}: the profile has no spec.aiGateway", "add it; see profiles/conformance.yaml"
            )
        return self.ai_gateway

    def require_token_endpoint(self) -> TokenEndpointPromise:
        if self.token_endpoint is None:
            raise ProfileError(
                f"{self.source}: the profile has no spec.tokenEndpoint", "add it; see profiles/conformance.yaml"
            )
        return self.token_endpoint

    def require_serving(self) -> ServingPromise:
        if self.serving is None:
            raise ProfileError(
                f"{self.source}: the profile has no spec.serving", "add it; see profiles/conformance.yaml"
            )
        return self.serving

    def require_mesh(self) -> MeshPromise:
        if self.mesh is None:
            raise ProfileError(f"{self.source}: the profile has no spec.mesh", "add it; see profiles/conformance.yaml")
        return self.mesh

    def require_quota(self) -> QuotaPromise:
        if self.quota is None:
            raise ProfileError(f"{self.source}: the profile has no spec.quota", "add it; see profiles/conformance.yaml")
        return self.quota

    def model_host(self, model: str, tenant: str) -> str:
        """The host name the platform promises for a model: <model>.<tenant>.<domain>."""
        return f"{model}.{tenant}.{self.domain}"


# The profile's schema: every field a profile may state, with its type. A field outside it, or of
# another type, is an error naming the field: a misspelt promise would otherwise be a promise that
# nothing checks. Sections after the first four are optional; within a section every field is needed.
Schema = dict[str, Any]
REQUIRED_SECTIONS = ("gateway", "authentication", "isolation", "rateLimit")
SCHEMA: Schema = {
    "gateway": {"domain": str, "tokenHost": str},
    "authentication": {
        "issuer": str,
        "audience": str,
        "tenantClaim": str,
        "algorithms": [str],
        "maxTokenLifetimeSeconds": int,
        "maxClockSkewSeconds": int,
    },
    "isolation": {"tenants": str, "modelsReachableOnlyThroughGateway": bool, "identityHeaders": [str]},
    "mesh": {
        "trustDomain": str,
        "mtls": str,
        "callers": {kind: {"connect": bool, "answered": bool} for kind in CALLER_KINDS},
    },
    "quota": {"everyTenant": bool, "maxPodsPerTenant": int},
    "serving": {
        "scaleToZero": bool,
        "scaleToZeroDeadlineSeconds": float,
        "coldStart": {"budgetSeconds": float, "cycles": int, "burstRequests": int},
        "scaleOut": bool,
        "canary": {"falseFailureRate": float, "requests": int},
    },
    "rateLimit": {"perTenantRequestsPerSecond": int},
    "tokenEndpoint": {"maxTokensPerClientPerMinute": int, "maxFailedAuthenticationsBeforeBackoff": int},
    "tokenChecks": {"authorizationHeaderOnly": bool, "expiryRequired": bool, "futureIssuedAtRefused": bool},
    "requestChecks": {"maxBodyBytes": int, "pathsNormalized": bool},
    "observability": {"maxScrapeIntervalSeconds": float, "everyRequestTraced": bool},
    "chaos": {
        "minSuccessRatio": float,
        "unaffectedSuccessRatio": float,
        "maxRequestSeconds": float,
        "maxUnauthenticatedSuccesses": int,
        "recoverySeconds": {kind: float for kind in RECOVERY_KINDS},
        "maxP99IncreaseSeconds": float,
        "keyPropagationSeconds": float,
    },
    "aiGateway": {"unknownModelStatus": int, "tokensPerTenantPerMinute": int},
}
TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


def _type_ok(expected: Any, value: Any) -> bool:
    if isinstance(expected, list):
        return isinstance(value, list) and all(_type_ok(expected[0], v) for v in value)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _check(node: Any, schema: Schema, where: str, source: Path) -> None:
    """Refuses fields outside ``schema`` and values of the wrong type, naming the field."""
    if not isinstance(node, dict):
        raise ProfileError(
            f"{source}: {where or 'the profile'} must be a mapping, found {node!r}", "see profiles/conformance.yaml"
        )
    for key, value in node.items():
        field_name = f"{where}.{key}" if where else str(key)
        if key not in schema:
            raise ProfileError(
                f"{source}: {field_name} is not a field of the conformance profile",
                f"fields of {where or 'the profile'}: {', '.join(schema)} (see profiles/conformance.yaml)",
            )
        expected = schema[key]
        if isinstance(expected, dict):
            _check(value, expected, field_name, source)
        elif not _type_ok(expected, value):
            wanted = f"a list of {TYPE_NAMES[expected[0]]}s" if isinstance(expected, list) else TYPE_NAMES[expected]
            raise ProfileError(
                f"{source}: {field_name} must be {wanted}, found {value!r}",
                "compare with profiles/conformance.yaml",
            )


def _need(data: dict[str, Any], dotted: str, source: Path) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ProfileError(
                f"{source}: the profile has no {dotted}",
                "add it; see profiles/conformance.yaml for every field",
            )
        node = node[part]
    return node


def _at_least_one(value: int, dotted: str, source: Path) -> int:
    if value < 1:
        raise ProfileError(f"{source}: {dotted} must be at least 1, found {value}", "compare with the default")
    return value


def load_profile(path: Path | str = DEFAULT_PROFILE) -> ConformanceProfile:
    path = Path(path)
    try:
        data = strictyaml.load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProfileError(f"conformance profile {path} does not exist", "pass --profile FILE") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(*strictyaml.explain(exc, str(path))) from exc
    if not isinstance(data, dict) or data.get("kind") != "ConformanceProfile":
        raise ProfileError(f"{path}: not a ConformanceProfile", "the file needs kind: ConformanceProfile")
    _check(data, {"apiVersion": str, "kind": str, "metadata": {"name": str}, "spec": SCHEMA}, "", path)
    spec = _need(data, "spec", path)
    for section in REQUIRED_SECTIONS:
        _need(spec, section, path)
    return ConformanceProfile(
        name=str(_need(data, "metadata.name", path)),
        domain=_need(spec, "gateway.domain", path),
        token_host=_need(spec, "gateway.tokenHost", path),
        auth=AuthPromise(
            issuer=_need(spec, "authentication.issuer", path),
            audience=_need(spec, "authentication.audience", path),
            tenant_claim=_need(spec, "authentication.tenantClaim", path),
            algorithms=tuple(_need(spec, "authentication.algorithms", path)),
            max_token_lifetime_s=_need(spec, "authentication.maxTokenLifetimeSeconds", path),
            max_clock_skew_s=_need(spec, "authentication.maxClockSkewSeconds", path),
        ),
        isolation=IsolationPromise(
            tenants_isolated=_need(spec, "isolation.tenants", path) == "isolated",
            models_only_through_gateway=_need(spec, "isolation.modelsReachableOnlyThroughGateway", path),
            identity_headers=tuple(_need(spec, "isolation.identityHeaders", path)),
        ),
        rate_limit_per_tenant_rps=_need(spec, "rateLimit.perTenantRequestsPerSecond", path),
        raw=data,
        source=path,
        mesh=_mesh(spec, path) if "mesh" in spec else None,
        quota=(
            QuotaPromise(
                every_tenant=_need(spec, "quota.everyTenant", path),
                max_pods_per_tenant=_need(spec, "quota.maxPodsPerTenant", path),
            )
            if "quota" in spec
            else None
        ),
        serving=_serving(spec, path) if "serving" in spec else None,
        token_endpoint=(
            TokenEndpointPromise(
                max_tokens_per_client_per_minute=_at_least_one(
                    _need(spec, "tokenEndpoint.maxTokensPerClientPerMinute", path),
                    "spec.tokenEndpoint.maxTokensPerClientPerMinute",
                    path,
                ),
                max_failed_authentications_before_backoff=_at_least_one(
                    _need(spec, "tokenEndpoint.maxFailedAuthenticationsBeforeBackoff", path),
                    "spec.tokenEndpoint.maxFailedAuthenticationsBeforeBackoff",
                    path,
                ),
            )
            if "tokenEndpoint" in spec
            else None
        ),
        token_checks=(
            TokenChecksPromise(
                authorization_header_only=_need(spec, "tokenChecks.authorizationHeaderOnly", path),
                expiry_required=_need(spec, "tokenChecks.expiryRequired", path),
                future_issued_at_refused=_need(spec, "tokenChecks.futureIssuedAtRefused", path),
            )
            if "tokenChecks" in spec
            else None
        ),
        request_checks=(
            RequestChecksPromise(
                max_body_bytes=_at_least_one(
                    _need(spec, "requestChecks.maxBodyBytes", path), "spec.requestChecks.maxBodyBytes", path
                ),
                paths_normalized=_need(spec, "requestChecks.pathsNormalized", path),
            )
            if "requestChecks" in spec
            else None
        ),
        chaos=_chaos(spec, path) if "chaos" in spec else None,
        ai_gateway=(
            AIGatewayPromise(
                unknown_model_status=_need(spec, "aiGateway.unknownModelStatus", path),
                tokens_per_tenant_per_minute=_at_least_one(
                    _need(spec, "aiGateway.tokensPerTenantPerMinute", path),
                    "spec.aiGateway.tokensPerTenantPerMinute",
                    path,
                ),
            )
            if "aiGateway" in spec
            else None
        ),
    )


def _chaos(spec: dict[str, Any], path: Path) -> ChaosPromise:
    def ratio(name: str) -> float:
        value = float(_need(spec, f"chaos.{name}", path))
        if not 0.0 <= value <= 1.0:
            raise ProfileError(f"{path}: spec.chaos.{name} is {value}, outside 0-1", "a ratio is between 0 and 1")
        return value

    def positive(name: str) -> float:
        value = float(_need(spec, f"chaos.{name}", path))
        if value <= 0:
            raise ProfileError(f"{path}: spec.chaos.{name} must be above 0, found {value}", "give a time in seconds")
        return value

    recovery = {kind: positive(f"recoverySeconds.{kind}") for kind in RECOVERY_KINDS}
    unauthenticated = int(_need(spec, "chaos.maxUnauthenticatedSuccesses", path))
    if unauthenticated < 0:
        raise ProfileError(f"{path}: spec.chaos.maxUnauthenticatedSuccesses is negative", "use 0")
    return ChaosPromise(
        min_success_ratio=ratio("minSuccessRatio"),
        unaffected_success_ratio=ratio("unaffectedSuccessRatio"),
        max_request_s=positive("maxRequestSeconds"),
        max_unauthenticated_successes=unauthenticated,
        recovery_s=recovery,
        max_p99_increase_s=positive("maxP99IncreaseSeconds"),
        key_propagation_s=positive("keyPropagationSeconds"),
    )


def _mesh(spec: dict[str, Any], path: Path) -> MeshPromise:
    callers_raw = _need(spec, "mesh.callers", path)
    missing = [k for k in CALLER_KINDS if k not in callers_raw]
    if missing:
        raise ProfileError(f"{path}: spec.mesh.callers lacks {', '.join(missing)}", f"state all of {CALLER_KINDS}")
    callers = {
        kind: CallerIntent(
            connect=bool(_need(callers_raw, f"{kind}.connect", path)),
            answered=bool(_need(callers_raw, f"{kind}.answered", path)),
        )
        for kind in CALLER_KINDS
    }
    return MeshPromise(
        trust_domain=str(_need(spec, "mesh.trustDomain", path)),
        mtls=str(_need(spec, "mesh.mtls", path)),
        callers=callers,
    )


def _serving(spec: dict[str, Any], path: Path) -> ServingPromise:
    promise = ServingPromise(
        scale_to_zero=bool(_need(spec, "serving.scaleToZero", path)),
        scale_to_zero_deadline_s=float(_need(spec, "serving.scaleToZeroDeadlineSeconds", path)),
        cold_start_budget_s=float(_need(spec, "serving.coldStart.budgetSeconds", path)),
        cold_start_cycles=int(_need(spec, "serving.coldStart.cycles", path)),
        burst_requests=int(_need(spec, "serving.coldStart.burstRequests", path)),
        scale_out=bool(_need(spec, "serving.scaleOut", path)),
        canary_false_failure_rate=float(_need(spec, "serving.canary.falseFailureRate", path)),
        canary_requests=int(_need(spec, "serving.canary.requests", path)),
    )
    if not 0 < promise.canary_false_failure_rate < 1 or promise.cold_start_cycles < 1 or promise.burst_requests < 1:
        raise ProfileError(
            f"{path}: spec.serving has an impossible value (falseFailureRate in (0, 1), cycles and burstRequests >= 1)",
            "compare with profiles/conformance.yaml",
        )
    return promise
