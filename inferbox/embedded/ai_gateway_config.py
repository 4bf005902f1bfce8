"""The AI Gateway's Envoy configuration, its processor's rules and its rate-limit service's limits,
rendered from the AI Gateway plan (pure functions; ``inferbox.embedded.ai_gateway`` writes the files).

The filter chain is the one Envoy Gateway v1.4 builds for a Gateway with AI Gateway 0.2.1's
EnvoyExtensionPolicy, a SecurityPolicy and a global-rate-limit BackendTrafficPolicy, in Envoy
Gateway's order: ``jwt_authn`` -> ``ext_proc`` (AI Gateway's processor: buffered bodies, mode
override allowed, fail-closed, may write metadata namespace ``io.envoy.ai_gateway``) -> ``rbac`` ->
``ratelimit`` (a request cost and an ``apply_on_stream_done`` response cost, as ``hits_addend``) ->
``router``. The processor and the rate-limit service are gRPC servers on Unix sockets in the
gateway's pod, as AI Gateway's processor is a sidecar reached over a Unix socket.

Where this differs from a cluster, on purpose: both services here are Python stand-ins for Go
programs, so Envoy waits longer for them (``EXTPROC_MESSAGE_TIMEOUT``, ``RATELIMIT_TIMEOUT``) than
the defaults (200 ms, 20 ms) a cluster keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferbox.embedded.ai_gateway_plan import (
    METADATA_NAMESPACE,
    MODEL_HEADER,
    ORIGINAL_PATH_HEADER,
    SELECTED_ROUTE_HEADER,
    AIGatewayPlan,
    AIRule,
    Cost,
    GlobalRule,
    RoutePolicies,
)
from inferbox.embedded.eg_policies import ListenerSettings
from inferbox.embedded.envoy_common import (
    HCM_FILTER,
    JWT_FILTER,
    RBAC_FILTER,
    TYPES,
    Endpoint,
    socket_address,
    static_cluster,
    stdout_access_log,
)
from inferbox.embedded.gateway_config import (
    MeshUpstream,
    _mesh_transport,
    _rbac,
    cluster_name,
    eg_cluster_defaults,
    jwks_cluster_name,
)
from inferbox.embedded.gateway_plan import ModelBackend, Unresolved
from inferbox.embedded.jwt_authn import JwksSource, Provider, gateway_provider_config
from inferbox.embedded.xds_files import eds_path, path_config_source

EXTPROC_FILTER = "envoy.filters.http.ext_proc"
RATELIMIT_FILTER = "envoy.filters.http.ratelimit"
EXTPROC_CLUSTER = "ai-gateway-extproc-uds"
RATELIMIT_CLUSTER = "ratelimit_cluster"
EXTPROC_MESSAGE_TIMEOUT = "5s"
RATELIMIT_TIMEOUT = "2s"
LISTENER_NAME = "ai-gateway"
AI_TYPES = {
    "ext_proc": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
    "ratelimit": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
    "ratelimit_route": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute",
    "http_options": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
}
# A model's revisions and their traffic percentages (the serving control plane's answer).
Revisions = Callable[[ModelBackend], list[tuple[ModelBackend, int]]]


# -- the processor's rules (AI Gateway's filter config) ----------------------------------------------
def processor_config(plan: AIGatewayPlan) -> dict[str, Any]:
    """What AI Gateway's controller writes into the processor's filter-config Secret."""
    return {
        "uuid": plan.gateway.split("/")[1],
        "metadataNamespace": METADATA_NAMESPACE,
        "schema": {"name": "OpenAI"},
        "modelNameHeaderKey": MODEL_HEADER,
        "selectedRouteHeaderKey": SELECTED_ROUTE_HEADER,
        "originalPathHeaderKey": ORIGINAL_PATH_HEADER,
        "llmRequestCosts": [{"metadataKey": c.metadata_key, "type": c.kind} for c in plan.costs],
        "rules": [
            {
                "name": rule.name,
                "headers": [{"name": name, "value": value} for name, value in rule.headers],
                "backends": [{"name": _backend_name(b), "schema": {"name": "OpenAI"}} for b, _ in rule.backends],
                "modelsOwnedBy": rule.owned_by,
                "modelsCreatedAt": rule.created,
            }
            for rule in plan.rules
        ],
    }


def _backend_name(backend: ModelBackend | Unresolved) -> str:
    return f"{backend.namespace}/{backend.name}" if isinstance(backend, ModelBackend) else "unresolved"


# -- Envoy Gateway's global rate limit ------------------------------------------------------------
def route_name(route: str, rule: int) -> str:
    """Envoy Gateway's xDS route name for rule ``rule`` of the generated HTTPRoute ``route`` (ns/name)."""
    return f"httproute/{route}/rule/{rule}/match/0/*"


