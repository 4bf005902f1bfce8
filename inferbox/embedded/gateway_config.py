"""The embedded gateway's Envoy configuration, rendered from the gateway plan: a pure function of
its inputs (files are written by ``inferbox.embedded.gateway``).

Model clusters take their endpoints from filesystem EDS and, with revisions, the route
configuration comes from filesystem RDS (``xds_files``), so replicas and traffic splits change
without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferbox.embedded.envoy_common import (
    BUFFER_FILTER,
    FAULT_FILTER,
    HCM_FILTER,
    ISTIO_TLS_MODE,
    JWT_FILTER,
    LUA_FILTER,
    RATELIMIT_FILTER,
    RBAC_FILTER,
    TYPES,
    UNLIMITED,
    Endpoint,
    connection_limit_runtime,
    router_filter,
    socket_address,
    static_cluster,
    stdout_access_log,
)
from inferbox.embedded.envoy_patch import LISTENER_TYPE, PolicyStatus, apply_patch_policies
from inferbox.embedded.gateway_plan import (
    Authorization,
    FaultPlan,
    GatewayPlan,
    ModelBackend,
    Principal,
    Resilience,
    RetryPlan,
    RoutePlan,
    SecurityPlan,
    ServiceBackend,
    Unresolved,
)
from inferbox.embedded.jwt_authn import JwksSource, Provider, gateway_provider_config
from inferbox.embedded.outliers import OutlierPlan
from inferbox.embedded.xds_files import eds_path, path_config_source, rds_path

__all__ = ["FAULT_FILTER", "ISTIO_TLS_MODE", "JWT_FILTER"]

# Envoy Gateway's local rate limiter stat prefix, on the listener and on each route.
RATELIMIT_STAT_PREFIX = "http_local_rate_limiter"


def cluster_name(backend: ServiceBackend | ModelBackend) -> str:
    if isinstance(backend, ModelBackend):
        suffix = f"__{backend.revision}" if backend.revision else ""
        return f"isvc__{backend.namespace}__{backend.name}{suffix}"
    return f"svc__{backend.namespace}__{backend.name}__{backend.port}"


# A model's revisions and their traffic percentages: how KServe/Knative split a model's traffic.
Revisions = Callable[[ModelBackend], list[tuple[ModelBackend, int]]]


def _path_match(route: RoutePlan) -> dict[str, Any]:
    if route.path_type == "Exact":
        return {"path": route.path}
    prefix = route.path.rstrip("/")
    return {"prefix": "/"} if not prefix else {"path_separated_prefix": prefix}


def _claim_path(provider_name: str, claim: str) -> list[dict[str, str]]:
    return [{"key": provider_name}, *({"key": part} for part in claim.split("."))]


def _principal(principal: Principal) -> dict[str, Any]:
    ids: list[dict[str, Any]] = []
    for claim, values in principal.claims:
        assert principal.provider_key is not None
        alternatives = [
            {
                "metadata": {
                    "filter": JWT_FILTER,
                    "path": _claim_path(principal.provider_key, claim),
                    "value": {"string_match": {"exact": value}},
                }
            }
            for value in values
        ]
        ids.append(alternatives[0] if len(alternatives) == 1 else {"or_ids": {"ids": alternatives}})
    if principal.provider_key and not principal.claims:
        # A JWT principal without claims: any token verified by that provider.
        ids.append(
            {
                "metadata": {
                    "filter": JWT_FILTER,
                    "path": [{"key": principal.provider_key}],
                    "value": {"present_match": True},
                }
            }
        )
    for name, values in principal.headers:
        matches = [{"header": {"name": name, "string_match": {"exact": value}}} for value in values]
        ids.append(matches[0] if len(matches) == 1 else {"or_ids": {"ids": matches}})
    if not ids:
        return {"any": True}
    return ids[0] if len(ids) == 1 else {"and_ids": {"ids": ids}}


def _rbac(authz: Authorization) -> dict[str, Any]:
    # Only rules whose action differs from the default are allowed (checked in the plan), so the
    # decision is: default unless some rule matches.
    action = "DENY" if authz.default_allow else "ALLOW"
    policies = {
        name or f"rule-{i}": {"permissions": [{"any": True}], "principals": [_principal(p)]}
        for i, (name, _, p) in enumerate(authz.rules)
    }
    return {"@type": TYPES["rbac_route"], "rbac": {"rules": {"action": action, "policies": policies}}}


def _rule_descriptor(rule: int, match: int) -> str:
    # Envoy Gateway's descriptor key and value for a header match of a rate-limit rule.
    return f"rule-{rule}-match-{match}"


def _token_bucket(requests: int, seconds: int) -> dict[str, Any]:
    return {"max_tokens": requests, "tokens_per_fill": requests, "fill_interval": f"{seconds}s"}


def _rate_limit(route: RoutePlan) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The per-route local rate limit and the route action's rate_limits, as Envoy Gateway builds
    them (local_ratelimit.go): one descriptor per rule, keyed rule-<r>-match-<m>; a rule without
    client selectors is the default bucket; no x-ratelimit headers."""
    descriptors, actions = [], []
    default = _token_bucket(UNLIMITED, 1)
    for index, rule in enumerate(route.rate_limits):
        if not rule.headers:
            default = _token_bucket(rule.requests, rule.per_seconds)
            continue
        entries, rule_actions = [], []
        for match, (name, value) in enumerate(rule.headers):
            key = _rule_descriptor(index, match)
            entries.append({"key": key, "value": key})
            rule_actions.append(
                {
                    "header_value_match": {
                        "descriptor_key": key,
                        "descriptor_value": key,
                        "expect_match": True,
                        "headers": [{"name": name, "string_match": {"exact": value}}],
                    }
                }
            )
        descriptors.append({"entries": entries, "token_bucket": _token_bucket(rule.requests, rule.per_seconds)})
        actions.append({"actions": rule_actions})
    percent = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    config = {
        "@type": TYPES["ratelimit"],
        "stat_prefix": RATELIMIT_STAT_PREFIX,
        "token_bucket": default,
        "filter_enabled": percent,
        "filter_enforced": percent,
        "descriptors": descriptors,
        "always_consume_default_token_bucket": False,
    }
    return config, actions


