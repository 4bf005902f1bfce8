"""What the AI Gateway must do, derived from Envoy AI Gateway 0.2.1 and Envoy Gateway objects.

The plan follows what AI Gateway 0.2.1's controller and Envoy Gateway v1.4 make of the objects
(docs/ai-gateway.md has the sources):

- every ``AIGatewayRoute`` becomes an HTTPRoute of the same name in the route's namespace, attached
  to the Gateway its ``targetRefs`` name (same namespace); rule *i* matches the header
  ``x-ai-eg-selected-route: <route>-rule-<i>`` and sends to its backends; a last rule ``unreachable``
  (PathPrefix ``/``, no backend) catches everything else, answered 500 by Envoy Gateway;
- the Gateway gets AI Gateway's external processor: it reads the body's ``model`` into
  ``x-ai-eg-model``, picks the first rule one of whose matches equals a request header (only the
  first header of each match counts), answers ``404 no matching rule found`` when none does, and
  writes the answer's token usage (``llmRequestCosts``, merged over the Gateway's routes, the first
  of a metadata key wins) to dynamic metadata ``io.envoy.ai_gateway``;
- an ``AIServiceBackend`` names an Envoy Gateway ``Backend`` whose fqdn endpoint is KServe's Service
  of an InferenceService (``<isvc>.<namespace>.svc.cluster.local`` or the ``-predictor`` one);
- a ``SecurityPolicy`` on the generated HTTPRoute (by the AIGatewayRoute's name) or on the Gateway
  secures it, as for any route; a ``BackendTrafficPolicy`` with a *global* rate limit becomes
  descriptors for Envoy's rate-limit filter and the configuration of the rate-limit service, with
  Envoy Gateway's request and response costs (``hits_addend``).

Fields 0.2.1 would act on but the embedded target does not interpret are refused, naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inferbox.embedded.eg_policies import ListenerSettings, listener_settings
from inferbox.embedded.gateway_plan import (
    ModelBackend,
    SecurityPlan,
    Unresolved,
    _security_for,
    parse_go_duration,
)
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.topology import ai_gateway_refs

AIGW_ROUTE = "AIGatewayRoute"
METADATA_NAMESPACE = "io.envoy.ai_gateway"
MODEL_HEADER = "x-ai-eg-model"
SELECTED_ROUTE_HEADER = "x-ai-eg-selected-route"
ORIGINAL_PATH_HEADER = "x-ai-eg-original-path"
DEFAULT_OWNED_BY = "Envoy AI Gateway"
COST_TYPES = ("InputToken", "OutputToken", "TotalToken")
RATE_UNITS = ("Second", "Minute", "Hour", "Day")
SVC_SUFFIX = ".svc.cluster.local"


@dataclass(frozen=True)
class AIRule:
    """One rule of an AIGatewayRoute, as the processor and the generated HTTPRoute see it."""

    name: str  # <route>-rule-<i>: the value of x-ai-eg-selected-route
    route: str  # namespace/name of the AIGatewayRoute
    index: int
    headers: tuple[tuple[str, str], ...]  # (header, value): the first header of each match, ORed
    backends: tuple[tuple[ModelBackend | Unresolved, int], ...]  # (backend, weight)
    timeout_s: float | None  # None: Envoy's default route timeout (15 s)
    owned_by: str
    created: int  # Unix time for /v1/models (the route's creation; 0 in manifests without one)

    def models(self) -> tuple[str, ...]:
        return tuple(value for name, value in self.headers if name == MODEL_HEADER)


@dataclass(frozen=True)
class RequestCost:
    metadata_key: str
    kind: str  # InputToken, OutputToken, TotalToken


@dataclass(frozen=True)
class Cost:
    """Envoy Gateway's rate-limit cost: a fixed number, or a number read from dynamic metadata."""

    number: int | None = None
    metadata: tuple[str, str] | None = None  # (namespace, key)


@dataclass(frozen=True)
class GlobalRule:
    """One global rate-limit rule of a BackendTrafficPolicy, as Envoy Gateway translates it."""

    policy: str  # namespace/name
    index: int
    shared: bool
    # (header, value) in the order of the clientSelectors; value None: Distinct (a bucket per value)
    headers: tuple[tuple[str, str | None], ...]
    requests: int
    unit: str  # Second, Minute, Hour, Day
    request_cost: Cost | None
    response_cost: Cost | None

    @property
    def name(self) -> str:
        return f"{self.policy}/rule/{self.index}"


@dataclass(frozen=True)
class RoutePolicies:
    """What secures and limits one generated HTTPRoute."""

    security: SecurityPlan | None
    rate_limits: tuple[GlobalRule, ...]