def _domain(plan: AIGatewayPlan, rule: GlobalRule) -> str:
    return rule.policy if rule.shared else plan.listener


def _domain_index(rules: tuple[GlobalRule, ...], rule: GlobalRule) -> int:
    """The rule's index among the rules of its domain (shared and unshared rules count apart)."""
    return sum(1 for o in rules if o.policy == rule.policy and o.shared == rule.shared and o.index < rule.index)


def _descriptor_key(index: int, match: int) -> str:
    return f"rule-{index}-match-{match}"


def _hits_addend(cost: Cost) -> dict[str, Any]:
    if cost.metadata is not None:
        namespace, key = cost.metadata
        return {"format": f"%DYNAMIC_METADATA({namespace}:{key})%"}
    return {"number": cost.number or 0}


def _rate_limit_actions(route: str, rules: tuple[GlobalRule, ...]) -> tuple[list[dict[str, Any]], bool]:
    """Envoy Gateway's rate-limit entries for one route, and whether any carries a cost."""
    entries: list[dict[str, Any]] = []
    costed = False
    for rule in rules:
        key = rule.name if rule.shared else route
        index = _domain_index(rules, rule)
        actions: list[dict[str, Any]] = [{"generic_key": {"descriptor_key": key, "descriptor_value": key}}]
        for match, (header, value) in enumerate(rule.headers):
            descriptor = _descriptor_key(index, match)
            if value is None:
                actions.append({"request_headers": {"header_name": header, "descriptor_key": descriptor}})
            else:
                actions.append(
                    {
                        "header_value_match": {
                            "descriptor_key": descriptor,
                            "descriptor_value": descriptor,
                            "expect_match": True,
                            "headers": [{"name": header, "string_match": {"exact": value}}],
                        }
                    }
                )
        if not rule.headers:
            descriptor = _descriptor_key(index, -1)
            actions.append({"generic_key": {"descriptor_key": descriptor, "descriptor_value": descriptor}})
        entry: dict[str, Any] = {"actions": actions}
        if rule.request_cost is not None:
            entry["hits_addend"] = _hits_addend(rule.request_cost)
            costed = True
        entries.append(entry)
        if rule.response_cost is not None:
            entries.append(
                {"actions": actions, "apply_on_stream_done": True, "hits_addend": _hits_addend(rule.response_cost)}
            )
            costed = True
    return entries, costed


def _filter_name(rules: tuple[GlobalRule, ...]) -> str:
    shared = [r for r in rules if r.shared]
    return f"{RATELIMIT_FILTER}/{shared[0].policy}" if shared else RATELIMIT_FILTER


def _service_descriptor(rule: GlobalRule, index: int) -> dict[str, Any]:
    """The chain of descriptors the rate-limit service matches for one rule (innermost has the limit)."""
    chain: list[dict[str, Any]] = []
    for match, (_, value) in enumerate(rule.headers):
        descriptor = _descriptor_key(index, match)
        chain.append({"key": descriptor} if value is None else {"key": descriptor, "value": descriptor})
    if not rule.headers:
        descriptor = _descriptor_key(index, -1)
        chain.append({"key": descriptor, "value": descriptor})
    chain[-1]["rate_limit"] = {"unit": rule.unit.upper(), "requests_per_unit": rule.requests}
    for outer, inner in zip(reversed(chain[:-1]), reversed(chain[1:]), strict=True):
        outer["descriptors"] = [inner]
    return chain[0]