def _million(percent: float) -> dict[str, Any]:
    # Envoy Gateway's conversion: a percentage with 0.0001 % accuracy, out of a million.
    return {"numerator": round(percent * 10000), "denominator": "MILLION"}


def _fault(fault: FaultPlan) -> dict[str, Any]:
    """The fault filter's per-route configuration for a route's faultInjection."""
    config: dict[str, Any] = {"@type": TYPES["fault"]}
    if fault.delay_s is not None:
        config["delay"] = {"fixed_delay": f"{fault.delay_s:.9f}s", "percentage": _million(fault.delay_percent)}
    if fault.abort_status is not None:
        config["abort"] = {"http_status": fault.abort_status, "percentage": _million(fault.abort_percent)}
    return config


def _expand(
    resolved: list[tuple[ServiceBackend | ModelBackend, int]], revisions: Revisions | None
) -> list[tuple[ServiceBackend | ModelBackend, int]]:
    """Model backends become their revisions, weights multiplied by the revisions' percentages."""
    if revisions is None:
        return resolved
    out: list[tuple[ServiceBackend | ModelBackend, int]] = []
    for backend, weight in resolved:
        if isinstance(backend, ModelBackend) and not backend.revision:
            out.extend((rev, weight * percent) for rev, percent in revisions(backend) if weight * percent > 0)
        else:
            out.append((backend, weight))
    return out


