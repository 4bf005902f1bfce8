"""What the gateway must do, derived from Gateway API and Envoy Gateway objects (no Envoy yet).

The plan follows Envoy Gateway's semantics for the declared subset:

- an HTTPRoute attaches to the Gateway only if the listener's ``allowedRoutes`` admits its namespace
  and a route hostname falls under the listener hostname; otherwise it is not programmed;
- ``PathPrefix`` matches whole path elements (``/v1/models`` matches ``/v1/models/x:predict`` but
  not ``/v1/modelsx``);
- a backend in another namespace needs a ReferenceGrant there; an unresolved backend answers 500;
- the Service ``istio-system/istio-ingressgateway`` is Istio's ingress, which routes by host name
  to the Knative service of an InferenceService (``<isvc>.<namespace>.<knative domain>``);
- a SecurityPolicy on a route overrides one on the Gateway; a JWT failure answers 401, an
  authorization denial 403;
- a BackendTrafficPolicy's local rate-limit rules each get their own token bucket per route;
- a BackendTrafficPolicy's ``faultInjection`` delays (``fixedDelay``) and/or aborts (``httpStatus``)
  the given percentage of a route's requests (default 100 %), before authentication, as Envoy
  Gateway's fault filter does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from inferbox.embedded.durations import parse_go_duration
from inferbox.embedded.eg_policies import (
    ListenerSettings,
    LuaPlan,
    listener_settings,
    luas_for,
    request_buffer_for,
    route_timeout,
)
from inferbox.embedded.envoy_patch import PatchPolicy, PolicyStatus, plan_patch_policies
from inferbox.embedded.outliers import OutlierPlan, destination_rule_outliers
from inferbox.envoy_gateway_settings import envoy_patch_policy_enabled
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.topology import ai_gateway_refs

# Re-exported from eg_policies for the modules that read them with the plan.
__all__ = ["ListenerSettings", "LuaPlan", "parse_go_duration"]

GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
ISTIO_INGRESS = ("istio-system", "istio-ingressgateway")
SVC_SUFFIX = ".svc.cluster.local"
UNIT_SECONDS = {"Second": 1, "Minute": 60, "Hour": 3600}


@dataclass(frozen=True)
class ServiceBackend:
    namespace: str
    name: str
    port: int


@dataclass(frozen=True)
class ModelBackend:
    """An InferenceService reached through the ingress and Knative's host routing; with ``revision``
    (a Knative revision suffix, 00001...), one revision of it."""

    namespace: str
    name: str
    revision: str = ""


@dataclass(frozen=True)
class Unresolved:
    reason: str
    # The reason of the ResolvedRefs=False condition Envoy Gateway would set on the route
    # (BackendNotFound, RefNotPermitted); "" where Gateway API sees nothing wrong (the ingress
    # Service exists, but no Knative service answers for the host). See route_status.py.
    condition: str = ""


Backend = ServiceBackend | ModelBackend | Unresolved


@dataclass(frozen=True)
class WeightedBackend:
    backend: Backend
    weight: int


@dataclass(frozen=True)
class TokenLocations:
    """A SecurityPolicy provider's ``extractFrom``: where Envoy looks for the token (None: Envoy's
    defaults, the Authorization header's Bearer token and the ``access_token`` query parameter)."""

    headers: tuple[tuple[str, str], ...] = ()  # (header name, value prefix)
    cookies: tuple[str, ...] = ()
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class JwtProvider:
    key: str  # unique across policies: <namespace>/<policy>/<provider>
    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str
    claim_to_headers: tuple[tuple[str, str], ...]  # (header, claim)
    name: str = ""  # the provider's own name (Envoy Gateway keys payloads and providers by it)
    extract_from: TokenLocations | None = None


@dataclass(frozen=True)
class Principal:
    """All parts must match: JWT claims (claim -> allowed values) and request headers (header -> allowed values)."""

    provider_key: str | None  # the JWT provider's name, under which its verified payload is kept
    claims: tuple[tuple[str, tuple[str, ...]], ...]
    headers: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Authorization:
    default_allow: bool
    rules: tuple[tuple[str, bool, Principal], ...]  # (name, allow, principal)


@dataclass(frozen=True)
class SecurityPlan:
    policy: str  # namespace/name of the SecurityPolicy in force
    providers: tuple[JwtProvider, ...]
    jwt_optional: bool
    authorization: Authorization | None