@dataclass
class AIGatewayPlan:
    gateway: str  # namespace/name
    listener: str  # Envoy Gateway's IR listener name: <namespace>/<gateway>/<listener>
    listener_port: int
    remove_request_headers: tuple[str, ...]
    rules: list[AIRule] = field(default_factory=list)
    costs: tuple[RequestCost, ...] = ()
    routes: dict[str, RoutePolicies] = field(default_factory=dict)  # AIGatewayRoute ns/name -> policies
    settings: ListenerSettings = field(default_factory=ListenerSettings)  # a ClientTrafficPolicy's

    def unreachable_route(self) -> str:
        """The AIGatewayRoute whose ``unreachable`` rule Envoy matches first: every generated route has
        the same catch-all, and Gateway API breaks the tie by age, then by namespace/name (manifests
        carry no creation time, so by name)."""
        return sorted(self.routes)[0]

    def models(self) -> list[str]:
        return [model for rule in self.rules for model in rule.models()]


def _error(obj: K8sObject, problem: str, fix: str) -> ManifestError:
    return ManifestError(f"{obj.source}: {obj.ref}: {problem}", fix)


def _model_of_host(host: str, port: int, manifests: ManifestSet) -> ModelBackend | Unresolved:
    """KServe's Service for an InferenceService: <isvc>.<ns> (ExternalName to Knative's local gateway)
    or the Knative route's <isvc>-predictor.<ns>; both reach the model's revisions on port 80."""
    labels = host.removesuffix(SVC_SUFFIX).split(".") if host.endswith(SVC_SUFFIX) else []
    if len(labels) == 2 and port == 80:
        name, namespace = labels
        for candidate in (name, name.removesuffix("-predictor")):
            if manifests.get("InferenceService", candidate, namespace) is not None:
                return ModelBackend(namespace, candidate)
    return Unresolved(f"no InferenceService answers at {host}:{port}")


def _backend(route: K8sObject, ref: dict[str, Any], manifests: ManifestSet) -> ModelBackend | Unresolved:
    namespace = route.namespace or "default"
    aisb = manifests.get("AIServiceBackend", ref["name"], namespace)
    if aisb is None:
        return Unresolved(f"AIServiceBackend {namespace}/{ref['name']} not found")
    spec = aisb.spec
    if (spec.get("schema") or {}).get("name") != "OpenAI":
        raise _error(aisb, "only the OpenAI output schema is interpreted", "use schema: {name: OpenAI}")
    target = spec.get("backendRef") or {}
    if target.get("kind") != "Backend" or target.get("group") != "gateway.envoyproxy.io":
        raise _error(
            aisb,
            f"backendRef of kind {target.get('kind')} is not interpreted: AI Gateway 0.2.1 counts tokens only for an "
            "Envoy Gateway Backend with an fqdn endpoint (a Service is routed without any token accounting)",
            "point backendRef at a gateway.envoyproxy.io Backend whose endpoint is the model's fqdn",
        )
    backend_ns = target.get("namespace", namespace)
    backend = manifests.get("Backend", target["name"], backend_ns)
    if backend is None:
        return Unresolved(f"Backend {backend_ns}/{target['name']} not found")
    if backend_ns != namespace:
        raise _error(aisb, "a Backend in another namespace is not interpreted", "keep the Backend beside the route")
    endpoints = backend.spec.get("endpoints") or []
    if len(endpoints) != 1 or "fqdn" not in endpoints[0]:
        raise _error(backend, "the embedded target interprets one fqdn endpoint", "use a single fqdn endpoint")
    fqdn = endpoints[0]["fqdn"]
    return _model_of_host(str(fqdn["hostname"]), int(fqdn["port"]), manifests)


def _unix_time(route: K8sObject, value: Any) -> int:
    """modelsCreatedAt (RFC 3339) as Unix time; without it, the route's creation time, which
    manifests do not carry (0)."""
    if value is None:
        return 0
    try:
        return int(datetime.fromisoformat(str(value)).timestamp())
    except ValueError as exc:
        raise _error(
            route, f"modelsCreatedAt {value!r} is not an RFC 3339 time", "use e.g. 2025-06-01T00:00:00Z"
        ) from exc