def _route_action(route: RoutePlan, revisions: Revisions | None = None) -> dict[str, Any]:
    resolved = [(b.backend, b.weight) for b in route.backends if not isinstance(b.backend, Unresolved)]
    unresolved = [b.backend for b in route.backends if isinstance(b.backend, Unresolved)]
    if unresolved or not resolved:
        # Envoy Gateway answers a rule with an unresolved backend 500, without a body.
        return {"direct_response": {"status": 500}}
    resolved = _expand(resolved, revisions)
    if not resolved:
        # No revision has a share: Envoy Gateway's answer when no endpoint serves (500, no body).
        return {"direct_response": {"status": 500}}
    if len(resolved) == 1:
        target: dict[str, Any] = {"cluster": cluster_name(resolved[0][0])}
    else:
        target = {"weighted_clusters": {"clusters": [{"name": cluster_name(b), "weight": w} for b, w in resolved]}}
    action: dict[str, Any] = {**target, "upgrade_configs": [{"upgrade_type": "websocket"}]}
    action.update(_route_timeouts(route))
    if route.rate_limits:
        action["rate_limits"] = _rate_limit(route)[1]
    return {"route": action}


def _route_timeouts(route: RoutePlan) -> dict[str, Any]:
    """Envoy Gateway's route timeout (HTTPRoute timeouts): none at all leaves Envoy's 15 s default;
    with one, the route's idle timeout is at least an hour (disabled with the timeout)."""
    if route.timeout_s is None:
        return {}
    idle = 0.0 if route.timeout_s == 0 else max(3600.0, route.timeout_s)
    return {"timeout": _duration(route.timeout_s), "idle_timeout": _duration(idle)}


def _duration(seconds: float) -> str:
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def _per_filter(route: RoutePlan) -> dict[str, Any]:
    """The route's filter configuration; a filter with nothing to do on a route gets none (as in
    Envoy Gateway: a route without JWT has no jwt_authn requirement, so no token is verified)."""
    per_filter: dict[str, Any] = {}
    if route.security and route.security.providers:
        per_filter[JWT_FILTER] = {"@type": TYPES["jwt_route"], "requirement_name": route.key}
    if route.request_buffer_bytes is not None:
        per_filter[BUFFER_FILTER] = {
            "@type": TYPES["buffer_route"],
            "buffer": {"max_request_bytes": route.request_buffer_bytes},
        }
    for lua in route.luas:
        per_filter[f"{LUA_FILTER}/{lua.name}"] = {"@type": TYPES["filter_config"], "config": {}}
    if route.security and route.security.authorization:
        per_filter[RBAC_FILTER] = _rbac(route.security.authorization)
    if route.rate_limits:
        per_filter[RATELIMIT_FILTER] = _rate_limit(route)[0]
    if route.fault:
        per_filter[FAULT_FILTER] = _fault(route.fault)
    return per_filter


def _envoy_route(route: RoutePlan, revisions: Revisions | None = None) -> dict[str, Any]:
    action = _route_action(route, revisions)
    if "route" in action and route.resilience and route.resilience.retry:
        action["route"]["retry_policy"] = retry_policy(route.resilience.retry)
    return {
        "name": route.key,
        "match": _path_match(route),
        **action,
        "typed_per_filter_config": _per_filter(route),
    }


def _route_order(route: RoutePlan) -> tuple[int, int]:
    # Gateway API precedence: exact paths first, then longer prefixes.
    return (0 if route.path_type == "Exact" else 1, -len(route.path))


def provider_key(route: RoutePlan, provider_name: str) -> str:
    """Envoy Gateway's jwt_authn provider name: one provider per route and SecurityPolicy provider."""
    return f"{route.key}/{provider_name}"


def _requirement(route: RoutePlan, security: SecurityPlan) -> dict[str, Any]:
    names = [{"provider_name": provider_key(route, p.name)} for p in security.providers]
    if security.jwt_optional:
        names.append({"allow_missing": {}})  # type: ignore[dict-item]
    return names[0] if len(names) == 1 else {"requires_any": {"requirements": names}}


@dataclass(frozen=True)
class MeshUpstream:
    """The gateway's mesh identity for model clusters: mutual TLS to endpoints marked tlsMode=istio."""

    cert: str
    key: str
    trust_bundle: str
    identities: dict[str, str]  # model cluster name -> the SPIFFE ID its workloads must present


UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def _mesh_transport(mesh: MeshUpstream, cluster: str) -> list[dict[str, Any]]:
    validation: dict[str, Any] = {"trusted_ca": {"filename": mesh.trust_bundle}}
    if cluster in mesh.identities:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": mesh.identities[cluster]}}
        ]
    tls = {
        "@type": UPSTREAM_TLS,
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": mesh.cert}, "private_key": {"filename": mesh.key}}],
            "validation_context": validation,
        },
    }
    return [
        {
            "name": "mesh-mtls",
            "match": ISTIO_TLS_MODE,
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
        }
    ]


@dataclass
class GatewayPorts:
    public: int  # on the host's 127.0.0.1
    admin: int  # on the host's 127.0.0.1
    pod_ip: str | None  # the gateway pod's own address, when pods are namespaces
    pod_port: int
    admin_internal: int = 0  # Envoy's admin inside the gateway's namespace (namespaced pods only)


def admin_proxy_listener(
    name: str, host_port: int, host_netns: str, admin_port: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A host-facing, read-only (GET) listener in front of an Envoy admin bound inside a namespace.

    Envoy binds its admin interface in its own namespace only, so this is how the host reads
    /ready and /stats/prometheus (Istio exposes its stats port the same way).
    """
    cluster = f"{name}-admin"
    route = {
        "match": {"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
        "route": {"cluster": cluster},
    }
    hcm = {
        "@type": TYPES["hcm"],
        "stat_prefix": f"{name}_admin",
        "route_config": {"virtual_hosts": [{"name": "admin", "domains": ["*"], "routes": [route]}]},
        "http_filters": [router_filter()],
    }
    listener = {
        "name": f"{name}-admin",
        "address": socket_address("127.0.0.1", host_port, host_netns),
        "filter_chains": [{"filters": [{"name": HCM_FILTER, "typed_config": hcm}]}],
    }
    return listener, static_cluster(cluster, [("127.0.0.1", admin_port)], "1s")


def render_routes(plan: GatewayPlan, revisions: Revisions | None = None) -> dict[str, Any]:
    """The gateway's route configuration, named and shaped as Envoy Gateway's: a virtual host
    ``<listener>/<host with . as _>`` per host name, routes in Gateway API precedence."""
    vhosts: dict[str, list[RoutePlan]] = {}
    for route in plan.routes:
        for host in route.hostnames:
            vhosts.setdefault(host, []).append(route)
    virtual_hosts = [
        {
            "name": f"{plan.listener_name}/{host.replace('.', '_')}",
            "domains": [host],
            "routes": [_envoy_route(r, revisions) for r in sorted(routes, key=_route_order)],
        }
        for host, routes in sorted(vhosts.items())
    ]
    return {"name": route_config_name(plan), "virtual_hosts": virtual_hosts, "ignore_port_in_host_matching": True}


def route_config_name(plan: GatewayPlan) -> str:
    """Envoy Gateway names the route configuration after its listener."""
    return plan.listener_name


def listener_port(plan: GatewayPlan) -> int:
    """The port Envoy Gateway's proxy listens on: a privileged Gateway port plus 10000."""
    return plan.listener_port + 10000 if plan.listener_port < 1024 else plan.listener_port


def model_clusters(plan: GatewayPlan, revisions: Revisions | None = None) -> list[str]:
    """Names of the EDS clusters of the plan's models (one per revision when ``revisions`` is given)."""
    names: set[str] = set()
    for route in plan.routes:
        for weighted in route.backends:
            if isinstance(weighted.backend, ModelBackend):
                expanded = revisions(weighted.backend) if revisions else [(weighted.backend, 1)]
                names.update(cluster_name(rev) for rev, _ in expanded)
    return sorted(names)


@dataclass(frozen=True)
class GatewayInputs:
    """Everything the gateway's configuration depends on."""

    plan: GatewayPlan
    ports: GatewayPorts
    xds_dir: Path  # where the EDS (and RDS) files live; nothing is written by the builder
    # Endpoints of each Service cluster (route backends and JWKS services), by cluster name.
    service_endpoints: Mapping[str, list[Endpoint]] = field(default_factory=dict)
    host_netns: str | None = None  # the host's network namespace, for host-facing listeners
    mesh: MeshUpstream | None = None
    revisions: Revisions | None = None
    rds: bool = False  # routes from filesystem RDS (a changed split applies without a restart)
    jwt_clock_skew_s: int | None = None  # a target knob; None: Envoy's default
    # A target knob: the gateway leaves paths as sent (Envoy Gateway always normalises them).
    skip_path_normalization: bool = False
    jwks_cache_s: int | None = None  # a target knob (see Knobs.jwks_cache_s)
    jwks_fail_open: bool = False  # a target knob (see Knobs.jwks_fail_open)


@dataclass(frozen=True)
class GatewayConfig:
    bootstrap: dict[str, Any]
    routes: dict[str, Any]  # the route configuration (inline in the bootstrap unless served by RDS)
    eds_clusters: tuple[str, ...]  # model clusters whose endpoints come from EDS files
    # Every EnvoyPatchPolicy's status, as Envoy Gateway would write it.
    patch_statuses: tuple[PolicyStatus, ...] = ()


def service_backends(plan: GatewayPlan) -> dict[str, ServiceBackend]:
    """Every Service the gateway sends to (route backends and JWKS services), by cluster name."""
    services: dict[str, ServiceBackend] = {}
    for route in plan.routes:
        for weighted in route.backends:
            if isinstance(weighted.backend, ServiceBackend):
                services[cluster_name(weighted.backend)] = weighted.backend
        for provider in route.security.providers if route.security else ():
            source = JwksSource.of(provider.jwks_uri)
            services[jwks_cluster_name(provider.jwks_uri)] = ServiceBackend(
                source.namespace, source.service, source.port
            )
    return services


def jwks_cluster_name(uri: str) -> str:
    """Envoy Gateway's cluster for a remote JWKS URI: <host with . as _>_<port>."""
    source = JwksSource.of(uri)
    host = uri.split("://", 1)[-1].split("/", 1)[0].partition(":")[0]
    return f"{host.replace('.', '_')}_{source.port}"


def _jwt_filter(plan: GatewayPlan, inputs: GatewayInputs) -> dict[str, Any] | None:
    """jwt_authn as Envoy Gateway builds it (jwt.go): a provider per route and SecurityPolicy
    provider, named <route>/<provider>, and a requirement per route."""
    providers: dict[str, Any] = {}
    requirements: dict[str, Any] = {}
    for route in plan.routes:
        if not route.security or not route.security.providers:
            continue
        for provider in route.security.providers:
            providers[provider_key(route, provider.name)] = gateway_provider_config(
                Provider(
                    jwks=JwksSource.of(provider.jwks_uri),
                    jwks_cluster=jwks_cluster_name(provider.jwks_uri),
                    payload_key=provider.name,
                    issuer=provider.issuer,
                    audiences=tuple(provider.audiences),
                    forward=True,
                    claim_to_headers=tuple(provider.claim_to_headers),
                    clock_skew_s=inputs.jwt_clock_skew_s,
                    jwks_cache_s=inputs.jwks_cache_s,
                ),
                provider.extract_from,
            )
        requirements[route.key] = _requirement(route, route.security)
        if inputs.jwks_fail_open:
            requirements[route.key] = _fail_open(requirements[route.key])
    if not providers:
        return None
    return {
        "name": JWT_FILTER,
        "typed_config": {"@type": TYPES["jwt"], "providers": providers, "requirement_map": requirements},
    }


def _lua_filters(plan: GatewayPlan) -> list[dict[str, Any]]:
    """An EnvoyExtensionPolicy's Lua scripts: disabled on the listener, enabled per route (lua.go)."""
    found: dict[str, dict[str, Any]] = {}
    for route in plan.routes:
        for lua in route.luas:
            found.setdefault(
                lua.name,
                {
                    "name": f"{LUA_FILTER}/{lua.name}",
                    "disabled": True,
                    "typed_config": {"@type": TYPES["lua"], "default_source_code": {"inline_string": lua.code}},
                },
            )
    return list(found.values())


def _buffer_filter(plan: GatewayPlan) -> list[dict[str, Any]]:
    """A requestBuffer: the buffer filter, disabled on the listener with the first route's limit,
    enabled per route with its own (request_buffer.go)."""
    for route in plan.routes:
        if route.request_buffer_bytes is not None:
            config = {"@type": TYPES["buffer"], "max_request_bytes": route.request_buffer_bytes}
            return [{"name": BUFFER_FILTER, "disabled": True, "typed_config": config}]
    return []


def _fail_open(requirement: dict[str, Any]) -> dict[str, Any]:
    """A deliberately broken requirement (a target knob): a token that cannot be verified, also for
    want of keys, lets the request through unverified."""
    return {"requires_any": {"requirements": [requirement, {"allow_missing_or_failed": {}}]}}


def _http_filters(plan: GatewayPlan, inputs: GatewayInputs) -> list[dict[str, Any]]:
    """The filters in Envoy Gateway's order (httpfilters.go): fault, jwt_authn, buffer, lua, rbac,
    local_ratelimit, router."""
    filters: list[dict[str, Any]] = []
    if any(r.fault for r in plan.routes):
        # An empty default; the faults themselves are per route.
        filters.append({"name": FAULT_FILTER, "typed_config": {"@type": TYPES["fault"]}})
    jwt = _jwt_filter(plan, inputs)
    if jwt is not None:
        filters.append(jwt)
    filters += _buffer_filter(plan) + _lua_filters(plan)
    filters += [
        {"name": RBAC_FILTER, "typed_config": {"@type": TYPES["rbac"]}},
        {
            "name": RATELIMIT_FILTER,
            "typed_config": {
                "@type": TYPES["ratelimit"],
                "stat_prefix": RATELIMIT_STAT_PREFIX,
                "max_dynamic_descriptors": 10000,
            },
        },
        router_filter(suppress_envoy_headers=True),
    ]
    return filters


def eg_cluster_defaults() -> dict[str, Any]:
    """What Envoy Gateway sets on every backend cluster it generates (cluster.go): least-request
    balancing, a 10 s connect timeout, a 32 KiB buffer and a retry budget of 1024."""
    return {
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "per_connection_buffer_limit_bytes": 32768,
        "circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "max_retries": 1024}]},
    }


def _model_cluster(name: str, inputs: GatewayInputs) -> dict[str, Any]:
    cluster = {
        "name": name,
        "type": "EDS",
        **eg_cluster_defaults(),
        **({"transport_socket_matches": _mesh_transport(inputs.mesh, name)} if inputs.mesh else {}),
        "eds_cluster_config": {"eds_config": path_config_source(eds_path(inputs.xds_dir, name), inputs.xds_dir)},
        "ignore_health_on_host_removal": True,
    }
    cluster.update(cluster_resilience(inputs.plan, name, inputs.revisions))
    return cluster


# -- resilience: what Envoy Gateway emits for a BackendTrafficPolicy's retry / healthCheck / timeout
# and Istio for a DestinationRule's outlierDetection ---------------------------------------------------
PREVIOUS_HOSTS = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
    },
}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def retry_policy(retry: RetryPlan) -> dict[str, Any]:
    """The route's retry_policy as Envoy Gateway 1.4 builds it (another host each time, 5 tries to find one)."""
    policy: dict[str, Any] = {
        "retry_on": ",".join(retry.triggers),
        "num_retries": retry.num_retries,
        "retry_host_predicate": [PREVIOUS_HOSTS],
        "host_selection_retry_max_attempts": 5,
    }
    if retry.status_codes:
        policy["retriable_status_codes"] = list(retry.status_codes)
    if retry.per_try_timeout_s is not None:
        policy["per_try_timeout"] = _seconds(retry.per_try_timeout_s)
    if retry.backoff_base_s is not None:
        backoff = {"base_interval": _seconds(retry.backoff_base_s)}
        if retry.backoff_max_s is not None:
            backoff["max_interval"] = _seconds(retry.backoff_max_s)
        policy["retry_back_off"] = backoff
    return policy