@dataclass(frozen=True)
class RateLimitRule:
    headers: tuple[tuple[str, str], ...]  # all must match exactly
    requests: int
    per_seconds: int


@dataclass(frozen=True)
class FaultPlan:
    """Envoy Gateway's faultInjection on a route: percentages are 0-100."""

    delay_s: float | None = None
    delay_percent: float = 100.0
    abort_status: int | None = None
    abort_percent: float = 100.0


@dataclass(frozen=True)
class RetryPlan:
    """A BackendTrafficPolicy's ``retry``, with Envoy Gateway 1.4's defaults."""

    num_retries: int = 2
    triggers: tuple[str, ...] = (
        "connect-failure",
        "refused-stream",
        "unavailable",
        "cancelled",
        "retriable-status-codes",
    )
    status_codes: tuple[int, ...] = (503,)
    per_try_timeout_s: float | None = None
    backoff_base_s: float | None = None
    backoff_max_s: float | None = None


@dataclass(frozen=True)
class Resilience:
    """What a route's BackendTrafficPolicy asks of the gateway when a backend fails."""

    retry: RetryPlan | None = None
    outlier: OutlierPlan | None = None
    connect_timeout_s: float | None = None


@dataclass(frozen=True)
class RoutePlan:
    # Envoy Gateway's IR route name, also the Envoy route and JWT requirement name:
    # httproute/<namespace>/<route>/rule/<r>/match/<m>/<host with . as _>
    key: str
    route: str  # namespace/name
    hostnames: tuple[str, ...]
    path_type: str
    path: str
    backends: tuple[WeightedBackend, ...]
    security: SecurityPlan | None
    rate_limits: tuple[RateLimitRule, ...]
    fault: FaultPlan | None = None
    # The route's effective timeout (HTTPRoute timeouts), in seconds; None: Envoy's default (15 s).
    timeout_s: float | None = None
    # A BackendTrafficPolicy's requestBuffer.limit: bodies above it are refused (413).
    request_buffer_bytes: int | None = None
    luas: tuple[LuaPlan, ...] = ()
    rule: int = 0
    match: int = 0
    resilience: Resilience | None = None


@dataclass
class GatewayPlan:
    gateway: str
    listener_port: int
    remove_request_headers: tuple[str, ...]
    routes: list[RoutePlan] = field(default_factory=list)
    detached_routes: dict[str, str] = field(default_factory=dict)  # route -> why not attached
    listener_name: str = ""  # Envoy Gateway's: <namespace>/<gateway>/<listener>
    listener: ListenerSettings = field(default_factory=ListenerSettings)
    # EnvoyPatchPolicies applied to the generated listener, and the status of those that are not.
    patch_policies: list[PatchPolicy] = field(default_factory=list)
    patch_statuses: list[PolicyStatus] = field(default_factory=list)
    # Istio DestinationRule outlier detection of each model's replicas, by "<namespace>/<model>": on
    # the embedded target the gateway reaches replicas itself, where Istio's ingress would.
    replica_outliers: dict[str, OutlierPlan] = field(default_factory=dict)


def knative_domain(manifests: ManifestSet) -> str:
    config = manifests.get("ConfigMap", "config-domain", "knative-serving")
    if config is None:
        return "example.com"  # Knative's default external domain
    domains = [d for d, selector in (config.body.get("data") or {}).items() if not selector]
    return domains[0] if domains else "example.com"


def _hostname_matches(listener: str | None, host: str) -> bool:
    if not listener:
        return True
    if listener.startswith("*."):
        return host.endswith(listener[1:]) and len(host) > len(listener) - 1
    return host == listener


