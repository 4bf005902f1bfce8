"""Envoy configuration pieces every Envoy of the embedded platform uses (gateway and sidecars)."""

from __future__ import annotations

from typing import Any

JWT_FILTER = "envoy.filters.http.jwt_authn"
RBAC_FILTER = "envoy.filters.http.rbac"
RATELIMIT_FILTER = "envoy.filters.http.local_ratelimit"
FAULT_FILTER = "envoy.filters.http.fault"
BUFFER_FILTER = "envoy.filters.http.buffer"
LUA_FILTER = "envoy.filters.http.lua"
ROUTER_FILTER = "envoy.filters.http.router"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TYPES = {
    "hcm": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "jwt": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
    "jwt_route": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
    "rbac": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
    "rbac_route": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
    "ratelimit": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
    "router": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
    "fault": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
    "buffer": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
    "buffer_route": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
    "lua": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
    "filter_config": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
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
# Istio marks endpoints that have a sidecar; callers reach those over mutual TLS.
ISTIO_TLS_MODE = {"tlsMode": "istio"}

Endpoint = tuple[str, int]


def socket_address(host: str, port: int, netns_path: str | None = None) -> dict[str, Any]:
    address: dict[str, Any] = {"address": host, "port_value": port}
    if netns_path:
        address["network_namespace_filepath"] = netns_path
    return {"socket_address": address}


def lb_endpoints(endpoints: list[Endpoint], match: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Endpoints of a cluster; ``match`` labels them for the cluster's transport_socket_matches."""
    extra = {"metadata": {"filter_metadata": {"envoy.transport_socket_match": match}}} if match else {}
    return [{"endpoint": {"address": socket_address(h, p)}, **extra} for h, p in endpoints]


def static_cluster(name: str, endpoints: list[Endpoint], connect_timeout: str = "2s") -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb_endpoints(endpoints)}]},
    }


def stdout_access_log(log_format: str = ACCESS_LOG_FORMAT) -> list[dict[str, Any]]:
    return [
        {
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": TYPES["file_log"],
                "log_format": {"text_format_source": {"inline_string": log_format}},
            },
        }
    ]


def router_filter(suppress_envoy_headers: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"@type": TYPES["router"]}
    if suppress_envoy_headers:
        config["suppress_envoy_headers"] = True
    return {"name": ROUTER_FILTER, "typed_config": config}


def connection_limit_runtime() -> dict[str, Any]:
    """The downstream connection limit Envoy warns about when unset (Istio and Envoy Gateway set one)."""
    return {"layers": [{"name": "static", "static_layer": {"overload": {"global_downstream_max_connections": 50000}}}]}