def outlier_detection(outlier: OutlierPlan) -> dict[str, Any]:
    """Envoy's outlier_detection: Envoy Gateway emits every field (CRD defaults applied), Istio only
    those set, with success-rate ejection off and enforcement of what it sets."""
    out: dict[str, Any] = {}
    if outlier.interval_s is not None:
        out["interval"] = _seconds(outlier.interval_s)
    if outlier.base_ejection_s is not None:
        out["base_ejection_time"] = _seconds(outlier.base_ejection_s)
    if outlier.consecutive_5xx is not None:
        out["consecutive_5xx"] = outlier.consecutive_5xx
    if outlier.consecutive_gateway_errors is not None:
        out["consecutive_gateway_failure"] = outlier.consecutive_gateway_errors
    if outlier.consecutive_local_origin is not None:
        out["consecutive_local_origin_failure"] = outlier.consecutive_local_origin
    out["split_external_local_origin_errors"] = outlier.split_local_origin
    if outlier.max_ejection_percent is not None:
        out["max_ejection_percent"] = outlier.max_ejection_percent
    if outlier.source == "DestinationRule":
        out["enforcing_success_rate"] = 0
        if outlier.consecutive_5xx is not None:
            out["enforcing_consecutive_5xx"] = 100 if outlier.consecutive_5xx > 0 else 0
        if outlier.consecutive_gateway_errors is not None:
            out["enforcing_consecutive_gateway_failure"] = 100 if outlier.consecutive_gateway_errors > 0 else 0
        if outlier.split_local_origin:
            out["enforcing_local_origin_success_rate"] = 0
            if outlier.consecutive_local_origin:
                out["enforcing_consecutive_local_origin_failure"] = 100
    return out