def ratelimit_config(plan: AIGatewayPlan) -> list[dict[str, Any]]:
    """The rate-limit service's configuration, in envoyproxy/ratelimit's format (one per domain)."""
    domains: dict[str, list[dict[str, Any]]] = {}
    for route, policies in sorted(plan.routes.items()):
        rule_indexes = sorted({r.index for r in plan.rules if r.route == route})
        for rule in policies.rate_limits:
            domain = domains.setdefault(_domain(plan, rule), [])
            keys = [rule.name] if rule.shared else [route_name(route, i) for i in rule_indexes]
            for key in keys:
                top = next((d for d in domain if d["key"] == key), None)
                if top is None:
                    top = {"key": key, "value": key, "descriptors": []}
                    domain.append(top)
                descriptor = _service_descriptor(rule, _domain_index(policies.rate_limits, rule))
                if descriptor not in top["descriptors"]:
                    top["descriptors"].append(descriptor)
    return [{"domain": name, "descriptors": descriptors} for name, descriptors in sorted(domains.items())]


# -- Envoy ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AIGatewayInputs:
    plan: AIGatewayPlan
    public_port: int  # on the host's 127.0.0.1
    host_netns: str | None
    xds_dir: Path  # where the model revisions' EDS files are (shared with the inference gateway)
    processor_socket: Path
    ratelimit_socket: Path
    revisions: Revisions
    service_endpoints: Mapping[str, list[Endpoint]] = field(default_factory=dict)  # JWKS clusters
    mesh: MeshUpstream | None = None
    jwt_clock_skew_s: int | None = None


@dataclass(frozen=True)
class AIGatewayConfig:
    listener: dict[str, Any]
    clusters: list[dict[str, Any]]
    eds_clusters: tuple[str, ...]  # model revision clusters whose EDS files must exist


def _grpc_cluster(name: str, socket: Path) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": AI_TYPES["http_options"],
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": str(socket)}}}}]}],
        },
    }


def jwks_sources(plan: AIGatewayPlan) -> dict[str, JwksSource]:
    """The clusters (Envoy Gateway's names) the AI Gateway's JWT providers fetch their keys from."""
    return {
        jwks_cluster_name(p.jwks_uri): JwksSource.of(p.jwks_uri)
        for policies in plan.routes.values()
        if policies.security
        for p in policies.security.providers
    }


def _jwt_filter(plan: AIGatewayPlan, clock_skew_s: int | None) -> dict[str, Any] | None:
    providers: dict[str, Any] = {}
    requirements: dict[str, Any] = {}
    for route, policies in plan.routes.items():
        security = policies.security
        if security is None or not security.providers:
            continue
        # Envoy Gateway names a provider <route>/<provider> and keeps its payload under <provider>.
        for provider in security.providers:
            providers[f"{route}/{provider.name}"] = gateway_provider_config(
                Provider(
                    jwks=JwksSource.of(provider.jwks_uri),
                    jwks_cluster=jwks_cluster_name(provider.jwks_uri),
                    payload_key=provider.name,
                    issuer=provider.issuer,
                    audiences=provider.audiences,
                    forward=True,
                    claim_to_headers=provider.claim_to_headers,
                    clock_skew_s=clock_skew_s,
                ),
                provider.extract_from,
            )
        names: list[dict[str, Any]] = [{"provider_name": f"{route}/{p.name}"} for p in security.providers]
        if security.jwt_optional:
            names.append({"allow_missing": {}})
        requirements[route] = names[0] if len(names) == 1 else {"requires_any": {"requirements": names}}
    if not providers:
        return None
    return {
        "name": JWT_FILTER,
        "typed_config": {"@type": TYPES["jwt"], "providers": providers, "requirement_map": requirements},
    }