def _namespace_admitted(listener: dict[str, Any], gateway: K8sObject, namespace: str, manifests: ManifestSet) -> bool:
    allowed = (listener.get("allowedRoutes") or {}).get("namespaces") or {}
    mode = allowed.get("from", "Same")
    if mode == "All":
        return True
    if mode == "Same":
        return namespace == gateway.namespace
    wanted = (allowed.get("selector") or {}).get("matchLabels") or {}
    ns = manifests.get("Namespace", namespace)
    labels = ns.labels if ns else {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _granted(manifests: ManifestSet, from_ns: str, to_ns: str, service: str) -> bool:
    for grant in manifests.of_kind("ReferenceGrant"):
        if grant.namespace != to_ns:
            continue
        froms = grant.spec.get("from") or []
        tos = grant.spec.get("to") or []
        from_ok = any(f.get("kind") == "HTTPRoute" and f.get("namespace") == from_ns for f in froms)
        to_ok = any(t.get("kind") == "Service" and t.get("name", service) == service for t in tos)
        if from_ok and to_ok:
            return True
    return False


def _resolve_backend(
    ref: dict[str, Any], route: K8sObject, hostnames: tuple[str, ...], manifests: ManifestSet, domain: str
) -> list[Backend]:
    route_ns = route.namespace or "default"
    namespace = ref.get("namespace", route_ns)
    name = ref["name"]
    if namespace != route_ns and not _granted(manifests, route_ns, namespace, name):
        why = f"no ReferenceGrant in {namespace} lets HTTPRoutes from {route_ns} use Service {name}"
        return [Unresolved(why, "RefNotPermitted")]
    if (namespace, name) == ISTIO_INGRESS:
        backends: list[Backend] = []
        for host in hostnames:
            labels = host.removesuffix("." + domain).split(".") if host.endswith("." + domain) else []
            isvc = manifests.get("InferenceService", labels[0], labels[1]) if len(labels) == 2 else None
            backends.append(
                ModelBackend(isvc.namespace or "default", isvc.name)
                if isvc
                else Unresolved(f"Istio ingress has no Knative service for host {host}")
            )
        return backends
    if manifests.get("Service", name, namespace) is None:
        return [Unresolved(f"Service {namespace}/{name} not found", "BackendNotFound")]
    return [ServiceBackend(namespace, name, int(ref["port"]))]


def _token_locations(raw: dict[str, Any] | None) -> TokenLocations | None:
    if raw is None:
        return None
    return TokenLocations(
        headers=tuple((h["name"], h.get("valuePrefix", "")) for h in raw.get("headers") or ()),
        cookies=tuple(raw.get("cookies") or ()),
        params=tuple(raw.get("params") or ()),
    )


def _security_for(route: K8sObject, gateway: K8sObject, manifests: ManifestSet) -> SecurityPlan | None:
    def targets(policy: K8sObject, kind: str, name: str) -> bool:
        return any(t.get("kind") == kind and t.get("name") == name for t in policy.spec.get("targetRefs") or [])

    policies = manifests.of_kind("SecurityPolicy")
    on_route = [p for p in policies if p.namespace == route.namespace and targets(p, "HTTPRoute", route.name)]
    on_gateway = [p for p in policies if p.namespace == gateway.namespace and targets(p, "Gateway", gateway.name)]
    chosen = on_route or on_gateway  # the more specific target wins
    if not chosen:
        return None
    if len(chosen) > 1:
        raise ManifestError(
            f"{route.ref} is targeted by {len(chosen)} SecurityPolicies ({', '.join(p.name for p in chosen)})",
            "Envoy Gateway applies only one; merge them into one policy",
        )
    policy = chosen[0]
    jwt = policy.spec.get("jwt") or {}
    providers = tuple(
        JwtProvider(
            key=f"{policy.namespace}/{policy.name}/{p['name']}",
            issuer=p.get("issuer", ""),
            audiences=tuple(p.get("audiences") or ()),
            jwks_uri=p["remoteJWKS"]["uri"],
            claim_to_headers=tuple((c["header"], c["claim"]) for c in p.get("claimToHeaders") or ()),
            name=p["name"],
            extract_from=_token_locations(p.get("extractFrom")),
        )
        for p in jwt.get("providers") or ()
    )
    authorization = None
    authz = policy.spec.get("authorization")
    if authz is not None:
        rules = []
        for rule in authz.get("rules") or ():
            principal = rule.get("principal") or {}
            jwt_principal = principal.get("jwt")
            provider_key = None
            claims: tuple[tuple[str, tuple[str, ...]], ...] = ()
            if jwt_principal:
                matching = [p for p in providers if p.key.endswith("/" + jwt_principal["provider"])]
                if not matching:
                    raise ManifestError(
                        f"{policy.source}: {policy.ref}: authorization rule {rule.get('name')} names JWT provider "
                        f"{jwt_principal['provider']}, which this policy does not define",
                        "a JWT principal needs JWT authentication configured in the same SecurityPolicy",
                    )
                provider_key = matching[0].name  # Envoy Gateway's RBAC reads the payload under the provider's name
                claims = tuple((c["name"], tuple(c["values"])) for c in jwt_principal.get("claims") or ())
            headers = tuple((h["name"].lower(), tuple(h["values"])) for h in principal.get("headers") or ())
            rules.append(
                (
                    str(rule.get("name", "")),
                    rule["action"] == "Allow",
                    Principal(provider_key, claims, headers),
                )
            )
        default_allow = authz.get("defaultAction", "Deny") == "Allow"
        if any(allow == default_allow for _, allow, _ in rules):
            raise ManifestError(
                f"{policy.source}: {policy.ref}: rules with the same action as defaultAction are not supported "
                "by the embedded target",
                "list only rules whose action differs from defaultAction",
            )
        authorization = Authorization(default_allow, tuple(rules))
    return SecurityPlan(f"{policy.namespace}/{policy.name}", providers, bool(jwt.get("optional", False)), authorization)


def _rate_limits_for(route: K8sObject, gateway: K8sObject, manifests: ManifestSet) -> tuple[RateLimitRule, ...]:
    """The local rate limits of the BackendTrafficPolicy on the route, else of the one on its Gateway
    (as in Envoy Gateway, the more specific target wins; a Gateway's limit applies to each route)."""

    def targets(policy: K8sObject, kind: str, name: str) -> bool:
        return any(t.get("kind") == kind and t.get("name") == name for t in policy.spec.get("targetRefs") or [])

    limiting = [p for p in manifests.of_kind("BackendTrafficPolicy") if "rateLimit" in p.spec]
    on_route = [p for p in limiting if p.namespace == route.namespace and targets(p, "HTTPRoute", route.name)]
    on_gateway = [p for p in limiting if p.namespace == gateway.namespace and targets(p, "Gateway", gateway.name)]
    rules: list[RateLimitRule] = []
    for policy in on_route or on_gateway:
        local = (policy.spec.get("rateLimit") or {}).get("local") or {}
        for rule in local.get("rules") or ():
            headers: list[tuple[str, str]] = []
            for selector in rule.get("clientSelectors") or ():
                headers.extend((h["name"].lower(), h["value"]) for h in selector.get("headers") or ())
            limit = rule["limit"]
            rules.append(RateLimitRule(tuple(headers), int(limit["requests"]), UNIT_SECONDS[limit["unit"]]))
    return tuple(rules)


def _percent(policy: K8sObject, field_path: str, value: Any) -> float:
    percent = 100.0 if value is None else float(value)
    if not 0.0 <= percent <= 100.0:
        raise ManifestError(
            f"{policy.source}: {policy.ref}: {field_path} is {value}, outside 0-100", "use a percentage from 0 to 100"
        )
    return percent


def _fault_for(route: K8sObject, manifests: ManifestSet) -> FaultPlan | None:
    def targets(policy: K8sObject, kind: str, name: str) -> bool:
        return any(t.get("kind") == kind and t.get("name") == name for t in policy.spec.get("targetRefs") or [])

    with_fault = [p for p in manifests.of_kind("BackendTrafficPolicy") if "faultInjection" in p.spec]
    for policy in with_fault:
        if any(t.get("kind") == "Gateway" for t in policy.spec.get("targetRefs") or []):
            raise ManifestError(
                f"{policy.source}: {policy.ref}: faultInjection on a Gateway target is not interpreted by the "
                "embedded target",
                "target the HTTPRoute, or run this manifest on a cluster (--platform kind/existing)",
            )
    chosen = [p for p in with_fault if p.namespace == route.namespace and targets(p, "HTTPRoute", route.name)]
    if not chosen:
        return None
    if len(chosen) > 1:
        raise ManifestError(
            f"{route.ref} gets faultInjection from {len(chosen)} BackendTrafficPolicies "
            f"({', '.join(p.name for p in chosen)})",
            "Envoy Gateway applies one BackendTrafficPolicy per route; put the fault in one policy",
        )
    policy = chosen[0]
    spec = policy.spec["faultInjection"] or {}
    delay, abort = spec.get("delay"), spec.get("abort")
    if not delay and not abort:
        raise ManifestError(
            f"{policy.source}: {policy.ref}: faultInjection sets neither delay nor abort", "set at least one of them"
        )
    fault = FaultPlan()
    if delay:
        if "fixedDelay" not in delay:
            raise ManifestError(f"{policy.source}: {policy.ref}: faultInjection.delay needs fixedDelay", "add it")
        try:
            delay_s = parse_go_duration(str(delay["fixedDelay"]))
        except ValueError as exc:
            raise ManifestError(f"{policy.source}: {policy.ref}: faultInjection.delay.fixedDelay: {exc}", "") from exc
        fault = FaultPlan(
            delay_s=delay_s, delay_percent=_percent(policy, "faultInjection.delay.percentage", delay.get("percentage"))
        )
    if abort:
        status = int(abort.get("httpStatus", 0))
        if not 200 <= status <= 600:
            raise ManifestError(
                f"{policy.source}: {policy.ref}: faultInjection.abort.httpStatus must be 200-600, "
                f"found {status or 'none'}",
                "set httpStatus (gRPC aborts are not interpreted by the embedded target)",
            )
        fault = FaultPlan(
            fault.delay_s,
            fault.delay_percent,
            status,
            _percent(policy, "faultInjection.abort.percentage", abort.get("percentage")),
        )
    return fault


# Complex on purpose: one pass over the gateway kinds in the order Envoy Gateway resolves them.
def plan_gateway(manifests: ManifestSet, envoy_patch_policy: bool | None = None) -> GatewayPlan:
    """The gateway's routes, security and rate limits for the one Gateway in the manifests.

    ``envoy_patch_policy`` overrides whether the controller's configuration enables EnvoyPatchPolicy
    (default: as the installer configures Envoy Gateway)."""
    classes = {c.name for c in manifests.of_kind("GatewayClass") if c.spec.get("controllerName") == GATEWAY_CONTROLLER}
    ai_gateways = ai_gateway_refs(manifests)  # the AI Gateway's own plan: inferbox.embedded.ai_gateway_plan
    gateways = [
        g
        for g in manifests.of_kind("Gateway")
        if g.spec.get("gatewayClassName") in classes and (g.namespace or "default", g.name) not in ai_gateways
    ]
    if len(gateways) != 1:
        raise ManifestError(
            f"the embedded target needs exactly one Gateway of an Envoy Gateway class, found {len(gateways)}",
            f"define one Gateway whose gatewayClassName names a GatewayClass with controllerName {GATEWAY_CONTROLLER}",
        )
    gateway = gateways[0]
    listeners = gateway.spec.get("listeners") or []
    if len(listeners) != 1:
        raise ManifestError(
            f"{gateway.source}: {gateway.ref}: the embedded target supports one listener",
            "use a single HTTP listener",
        )
    listener = listeners[0]
    removed: list[str] = []
    for ctp in manifests.of_kind("ClientTrafficPolicy"):
        if ctp.namespace == gateway.namespace and any(
            t.get("kind") == "Gateway" and t.get("name") == gateway.name for t in ctp.spec.get("targetRefs") or []
        ):
            removed.extend(
                h.lower()
                for h in ((ctp.spec.get("headers") or {}).get("earlyRequestHeaders") or {}).get("remove") or []
            )
    plan = GatewayPlan(
        gateway=f"{gateway.namespace}/{gateway.name}",
        listener_port=int(listener["port"]),
        remove_request_headers=tuple(removed),
        listener_name=f"{gateway.namespace}/{gateway.name}/{listener['name']}",
        listener=listener_settings(gateway, manifests),
    )
    enabled = envoy_patch_policy_enabled() if envoy_patch_policy is None else envoy_patch_policy
    plan.patch_policies, plan.patch_statuses = plan_patch_policies(manifests, gateway, enabled)
    domain = knative_domain(manifests)
    plan.replica_outliers = destination_rule_outliers(manifests)
    for route in manifests.of_kind("HTTPRoute"):
        ref = f"{route.namespace}/{route.name}"
        parents = [
            p
            for p in route.spec.get("parentRefs") or []
            if p.get("name") == gateway.name and p.get("namespace", route.namespace) == gateway.namespace
        ]
        if not parents:
            plan.detached_routes[ref] = "its parentRefs do not name the Gateway"
            continue
        if not _namespace_admitted(listener, gateway, route.namespace or "default", manifests):
            plan.detached_routes[ref] = f"the listener's allowedRoutes does not admit namespace {route.namespace}"
            continue
        hostnames = tuple(
            h for h in route.spec.get("hostnames") or [] if _hostname_matches(listener.get("hostname"), h)
        )
        if not hostnames:
            plan.detached_routes[ref] = "no hostname falls under the listener's hostname"
            continue
        template = RoutePlan(
            key="",
            route=ref,
            hostnames=hostnames,  # the listener's share; each RoutePlan gets one of them
            path_type="",
            path="",
            backends=(),
            security=_security_for(route, gateway, manifests),
            rate_limits=_rate_limits_for(route, gateway, manifests),
            fault=_fault_for(route, manifests),
            request_buffer_bytes=request_buffer_for(route, gateway, manifests),
            luas=luas_for(route, gateway, manifests),
            resilience=resilience_for(route, gateway, manifests),
        )
        plan.routes.extend(_route_rules(route, template, manifests, domain))
    return plan


def ir_route_name(route: K8sObject, rule: int, match: int, host: str) -> str:
    """Envoy Gateway's name for one match of one rule on one host (IR route, Envoy route and JWT
    requirement): httproute/<namespace>/<route>/rule/<r>/match/<m>/<host with . as _>."""
    return f"httproute/{route.namespace}/{route.name}/rule/{rule}/match/{match}/{host.replace('.', '_')}"


def _route_rules(route: K8sObject, template: RoutePlan, manifests: ManifestSet, domain: str) -> list[RoutePlan]:
    """One RoutePlan per rule x host x match, as Envoy Gateway expands an HTTPRoute."""
    found = []
    for rule_index, rule in enumerate(route.spec.get("rules") or []):
        matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
        for host in template.hostnames:
            backends: list[WeightedBackend] = []
            for backend_ref in rule.get("backendRefs") or []:
                weight = int(backend_ref.get("weight", 1))
                for backend in _resolve_backend(backend_ref, route, (host,), manifests, domain):
                    backends.append(WeightedBackend(backend, weight))
            for match_index, match in enumerate(matches):
                path = match.get("path") or {"type": "PathPrefix", "value": "/"}
                found.append(
                    replace(
                        template,
                        key=ir_route_name(route, rule_index, match_index, host),
                        hostnames=(host,),
                        path_type=path.get("type", "PathPrefix"),
                        path=path.get("value", "/"),
                        backends=tuple(backends),
                        timeout_s=route_timeout(rule),
                        rule=rule_index,
                        match=match_index,
                    )
                )
    return found


def jwks_service(uri: str) -> tuple[str, str, int] | None:
    """(namespace, service, port) for an in-cluster JWKS URI like http://svc.ns.svc.cluster.local:8080/..."""
    rest = uri.split("://", 1)[-1]
    hostport = rest.split("/", 1)[0]
    host, _, port = hostport.partition(":")
    if not host.endswith(SVC_SUFFIX):
        return None
    parts = host.removesuffix(SVC_SUFFIX).split(".")
    if len(parts) != 2:
        return None
    return parts[1], parts[0], int(port or (443 if uri.startswith("https") else 80))


# -- resilience: BackendTrafficPolicy retry, healthCheck.passive and timeout.tcp -------------------
# Envoy Gateway's retry triggers, as the API names them, and Envoy's names for them.
RETRY_TRIGGERS = {
    "5xx": "5xx",
    "gateway-error": "gateway-error",
    "reset": "reset",
    "connect-failure": "connect-failure",
    "retriable-4xx": "retriable-4xx",
    "refused-stream": "refused-stream",
    "retriable-status-codes": "retriable-status-codes",
    "cancelled": "cancelled",
    "deadline-exceeded": "deadline-exceeded",
    "internal": "internal",
    "resource-exhausted": "resource-exhausted",
    "unavailable": "unavailable",
}


def _duration(policy: K8sObject, field_path: str, value: Any) -> float:
    try:
        return parse_go_duration(str(value))
    except ValueError as exc:
        raise ManifestError(f"{policy.source}: {policy.ref}: {field_path}: {exc}", "write a duration like 2s") from exc


def _retry(policy: K8sObject, spec: dict[str, Any]) -> RetryPlan:
    retry_on = spec.get("retryOn")
    triggers: tuple[str, ...] = RetryPlan().triggers
    codes: tuple[int, ...] = RetryPlan().status_codes
    if retry_on is not None:
        # With retryOn present, Envoy Gateway emits exactly its triggers and its status codes.
        unknown = [t for t in retry_on.get("triggers") or [] if t not in RETRY_TRIGGERS]
        if unknown:
            raise ManifestError(
                f"{policy.source}: {policy.ref}: retry.retryOn.triggers has unknown trigger(s) {unknown}",
                f"use some of {', '.join(RETRY_TRIGGERS)}",
            )
        triggers = tuple(RETRY_TRIGGERS[t] for t in retry_on.get("triggers") or [])
        codes = tuple(int(c) for c in retry_on.get("httpStatusCodes") or [])
    per_retry = spec.get("perRetry") or {}
    backoff = per_retry.get("backOff") or {}
    base = _duration(policy, "retry.perRetry.backOff.baseInterval", backoff["baseInterval"]) if backoff else None
    if backoff and not base:
        raise ManifestError(f"{policy.source}: {policy.ref}: retry.perRetry.backOff.baseInterval must not be 0", "")
    return RetryPlan(
        num_retries=int(spec.get("numRetries", 2)),
        triggers=triggers,
        status_codes=codes,
        per_try_timeout_s=(
            _duration(policy, "retry.perRetry.timeout", per_retry["timeout"]) if "timeout" in per_retry else None
        ),
        backoff_base_s=base,
        backoff_max_s=(
            _duration(policy, "retry.perRetry.backOff.maxInterval", backoff["maxInterval"])
            if "maxInterval" in backoff
            else None
        ),
    )


def _passive(policy: K8sObject, spec: dict[str, Any], panic: int | None) -> OutlierPlan:
    """healthCheck.passive with the CRD's defaults (the API server applies them on a cluster)."""

    def seconds(name: str, default: str) -> float:
        return _duration(policy, f"healthCheck.passive.{name}", spec.get(name, default))

    return OutlierPlan(
        source="BackendTrafficPolicy",
        interval_s=seconds("interval", "3s"),
        base_ejection_s=seconds("baseEjectionTime", "30s"),
        consecutive_5xx=int(spec.get("consecutive5XxErrors", 5)),
        consecutive_gateway_errors=int(spec.get("consecutiveGatewayErrors", 0)),
        consecutive_local_origin=int(spec.get("consecutiveLocalOriginFailures", 5)),
        split_local_origin=bool(spec.get("splitExternalLocalOriginErrors", False)),
        max_ejection_percent=int(spec.get("maxEjectionPercent", 10)),
        panic_threshold=panic,
    )


def resilience_for(route: K8sObject, gateway: K8sObject, manifests: ManifestSet) -> Resilience | None:
    """The retry, passive health check and connect timeout of the BackendTrafficPolicy on the route,
    else of the one on its Gateway (the more specific target wins, as in Envoy Gateway)."""

    def targets(policy: K8sObject, kind: str, name: str) -> bool:
        return any(t.get("kind") == kind and t.get("name") == name for t in policy.spec.get("targetRefs") or [])

    keys = ("retry", "healthCheck", "timeout")
    relevant = [p for p in manifests.of_kind("BackendTrafficPolicy") if any(k in p.spec for k in keys)]
    on_route = [p for p in relevant if p.namespace == route.namespace and targets(p, "HTTPRoute", route.name)]
    on_gateway = [p for p in relevant if p.namespace == gateway.namespace and targets(p, "Gateway", gateway.name)]
    chosen = on_route or on_gateway
    if not chosen:
        return None
    if len(chosen) > 1:
        raise ManifestError(
            f"{route.ref} gets retry/healthCheck/timeout from {len(chosen)} BackendTrafficPolicies "
            f"({', '.join(p.name for p in chosen)})",
            "Envoy Gateway accepts one BackendTrafficPolicy per route (a second is Conflicted); merge them",
        )
    policy = chosen[0]
    health = policy.spec.get("healthCheck") or {}
    panic = health.get("panicThreshold")
    connect = ((policy.spec.get("timeout") or {}).get("tcp") or {}).get("connectTimeout")
    return Resilience(
        retry=_retry(policy, policy.spec["retry"] or {}) if "retry" in policy.spec else None,
        outlier=_passive(policy, health["passive"] or {}, panic) if "passive" in health else None,
        connect_timeout_s=_duration(policy, "timeout.tcp.connectTimeout", connect) if connect else None,
    )