def _model_resilience(plan: GatewayPlan, cluster: str, revisions: Revisions | None) -> tuple[Resilience | None, str]:
    for route in plan.routes:
        for weighted in route.backends:
            if not isinstance(weighted.backend, ModelBackend):
                continue
            expanded = revisions(weighted.backend) if revisions else [(weighted.backend, 1)]
            if cluster in {cluster_name(rev) for rev, _ in expanded}:
                return route.resilience, f"{weighted.backend.namespace}/{weighted.backend.name}"
    return None, ""


def cluster_resilience(plan: GatewayPlan, cluster: str, revisions: Revisions | None = None) -> dict[str, Any]:
    """Cluster settings for a model's cluster: Envoy Gateway's (least request, 1024 retries in the
    circuit breaker, the BTP's connect timeout and passive health check) and, for its replicas, the
    outlier detection of an Istio DestinationRule (which wins: it is about the replicas themselves)."""
    resilience, model = _model_resilience(plan, cluster, revisions)
    settings: dict[str, Any] = {
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "max_retries": 1024}]},
    }
    if resilience and resilience.connect_timeout_s is not None:
        settings["connect_timeout"] = _seconds(resilience.connect_timeout_s)
    outlier = plan.replica_outliers.get(model) or (resilience.outlier if resilience else None)
    if outlier is not None:
        settings["outlier_detection"] = outlier_detection(outlier)
        panic = outlier.panic_threshold
        if panic is not None and (outlier.source == "DestinationRule" or panic != 50):
            settings["common_lb_config"] = {"healthy_panic_threshold": {"value": float(panic)}}
    return settings