def _ratelimit_filters(plan: AIGatewayPlan) -> list[dict[str, Any]]:
    filters: dict[str, dict[str, Any]] = {}
    for policies in plan.routes.values():
        if not policies.rate_limits:
            continue
        name = _filter_name(policies.rate_limits)
        filters[name] = {
            "name": name,
            "typed_config": {
                "@type": AI_TYPES["ratelimit"],
                "domain": _domain(plan, policies.rate_limits[0]),
                "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
                "timeout": RATELIMIT_TIMEOUT,
                "rate_limit_service": {
                    "transport_api_version": "V3",
                    "grpc_service": {"envoy_grpc": {"cluster_name": RATELIMIT_CLUSTER}},
                },
            },
        }
    return [filters[name] for name in sorted(filters)]


def _extproc_filter() -> dict[str, Any]:
    return {
        "name": EXTPROC_FILTER,
        "typed_config": {
            "@type": AI_TYPES["ext_proc"],
            "grpc_service": {"envoy_grpc": {"cluster_name": EXTPROC_CLUSTER}},
            "failure_mode_allow": False,
            "allow_mode_override": True,
            "message_timeout": EXTPROC_MESSAGE_TIMEOUT,
            "processing_mode": {
                "request_header_mode": "SEND",
                "response_header_mode": "SEND",
                "request_body_mode": "BUFFERED",
                "response_body_mode": "BUFFERED",
            },
            "metadata_options": {"receiving_namespaces": {"untyped": [METADATA_NAMESPACE]}},
        },
    }


def _per_filter(route: str, policies: RoutePolicies, xds_name: str) -> dict[str, Any]:
    per_filter: dict[str, Any] = {}
    if policies.security and policies.security.providers:
        per_filter[JWT_FILTER] = {"@type": TYPES["jwt_route"], "requirement_name": route}
    else:
        per_filter[JWT_FILTER] = {"@type": TYPES["jwt_route"], "disabled": True}
    if policies.security and policies.security.authorization:
        per_filter[RBAC_FILTER] = _rbac(policies.security.authorization)
    entries, costed = _rate_limit_actions(xds_name, policies.rate_limits)
    if entries and costed:
        per_filter[_filter_name(policies.rate_limits)] = {
            "@type": AI_TYPES["ratelimit_route"],
            "rate_limits": entries,
        }
    return per_filter


def _target(rule: AIRule, revisions: Revisions) -> tuple[dict[str, Any], list[str]]:
    """The route action's target: the model revisions (weights times traffic percentages)."""
    clusters: list[tuple[str, int]] = []
    for backend, weight in rule.backends:
        if isinstance(backend, Unresolved):
            continue
        clusters += [(cluster_name(rev), weight * percent) for rev, percent in revisions(backend) if weight * percent]
    if not clusters:
        return {"cluster": "ai-gateway-unresolved"}, []
    if len(clusters) == 1:
        return {"cluster": clusters[0][0]}, [clusters[0][0]]
    return {"weighted_clusters": {"clusters": [{"name": n, "weight": w} for n, w in clusters]}}, [
        n for n, _ in clusters
    ]


def _routes(plan: AIGatewayPlan, revisions: Revisions) -> tuple[list[dict[str, Any]], list[str]]:
    routes: list[dict[str, Any]] = []
    models: list[str] = []
    for rule in plan.rules:
        policies = plan.routes[rule.route]
        xds_name = route_name(rule.route, rule.index)
        target, used = _target(rule, revisions)
        models += used
        action: dict[str, Any] = dict(target)
        if rule.timeout_s is not None:
            action["timeout"] = f"{rule.timeout_s:g}s"
        entries, costed = _rate_limit_actions(xds_name, policies.rate_limits)
        if entries and not costed:
            # Without costs Envoy Gateway puts the entries on the route; with costs, per filter.
            action["rate_limits"] = entries
        routes.append(
            {
                "name": xds_name,
                "match": {
                    "prefix": "/",
                    "headers": [{"name": SELECTED_ROUTE_HEADER, "string_match": {"exact": rule.name}}],
                },
                "route": action,
                "typed_per_filter_config": _per_filter(rule.route, policies, xds_name),
            }
        )
    if plan.routes:
        # Every generated HTTPRoute ends with a rule without backends matching everything; the first
        # one wins the tie, and Envoy Gateway answers a rule without backends with a 500.
        owner = plan.unreachable_route()
        count = sum(1 for r in plan.rules if r.route == owner)
        name = route_name(owner, count)
        routes.append(
            {
                "name": name,
                "match": {"prefix": "/"},
                "direct_response": {"status": 500},
                "typed_per_filter_config": _per_filter(owner, plan.routes[owner], name),
            }
        )
    return routes, sorted(set(models))


