"""Real Envoy for the embedded gateway: a bootstrap rendered from the gateway plan.

Model clusters use EDS from files in a watched directory (Envoy's filesystem xDS). Replicas are
added or removed by rewriting one file atomically, which Envoy applies without a restart; this is
how the embedded control plane tells the gateway about replicas.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbox.embedded.gateway_plan import (
    Authorization,
    FaultPlan,
    GatewayPlan,
    ModelBackend,
    Principal,
    RoutePlan,
    SecurityPlan,
    ServiceBackend,
    Unresolved,
    jwks_service,
)

JWT_FILTER = "envoy.filters.http.jwt_authn"
RBAC_FILTER = "envoy.filters.http.rbac"
RATELIMIT_FILTER = "envoy.filters.http.local_ratelimit"
FAULT_FILTER = "envoy.filters.http.fault"
TYPES = {
    "hcm": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "jwt": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
    "jwt_route": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
    "rbac": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
    "rbac_route": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
    "ratelimit": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    "router": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    "fault": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
    "early": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
    "cla": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "route": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "file_log": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
}
UNLIMITED = 4294967295
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
    "%RESPONSE_CODE_DETAILS% host=%REQ(:AUTHORITY)% route=%ROUTE_NAME% upstream=%UPSTREAM_HOST% "
    "duration=%DURATION%ms id=%REQ(X-REQUEST-ID)%\n"
)

Endpoint = tuple[str, int]


def cluster_name(backend: ServiceBackend | ModelBackend) -> str:
    if isinstance(backend, ModelBackend):
        suffix = f"__{backend.revision}" if backend.revision else ""
        return f"isvc__{backend.namespace}__{backend.name}{suffix}"
    return f"svc__{backend.namespace}__{backend.name}__{backend.port}"


def socket_address(host: str, port: int, netns_path: str | None = None) -> dict[str, Any]:
    address: dict[str, Any] = {"address": host, "port_value": port}
    if netns_path:
        address["network_namespace_filepath"] = netns_path
    return {"socket_address": address}


def _lb_endpoints(endpoints: list[Endpoint], match: dict[str, str] | None = None) -> list[dict[str, Any]]:
    # ``match`` labels endpoints for a cluster's transport_socket_matches (Istio: tlsMode=istio marks
    # endpoints with a sidecar, which the caller then reaches over mutual TLS).
    extra = {"metadata": {"filter_metadata": {"envoy.transport_socket_match": match}}} if match else {}
    return [{"endpoint": {"address": socket_address(h, p)}, **extra} for h, p in endpoints]


# A model's revisions and their traffic percentages: how KServe/Knative split a model's traffic.
Revisions = Callable[[ModelBackend], list[tuple[ModelBackend, int]]]


def write_discovery_file(directory: Path, path: Path, resource: dict[str, Any], version: int) -> None:
    """Atomically replaces one filesystem xDS file (Envoy reacts to the rename in its watched directory)."""
    body = {"version_info": str(version), "resources": [resource]}
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(yaml.safe_dump(body))
    os.replace(tmp, path)


class RoutesFile:
    """The gateway's route configuration as filesystem RDS: rewritten when traffic splits change
    (a canary promoted), applied by Envoy without a restart, like EDS for endpoints."""

    def __init__(self, directory: Path, name: str = "gateway") -> None:
        self.directory = directory
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        self._version = 0

    @property
    def path(self) -> Path:
        return self.directory / f"rds-{self.name}.yaml"

    def write(self, route_config: dict[str, Any]) -> int:
        """Publishes a route configuration; returns its version (Envoy's config dump shows it once applied)."""
        self._version += 1
        write_discovery_file(self.directory, self.path, {"@type": TYPES["route"], **route_config}, self._version)
        return self._version

    def config_source(self) -> dict[str, Any]:
        return {
            "route_config_name": self.name,
            "config_source": {
                "resource_api_version": "V3",
                "path_config_source": {"path": str(self.path), "watched_directory": {"path": str(self.directory)}},
            },
        }


class EdsFiles:
    """Writes ClusterLoadAssignments into the directory Envoy watches."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._version = 0

    def path(self, cluster: str) -> Path:
        return self.directory / f"eds-{cluster}.yaml"

    def write(self, cluster: str, endpoints: list[Endpoint], match: dict[str, str] | None = None) -> None:
        self._version += 1
        body = {
            "version_info": str(self._version),
            "resources": [
                {
                    "@type": TYPES["cla"],
                    "cluster_name": cluster,
                    "endpoints": [{"lb_endpoints": _lb_endpoints(endpoints, match)}],
                }
            ],
        }
        tmp = self.directory / f".{cluster}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(yaml.safe_dump(body))
        os.replace(tmp, self.path(cluster))  # a rename is what Envoy's watcher reacts to


def _path_match(route: RoutePlan) -> dict[str, Any]:
    if route.path_type == "Exact":
        return {"path": route.path}
    prefix = route.path.rstrip("/")
    return {"prefix": "/"} if not prefix else {"path_separated_prefix": prefix}


def _claim_path(provider_key: str, claim: str) -> list[dict[str, str]]:
    return [{"key": provider_key}, *({"key": part} for part in claim.split("."))]


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


def _rate_limit(route: RoutePlan) -> dict[str, Any]:
    descriptors, actions = [], []
    for index, rule in enumerate(route.rate_limits):
        entry = {"key": "rule", "value": str(index)}
        descriptors.append(
            {
                "entries": [entry],
                "token_bucket": {
                    "max_tokens": rule.requests,
                    "tokens_per_fill": rule.requests,
                    "fill_interval": f"{rule.per_seconds}s",
                },
            }
        )
        if rule.headers:
            action = {
                "header_value_match": {
                    "descriptor_key": "rule",
                    "descriptor_value": str(index),
                    "expect_match": True,
                    "headers": [{"name": name, "string_match": {"exact": value}} for name, value in rule.headers],
                }
            }
        else:
            action = {"generic_key": {"descriptor_key": "rule", "descriptor_value": str(index)}}
        actions.append({"actions": [action]})
    percent = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "@type": TYPES["ratelimit"],
        "stat_prefix": "route_local_rate_limit",
        # Requests matching no rule are not limited.
        "token_bucket": {"max_tokens": UNLIMITED, "tokens_per_fill": UNLIMITED, "fill_interval": "1s"},
        "filter_enabled": {**percent, "runtime_key": "local_rate_limit_enabled"},
        "filter_enforced": {**percent, "runtime_key": "local_rate_limit_enforced"},
        "descriptors": descriptors,
        "rate_limits": actions,
        "always_consume_default_token_bucket": False,
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
    }


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
        reason = unresolved[0].reason if unresolved else "the rule has no backend"
        return {"direct_response": {"status": 500, "body": {"inline_string": f"invalid backend: {reason}\n"}}}
    resolved = _expand(resolved, revisions)
    if not resolved:
        return {"direct_response": {"status": 503, "body": {"inline_string": "no revision receives traffic\n"}}}
    if len(resolved) == 1:
        target: dict[str, Any] = {"cluster": cluster_name(resolved[0][0])}
    else:
        target = {"weighted_clusters": {"clusters": [{"name": cluster_name(b), "weight": w} for b, w in resolved]}}
    return {"route": {**target, "timeout": "60s"}}


def _envoy_route(route: RoutePlan, revisions: Revisions | None = None) -> dict[str, Any]:
    per_filter: dict[str, Any] = {}
    if route.security and route.security.providers:
        per_filter[JWT_FILTER] = {"@type": TYPES["jwt_route"], "requirement_name": route.key}
    else:
        per_filter[JWT_FILTER] = {"@type": TYPES["jwt_route"], "disabled": True}
    if route.security and route.security.authorization:
        per_filter[RBAC_FILTER] = _rbac(route.security.authorization)
    if route.rate_limits:
        per_filter[RATELIMIT_FILTER] = _rate_limit(route)
    if route.fault:
        per_filter[FAULT_FILTER] = _fault(route.fault)
    return {
        "name": route.key,
        "match": _path_match(route),
        **_route_action(route, revisions),
        "typed_per_filter_config": per_filter,
    }


def _route_order(route: RoutePlan) -> tuple[int, int]:
    # Gateway API precedence: exact paths first, then longer prefixes.
    return (0 if route.path_type == "Exact" else 1, -len(route.path))


def _requirement(security: SecurityPlan) -> dict[str, Any]:
    names = [{"provider_name": p.key} for p in security.providers]
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
ISTIO_TLS_MODE = {"tlsMode": "istio"}


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
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": TYPES["router"]}}],
    }
    listener = {
        "name": f"{name}-admin",
        "address": socket_address("127.0.0.1", host_port, host_netns),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }
    cluster_def = {
        "name": cluster,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": cluster,
            "endpoints": [{"lb_endpoints": _lb_endpoints([("127.0.0.1", admin_port)])}],
        },
    }
    return listener, cluster_def


def render_routes(plan: GatewayPlan, revisions: Revisions | None = None) -> dict[str, Any]:
    """The gateway's route configuration: a virtual host per host name, Gateway API precedence."""
    vhosts: dict[str, list[RoutePlan]] = {}
    for route in plan.routes:
        for host in route.hostnames:
            vhosts.setdefault(host, []).append(route)
    virtual_hosts = [
        {
            "name": host,
            "domains": [host, f"{host}:*"],
            "routes": [_envoy_route(r, revisions) for r in sorted(routes, key=_route_order)],
        }
        for host, routes in sorted(vhosts.items())
    ]
    return {"name": "gateway", "virtual_hosts": virtual_hosts}


def model_clusters(plan: GatewayPlan, revisions: Revisions | None = None) -> list[str]:
    """Names of the EDS clusters of the plan's models (one per revision when ``revisions`` is given)."""
    names: set[str] = set()
    for route in plan.routes:
        for weighted in route.backends:
            if isinstance(weighted.backend, ModelBackend):
                expanded = revisions(weighted.backend) if revisions else [(weighted.backend, 1)]
                names.update(cluster_name(rev) for rev, _ in expanded)
    return sorted(names)


def render_gateway(
    plan: GatewayPlan,
    ports: GatewayPorts,
    host_netns: str | None,
    eds: EdsFiles,
    service_endpoints: Callable[[str, str, int], list[Endpoint]],
    knobs: dict[str, Any] | None = None,
    mesh: MeshUpstream | None = None,
    revisions: Revisions | None = None,
    routes_file: RoutesFile | None = None,
) -> dict[str, Any]:
    """The Envoy bootstrap for the gateway; model clusters read their endpoints from ``eds``.

    With ``revisions``, every model has one cluster per revision and routes split traffic by the
    revisions' percentages; with ``routes_file`` the route configuration is served from that file
    (filesystem RDS), so a changed split is applied without a restart."""
    jwt_clusters: dict[str, ServiceBackend] = {}
    providers: dict[str, Any] = {}
    requirements: dict[str, Any] = {}
    for route in plan.routes:
        if not route.security or not route.security.providers:
            continue
        for provider in route.security.providers:
            where = jwks_service(provider.jwks_uri)
            if where is None:
                raise ValueError(f"JWKS URI {provider.jwks_uri} is not an in-cluster service URL")
            backend = ServiceBackend(*where)
            jwt_clusters[cluster_name(backend)] = backend
            entry: dict[str, Any] = {
                "remote_jwks": {
                    "http_uri": {"uri": provider.jwks_uri, "cluster": cluster_name(backend), "timeout": "5s"},
                    "cache_duration": "300s",
                    "async_fetch": {},
                    "retry_policy": {"num_retries": 3},
                },
                "forward": True,
                "payload_in_metadata": provider.key,
                "claim_to_headers": [{"header_name": h, "claim_name": c} for h, c in provider.claim_to_headers],
            }
            if provider.issuer:
                entry["issuer"] = provider.issuer
            if knobs and "gateway.jwtClockSkewSeconds" in knobs:
                entry["clock_skew_seconds"] = int(knobs["gateway.jwtClockSkewSeconds"])
            if provider.audiences:
                entry["audiences"] = list(provider.audiences)
            providers[provider.key] = entry
        requirements[route.key] = _requirement(route.security)

    route_config = render_routes(plan, revisions)

    http_filters: list[dict[str, Any]] = []
    if any(r.fault for r in plan.routes):
        # Envoy Gateway orders the fault filter first, before authentication: an empty default, the
        # faults themselves are per route.
        http_filters.append({"name": FAULT_FILTER, "typed_config": {"@type": TYPES["fault"]}})
    if providers:
        http_filters.append(
            {
                "name": JWT_FILTER,
                "typed_config": {
                    "@type": TYPES["jwt"],
                    "providers": providers,
                    "requirement_map": requirements,
                },
            }
        )
    http_filters += [
        {"name": RBAC_FILTER, "typed_config": {"@type": TYPES["rbac"]}},
        {
            "name": RATELIMIT_FILTER,
            "typed_config": {"@type": TYPES["ratelimit"], "stat_prefix": "http_local_rate_limiter"},
        },
        {"name": "envoy.filters.http.router", "typed_config": {"@type": TYPES["router"]}},
    ]
    hcm: dict[str, Any] = {
        "@type": TYPES["hcm"],
        "stat_prefix": "gateway",
        "generate_request_id": True,
        "http_filters": http_filters,
        "access_log": [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": TYPES["file_log"],
                    "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                },
            }
        ],
    }
    if routes_file is not None:
        routes_file.write(route_config)
        hcm["rds"] = routes_file.config_source()
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

    def listener(name: str, address: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "address": address,
            "filter_chains": [
                {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
            ],
        }

    listeners = [listener("public", socket_address("127.0.0.1", ports.public, host_netns))]
    if ports.pod_ip:
        listeners.append(listener("pod", socket_address(ports.pod_ip, ports.pod_port)))

    clusters: list[dict[str, Any]] = []
    services: dict[str, ServiceBackend] = dict(jwt_clusters)
    for route in plan.routes:
        for weighted in route.backends:
            if isinstance(weighted.backend, ServiceBackend):
                services[cluster_name(weighted.backend)] = weighted.backend
    models = model_clusters(plan, revisions)
    for name, svc in sorted(services.items()):
        clusters.append(
            {
                "name": name,
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {
                    "cluster_name": name,
                    "endpoints": [
                        {"lb_endpoints": _lb_endpoints(service_endpoints(svc.namespace, svc.name, svc.port))}
                    ],
                },
            }
        )
    for name in sorted(models):
        if not eds.path(name).exists():
            eds.write(name, [])
        clusters.append(
            {
                "name": name,
                "type": "EDS",
                **({"transport_socket_matches": _mesh_transport(mesh, name)} if mesh else {}),
                "connect_timeout": "2s",
                "eds_cluster_config": {
                    "eds_config": {
                        "resource_api_version": "V3",
                        "path_config_source": {
                            "path": str(eds.path(name)),
                            "watched_directory": {"path": str(eds.directory)},
                        },
                    }
                },
            }
        )
    admin_port = ports.admin
    if host_netns:
        admin_port = ports.admin_internal
        proxy_listener, proxy_cluster = admin_proxy_listener("gateway", ports.admin, host_netns, admin_port)
        listeners.append(proxy_listener)
        clusters.append(proxy_cluster)
    return {
        "node": {"id": "inference-gateway", "cluster": plan.gateway},
        "admin": {"address": socket_address("127.0.0.1", admin_port)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
        "layered_runtime": {
            "layers": [{"name": "static", "static_layer": {"overload": {"global_downstream_max_connections": 50000}}}]
        },
    }