def _service_cluster(name: str, endpoints: list[Endpoint]) -> dict[str, Any]:
    # Service backends and JWKS hosts are static here (their addresses are known when Envoy starts).
    return {**static_cluster(name, endpoints), **eg_cluster_defaults()}


def _hcm(plan: GatewayPlan, inputs: GatewayInputs, route_config: dict[str, Any]) -> dict[str, Any]:
    """The HTTP connection manager as Envoy Gateway emits it (listener.go), with a
    ClientTrafficPolicy's path, header and underscore settings."""
    settings = plan.listener
    hcm: dict[str, Any] = {
        "@type": TYPES["hcm"],
        "stat_prefix": f"http-{listener_port(plan)}",
        "http_filters": _http_filters(plan, inputs),
        "access_log": stdout_access_log(),
        "use_remote_address": True,
        "server_header_transformation": "PASS_THROUGH",
        "normalize_path": not inputs.skip_path_normalization,
        "merge_slashes": settings.merge_slashes,
        "path_with_escaped_slashes_action": settings.escaped_slashes_action,
        "common_http_protocol_options": {"headers_with_underscores_action": settings.headers_with_underscores_action},
    }
    if inputs.rds:
        hcm["rds"] = {
            "route_config_name": route_config["name"],
            "config_source": path_config_source(rds_path(inputs.xds_dir, route_config["name"]), inputs.xds_dir),
        }
    else:
        hcm["route_config"] = route_config
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
    return hcm