def _model_cluster(name: str, inputs: AIGatewayInputs) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "EDS",
        "connect_timeout": "2s",
        "eds_cluster_config": {"eds_config": path_config_source(eds_path(inputs.xds_dir, name), inputs.xds_dir)},
    }
    if inputs.mesh is not None:
        cluster["transport_socket_matches"] = _mesh_transport(inputs.mesh, name)
    return cluster


def render_ai_gateway(inputs: AIGatewayInputs) -> AIGatewayConfig:
    """The AI Gateway's listener and the clusters it needs (its services, models and JWKS)."""
    plan = inputs.plan
    routes, models = _routes(plan, inputs.revisions)
    filters: list[dict[str, Any]] = []
    if jwt := _jwt_filter(plan, inputs.jwt_clock_skew_s):
        filters.append(jwt)
    filters.append(_extproc_filter())
    filters.append({"name": RBAC_FILTER, "typed_config": {"@type": TYPES["rbac"]}})
    filters += _ratelimit_filters(plan)
    filters.append({"name": "envoy.filters.http.router", "typed_config": {"@type": TYPES["router"]}})
    settings: ListenerSettings = plan.settings
    hcm: dict[str, Any] = {
        "@type": TYPES["hcm"],
        "stat_prefix": LISTENER_NAME,
        "http_filters": filters,
        "access_log": stdout_access_log(),
        # Envoy Gateway's connection manager (listener.go), as on the inference gateway.
        "use_remote_address": True,
        "server_header_transformation": "PASS_THROUGH",
        "normalize_path": True,
        "merge_slashes": settings.merge_slashes,
        "path_with_escaped_slashes_action": settings.escaped_slashes_action,
        "common_http_protocol_options": {"headers_with_underscores_action": settings.headers_with_underscores_action},
        "route_config": {"name": LISTENER_NAME, "virtual_hosts": [{"name": "ai", "domains": ["*"], "routes": routes}]},
    }
    if plan.remove_request_headers:
        hcm["early_header_mutation_extensions"] = [
            {
                "name": "envoy.http.early_header_mutation.header_mutation",
                "typed_config": {
                    "@type": TYPES["early"],
                    "mutations": [{"remove": h} for h in plan.remove_request_headers],
                },
            }
        ]
    listener = {
        "name": LISTENER_NAME,
        "address": socket_address("127.0.0.1", inputs.public_port, inputs.host_netns),
        "filter_chains": [{"filters": [{"name": HCM_FILTER, "typed_config": hcm}]}],
    }
    clusters = [
        _grpc_cluster(EXTPROC_CLUSTER, inputs.processor_socket),
        _grpc_cluster(RATELIMIT_CLUSTER, inputs.ratelimit_socket),
        static_cluster("ai-gateway-unresolved", []),
    ]
    clusters += [_model_cluster(name, inputs) for name in models]
    clusters += [
        {**static_cluster(name, list(inputs.service_endpoints.get(name, []))), **eg_cluster_defaults()}
        for name in sorted(jwks_sources(plan))
    ]
    return AIGatewayConfig(listener, clusters, tuple(models))


def add_to_bootstrap(bootstrap: dict[str, Any], config: AIGatewayConfig) -> None:
    """Adds the AI Gateway's listener, and the clusters the bootstrap does not have yet."""
    resources = bootstrap["static_resources"]
    resources["listeners"].append(config.listener)
    have = {c["name"] for c in resources["clusters"]}
    resources["clusters"] += [c for c in config.clusters if c["name"] not in have]