def _rule(route: K8sObject, index: int, rule: dict[str, Any], manifests: ManifestSet) -> AIRule:
    headers = []
    for match in rule.get("matches") or []:
        match_headers = match.get("headers") or []
        if len(match_headers) != 1:
            raise _error(
                route,
                f"rules[{index}]: a match with {len(match_headers)} headers; AI Gateway 0.2.1 uses only the first "
                "header of each match and silently ignores the others",
                "give each match exactly one header (several matches are ORed)",
            )
        header = match_headers[0]
        headers.append((str(header["name"]).lower(), str(header["value"])))
    backends: list[tuple[ModelBackend | Unresolved, int]] = []
    for ref in rule.get("backendRefs") or []:
        if int(ref.get("priority", 0)) != 0:
            raise _error(route, f"rules[{index}]: backendRefs priority is not interpreted", "remove priority")
        backends.append((_backend(route, ref, manifests), int(ref.get("weight", 1))))
    timeouts = rule.get("timeouts") or {}
    if "backendRequest" in timeouts:
        raise _error(route, f"rules[{index}]: timeouts.backendRequest is not interpreted", "use timeouts.request")
    timeout_s = parse_go_duration(str(timeouts["request"])) if "request" in timeouts else None
    return AIRule(
        name=f"{route.name}-rule-{index}",
        route=f"{route.namespace}/{route.name}",
        index=index,
        headers=tuple(headers),
        backends=tuple(backends),
        timeout_s=timeout_s,
        owned_by=str(rule.get("modelsOwnedBy", DEFAULT_OWNED_BY)),
        created=_unix_time(route, rule.get("modelsCreatedAt")),
    )


def _cost(policy: K8sObject, where: str, raw: dict[str, Any] | None) -> Cost | None:
    if raw is None:
        return None
    source = raw.get("from")
    if source == "Number":
        return Cost(number=int(raw.get("number", 0)))
    if source == "Metadata":
        metadata = raw.get("metadata") or {}
        return Cost(metadata=(str(metadata.get("namespace", "")), str(metadata.get("key", ""))))
    raise _error(policy, f"{where}.from {source!r} is not a cost source", "use Number or Metadata")


def _global_rules(policy: K8sObject) -> tuple[GlobalRule, ...]:
    rate_limit = policy.spec.get("rateLimit") or {}
    rules = []
    for index, rule in enumerate((rate_limit.get("global") or {}).get("rules") or []):
        headers: list[tuple[str, str | None]] = []
        for selector in rule.get("clientSelectors") or []:
            for header in selector.get("headers") or []:
                distinct = header.get("type") == "Distinct"
                headers.append((str(header["name"]).lower(), None if distinct else str(header["value"])))
        limit = rule["limit"]
        cost = rule.get("cost") or {}
        rules.append(
            GlobalRule(
                policy=f"{policy.namespace}/{policy.name}",
                index=index,
                shared=bool(rule.get("shared", False)),
                headers=tuple(headers),
                requests=int(limit["requests"]),
                unit=str(limit["unit"]),
                request_cost=_cost(policy, f"rules[{index}].cost.request", cost.get("request")),
                response_cost=_cost(policy, f"rules[{index}].cost.response", cost.get("response")),
            )
        )
    return tuple(rules)


def _targets(policy: K8sObject, kind: str, name: str) -> bool:
    return any(t.get("kind") == kind and t.get("name") == name for t in policy.spec.get("targetRefs") or [])


def _is_global(policy: K8sObject) -> bool:
    return (policy.spec.get("rateLimit") or {}).get("type") == "Global"


def _route_policies(route: K8sObject, gateway: K8sObject, manifests: ManifestSet) -> RoutePolicies:
    limiting = [p for p in manifests.of_kind("BackendTrafficPolicy") if "rateLimit" in p.spec]
    on_route = [p for p in limiting if p.namespace == route.namespace and _targets(p, "HTTPRoute", route.name)]
    on_gateway = [p for p in limiting if p.namespace == gateway.namespace and _targets(p, "Gateway", gateway.name)]
    chosen = on_route or on_gateway  # the more specific target wins
    for policy in chosen:
        if not _is_global(policy):
            raise _error(
                policy,
                "a local rate limit on the AI Gateway is not interpreted by the embedded target",
                "use a global rate limit (type: Global) for the AI Gateway",
            )
    rules = tuple(rule for policy in chosen for rule in _global_rules(policy))
    return RoutePolicies(_security_for(route, gateway, manifests), rules)