def _gateway_listener(
    plan: GatewayPlan, inputs: GatewayInputs, route_config: dict[str, Any]
) -> tuple[dict[str, Any], list[PolicyStatus]]:
    """The listener Envoy Gateway generates for the Gateway's listener, after its EnvoyPatchPolicies."""
    name = plan.listener_name
    listener = {
        "name": name,
        "address": socket_address("0.0.0.0", listener_port(plan)),  # noqa: S104 - replaced below
        "default_filter_chain": {
            "name": name,
            "filters": [{"name": HCM_FILTER, "typed_config": _hcm(plan, inputs, route_config)}],
        },
        "per_connection_buffer_limit_bytes": plan.listener.buffer_limit_bytes,
    }
    statuses = apply_patch_policies({(LISTENER_TYPE, name): listener}, plan.patch_policies)
    return listener, list(plan.patch_statuses) + statuses


def render_gateway(inputs: GatewayInputs) -> GatewayConfig:
    """The Envoy bootstrap for the gateway, its route configuration and its EDS clusters.

    The listener is Envoy Gateway's, patched by the EnvoyPatchPolicies as Envoy Gateway would patch
    it, then bound where the embedded platform serves it: the gateway pod's address and, for the
    host, loopback. With ``revisions``, every model has one cluster per revision and routes split
    traffic by the revisions' percentages; with ``rds`` the route configuration is served from a
    file (filesystem RDS), so a changed split is applied without a restart."""
    plan, ports = inputs.plan, inputs.ports
    route_config = render_routes(plan, inputs.revisions)
    generated, statuses = _gateway_listener(plan, inputs, route_config)

    def bound(name: str, address: dict[str, Any]) -> dict[str, Any]:
        return {**generated, "name": name, "address": address}

    listeners = [bound(f"{plan.listener_name}/host", socket_address("127.0.0.1", ports.public, inputs.host_netns))]
    if ports.pod_ip:
        listeners.append(bound(plan.listener_name, socket_address(ports.pod_ip, ports.pod_port)))
    clusters = [
        _service_cluster(name, list(inputs.service_endpoints.get(name, []))) for name in sorted(service_backends(plan))
    ]
    models = model_clusters(plan, inputs.revisions)
    clusters += [_model_cluster(name, inputs) for name in models]
    admin_port = ports.admin
    if inputs.host_netns:
        admin_port = ports.admin_internal
        proxy_listener, proxy_cluster = admin_proxy_listener("gateway", ports.admin, inputs.host_netns, admin_port)
        listeners.append(proxy_listener)
        clusters.append(proxy_cluster)
    bootstrap = {
        "node": {"id": "inference-gateway", "cluster": plan.gateway},
        "admin": {"address": socket_address("127.0.0.1", admin_port)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
        "layered_runtime": connection_limit_runtime(),
    }
    return GatewayConfig(bootstrap, route_config, tuple(models), tuple(statuses))


def patch_policy_statuses(plan: GatewayPlan) -> list[PolicyStatus]:
    """Every EnvoyPatchPolicy's status as Envoy Gateway would write it, from the generated listener."""
    inputs = GatewayInputs(plan, GatewayPorts(public=0, admin=0, pod_ip=None, pod_port=0), Path("."))
    return _gateway_listener(plan, inputs, render_routes(plan))[1]