def check_global_rate_limits(manifests: ManifestSet) -> None:
    """A global rate limit is interpreted on the AI Gateway only: anywhere else it would be ignored."""
    ai_gateways = ai_gateway_refs(manifests)
    ai_routes = {(r.namespace, r.name) for r in manifests.of_kind(AIGW_ROUTE)}
    for policy in manifests.of_kind("BackendTrafficPolicy"):
        if not _is_global(policy):
            continue
        for ref in policy.spec.get("targetRefs") or []:
            key = (policy.namespace, ref.get("name"))
            if (ref.get("kind") == "Gateway" and key in ai_gateways) or (
                ref.get("kind") == "HTTPRoute" and key in ai_routes
            ):
                continue
            raise _error(
                policy,
                f"a global rate limit on {ref.get('kind')} {ref.get('name')} is not interpreted by the embedded "
                "target (it runs global rate limits on the AI Gateway and its routes only)",
                "use a local rate limit there, or run on a cluster (--platform kind/existing)",
            )


def _costs(routes: list[K8sObject]) -> tuple[RequestCost, ...]:
    costs: dict[str, RequestCost] = {}
    for route in routes:
        for cost in route.spec.get("llmRequestCosts") or []:
            kind = str(cost["type"])
            if kind not in COST_TYPES:
                raise _error(
                    route, f"llmRequestCosts type {kind} is not interpreted", f"use one of {', '.join(COST_TYPES)}"
                )
            # Merged over the Gateway's routes; the first route declaring a key wins (as in 0.2.1).
            costs.setdefault(str(cost["metadataKey"]), RequestCost(str(cost["metadataKey"]), kind))
    return tuple(costs.values())


def _check_route(route: K8sObject, gateway: K8sObject) -> None:
    spec = route.spec
    if (spec.get("schema") or {}).get("name") != "OpenAI":
        raise _error(route, "schema must be OpenAI (AI Gateway 0.2.1 accepts no other input schema)", "set it")
    filter_type = (spec.get("filterConfig") or {}).get("type", "ExternalProcessor")
    if filter_type != "ExternalProcessor":
        raise _error(route, f"filterConfig.type {filter_type} is not interpreted", "use ExternalProcessor")
    for ref in spec.get("targetRefs") or []:
        if ref.get("kind") != "Gateway" or ref.get("name") != gateway.name:
            raise _error(
                route,
                f"targetRefs names {ref.get('kind')} {ref.get('name')}; the embedded target runs one AI Gateway "
                f"({gateway.namespace}/{gateway.name})",
                "attach every AIGatewayRoute to the same Gateway",
            )


def plan_ai_gateway(manifests: ManifestSet) -> AIGatewayPlan | None:
    """The AI Gateway's routes, processor rules, security and token budgets; None without AIGatewayRoutes."""
    check_global_rate_limits(manifests)
    refs = ai_gateway_refs(manifests)
    if not refs:
        return None
    if len(refs) != 1:
        raise ManifestError(
            f"AIGatewayRoutes attach to {len(refs)} Gateways ({', '.join(sorted('/'.join(r) for r in refs))})",
            "the embedded target runs one AI Gateway: attach every AIGatewayRoute to the same Gateway",
        )
    namespace, name = next(iter(refs))
    gateway = manifests.get("Gateway", name, namespace)
    if gateway is None:
        raise ManifestError(f"AIGatewayRoutes attach to Gateway {namespace}/{name}, which is not defined", "add it")
    listeners = gateway.spec.get("listeners") or []
    if len(listeners) != 1:
        raise _error(gateway, "the embedded target supports one listener on the AI Gateway", "use one HTTP listener")
    allowed = ((listeners[0].get("allowedRoutes") or {}).get("namespaces") or {}).get("from", "Same")
    if allowed != "Same":
        raise _error(
            gateway,
            f"allowedRoutes.namespaces.from {allowed} is not interpreted on the AI Gateway",
            "use from: Same (AI Gateway writes its HTTPRoutes into the Gateway's namespace)",
        )
    removed = [
        h.lower()
        for ctp in manifests.of_kind("ClientTrafficPolicy")
        if ctp.namespace == gateway.namespace and _targets(ctp, "Gateway", gateway.name)
        for h in ((ctp.spec.get("headers") or {}).get("earlyRequestHeaders") or {}).get("remove") or []
    ]
    routes = sorted(manifests.of_kind(AIGW_ROUTE), key=lambda r: (r.namespace or "", r.name))
    plan = AIGatewayPlan(
        gateway=f"{namespace}/{name}",
        listener=f"{namespace}/{name}/{listeners[0]['name']}",
        listener_port=int(listeners[0]["port"]),
        remove_request_headers=tuple(removed),
        costs=_costs(routes),
        settings=listener_settings(gateway, manifests),
    )
    for route in routes:
        _check_route(route, gateway)
        for index, rule in enumerate(route.spec.get("rules") or []):
            plan.rules.append(_rule(route, index, rule, manifests))
        plan.routes[f"{route.namespace}/{route.name}"] = _route_policies(route, gateway, manifests)
    return plan
