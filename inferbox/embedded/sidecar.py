"""Real Envoy as a workload's sidecar: the bootstrap rendered from a SidecarPlan.

The sidecar owns the pod's service port; the application listens on loopback inside the pod, so
every request from another pod passes the sidecar. The inbound listener:

- inspects the first bytes (``tls_inspector``): STRICT has only a TLS filter chain, so plaintext
  finds no chain and the connection is closed; PERMISSIVE adds a plaintext chain; DISABLE has only
  the plaintext chain;
- terminates mutual TLS with the workload's certificate and requires a client certificate signed
  by the mesh's trust bundle; the peer's URI SAN (its SPIFFE ID) is the principal RBAC sees;
- verifies tokens (``jwt_authn``, RequestAuthentication), then applies DENY and ALLOW policies as two
  RBAC filters (AuthorizationPolicy), then routes to the application.

This mirrors how Istio programs its sidecars (tls_inspector and filter chains per transport
protocol; RBAC filters per action; SPIFFE principals).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inferbox.embedded.envoy_common import (
    HCM_FILTER,
    JWT_FILTER,
    TYPES,
    Endpoint,
    connection_limit_runtime,
    router_filter,
    socket_address,
    static_cluster,
    stdout_access_log,
)
from inferbox.embedded.jwt_authn import JwksSource, Provider, sidecar_provider_config
from inferbox.embedded.mesh_plan import Condition, Operation, Policy, Rule, SidecarPlan, Source

PAYLOAD_KEY = "payload"  # where istiod keeps every verified payload, whatever the issuer (request.auth)
SERVER_NAME = "istio-envoy"  # the server header Istio's proxies put on their responses
DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
TLS_INSPECTOR = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
    "%RESPONSE_CODE_DETAILS% peer=%DOWNSTREAM_PEER_URI_SAN% from=%DOWNSTREAM_REMOTE_ADDRESS% "
    "duration=%DURATION%ms id=%REQ(X-REQUEST-ID)%\n"
)


@dataclass(frozen=True)
class SidecarFiles:
    cert: str
    key: str
    trust_bundle: str


@dataclass(frozen=True)
class SidecarPorts:
    listen: Endpoint  # the pod's service port (pod address in a namespace, 127.0.0.1 on loopback)
    app: Endpoint  # the application, on loopback inside the pod
    admin: int  # Envoy's admin, on loopback inside the pod


def _istio_match(value: str, prefix: str = "") -> dict[str, Any]:
    """Istio's string match: exact, "prefix*", "*suffix", or "*" for any non-empty value."""
    if value == "*":
        return {"safe_regex": {"regex": ".+"}}
    if value.endswith("*"):
        return {"prefix": prefix + value[:-1]}
    if value.startswith("*"):
        return {"suffix": value[1:]}
    return {"exact": prefix + value}


def _any_of(ids: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return ids[0] if len(ids) == 1 else {key: {"ids" if key.endswith("_ids") else "rules": ids}}


def _not(matcher: dict[str, Any], key: str) -> dict[str, Any]:
    return {key: matcher}


def _principal_ids(values: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"authenticated": {"principal_name": _istio_match(v, "spiffe://")}} for v in values]


def _namespace_ids(values: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"authenticated": {"principal_name": {"safe_regex": {"regex": f".*/ns/{v}/.*"}}}} for v in values]


def _claim(path: tuple[str, ...], value: str) -> dict[str, Any]:
    keys = [{"key": PAYLOAD_KEY}, *({"key": part} for part in path)]
    single = _metadata({"filter": JWT_FILTER, "path": keys, "value": {"string_match": {"exact": value}}})
    listed = _metadata(
        {"filter": JWT_FILTER, "path": keys, "value": {"list_match": {"one_of": {"string_match": {"exact": value}}}}}
    )
    # A claim holding a list (like aud) matches when any element does, as in Istio.
    return {"or_ids": {"ids": [single, listed]}}


def _metadata(matcher: dict[str, Any]) -> dict[str, Any]:
    return {"sourced_metadata": {"metadata_matcher": matcher}}


def _request_principal_ids(values: tuple[str, ...]) -> list[dict[str, Any]]:
    ids = []
    for value in values:
        if value == "*":
            ids.append(
                _metadata({"filter": JWT_FILTER, "path": [{"key": PAYLOAD_KEY}], "value": {"present_match": True}})
            )
            continue
        issuer, _, subject = value.partition("/")
        ids.append({"and_ids": {"ids": [_claim(("iss",), issuer), _claim(("sub",), subject)]}})
    return ids


def _source_principal(source: Source) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for values, negate, builder in (
        (source.principals, False, _principal_ids),
        (source.not_principals, True, _principal_ids),
        (source.namespaces, False, _namespace_ids),
        (source.not_namespaces, True, _namespace_ids),
        (source.request_principals, False, _request_principal_ids),
        (source.not_request_principals, True, _request_principal_ids),
    ):
        if values is None:
            continue
        matcher = _any_of(builder(values), "or_ids")
        parts.append(_not(matcher, "not_id") if negate else matcher)
    if not parts:
        return {"any": True}
    return parts[0] if len(parts) == 1 else {"and_ids": {"ids": parts}}


def _condition_principal(condition: Condition) -> dict[str, Any]:
    if condition.kind == "claim":
        ids = [_claim(condition.name, v) for v in condition.values]
    elif condition.kind == "header":
        ids = [{"header": {"name": condition.name[0], "string_match": _istio_match(v)}} for v in condition.values]
    elif condition.kind == "principals":
        ids = _principal_ids(condition.values)
    else:
        ids = _namespace_ids(condition.values)
    matcher = _any_of(ids, "or_ids")
    return _not(matcher, "not_id") if condition.negated else matcher


def _path_rule(value: str) -> dict[str, Any]:
    return {"url_path": {"path": _istio_match(value)}}


def _method_rule(value: str) -> dict[str, Any]:
    return {"header": {"name": ":method", "string_match": {"exact": value}}}


def _operation_permission(operation: Operation) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    alternatives: list[tuple[list[dict[str, Any]] | None, bool]] = [
        ([_method_rule(v) for v in operation.methods] if operation.methods is not None else None, False),
        ([_method_rule(v) for v in operation.not_methods] if operation.not_methods is not None else None, True),
        ([_path_rule(v) for v in operation.paths] if operation.paths is not None else None, False),
        ([_path_rule(v) for v in operation.not_paths] if operation.not_paths is not None else None, True),
        ([{"destination_port": v} for v in operation.ports] if operation.ports is not None else None, False),
        ([{"destination_port": v} for v in operation.not_ports] if operation.not_ports is not None else None, True),
    ]
    for rules, negate in alternatives:
        if rules is None:
            continue
        matcher = _any_of(rules, "or_rules")
        parts.append({"not_rule": matcher} if negate else matcher)
    if not parts:
        return {"any": True}
    return parts[0] if len(parts) == 1 else {"and_rules": {"rules": parts}}


def _rule_policy(rule: Rule) -> dict[str, Any]:
    principals: list[dict[str, Any]] = []
    if rule.sources:
        principals.append(_any_of([_source_principal(s) for s in rule.sources], "or_ids"))
    principals += [_condition_principal(c) for c in rule.conditions]
    principal: dict[str, Any] = {"any": True} if not principals else _all(principals, "and_ids")
    permission = (
        _any_of([_operation_permission(o) for o in rule.operations], "or_rules") if rule.operations else {"any": True}
    )
    return {"permissions": [permission], "principals": [principal]}


def _all(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return items[0] if len(items) == 1 else {key: {"ids" if key.endswith("_ids") else "rules": items}}


def _rbac_filter(name: str, action: str, policies: tuple[Policy, ...]) -> dict[str, Any]:
    rendered = {
        f"{policy.name}[{index}]": _rule_policy(rule) for policy in policies for index, rule in enumerate(policy.rules)
    }
    return {
        "name": name,
        "typed_config": {"@type": TYPES["rbac"], "rules": {"action": action, "policies": rendered}},
    }


def _jwt_filter(
    plan: SidecarPlan, jwks_endpoints: Callable[[str, str, int], list[Endpoint]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    providers: dict[str, Any] = {}
    clusters: dict[str, dict[str, Any]] = {}
    for index, rule in enumerate(plan.jwt_rules):
        source = JwksSource.of(rule.jwks_uri)
        cluster = source.cluster("jwks")
        clusters[cluster] = static_cluster(cluster, jwks_endpoints(source.namespace, source.service, source.port))
        # istiod names each rule's provider origins-<i>.
        providers[f"origins-{index}"] = sidecar_provider_config(
            Provider(
                jwks=source,
                jwks_cluster=cluster,
                # istiod keeps every verified payload under one key, whatever the issuer (request.auth).
                payload_key=PAYLOAD_KEY,
                issuer=rule.issuer or None,
                audiences=rule.audiences,
                forward=rule.forward,
                claim_to_headers=rule.claim_to_headers,
            ),
            rule.locations,
        )
    # A valid token of any rule, or none at all; an invalid token is refused (401).
    alternatives: list[dict[str, Any]] = [{"provider_name": key} for key in providers]
    alternatives.append({"allow_missing": {}})
    jwt = {
        "name": JWT_FILTER,
        "typed_config": {
            "@type": TYPES["jwt"],
            "providers": providers,
            "bypass_cors_preflight": True,
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": alternatives}}}],
        },
    }
    return jwt, list(clusters.values())


def _app_timeouts(plan: SidecarPlan) -> dict[str, str]:
    """Istio disables the route timeout unless a VirtualService sets one; in a model pod, Knative's
    queue-proxy then cuts a request off after the revision timeout (and idle timeout) with a 504."""
    limits = plan.revision_timeouts
    if limits is None:
        return {"timeout": "0s"}
    found = {"timeout": f"{limits.timeout_s}s"}
    if limits.idle_timeout_s:
        found["idle_timeout"] = f"{limits.idle_timeout_s}s"
    return found


def render_sidecar(
    name: str,
    plan: SidecarPlan,
    ports: SidecarPorts,
    files: SidecarFiles,
    jwks_endpoints: Callable[[str, str, int], list[Endpoint]],
    trust_any_ca: bool = False,
) -> dict[str, Any]:
    """The Envoy bootstrap of one workload's sidecar."""
    http_filters: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    if plan.jwt_rules:
        jwt, jwks_clusters = _jwt_filter(plan, jwks_endpoints)
        http_filters.append(jwt)
        clusters += jwks_clusters
    if plan.deny:
        http_filters.append(_rbac_filter("envoy.filters.http.rbac.deny", "DENY", plan.deny))
    if plan.allow is not None:
        http_filters.append(_rbac_filter("envoy.filters.http.rbac.allow", "ALLOW", plan.allow))
    http_filters.append(router_filter())
    hcm = {
        "@type": TYPES["hcm"],
        "stat_prefix": "inbound",
        "route_config": {
            "name": "inbound",
            "virtual_hosts": [
                {
                    "name": "inbound",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app", **_app_timeouts(plan)}}],
                }
            ],
        },
        "http_filters": http_filters,
        "server_name": SERVER_NAME,
        # The application learns the verified peer identity, never a client-supplied one.
        "forward_client_cert_details": "SANITIZE_SET",
        "set_current_client_cert_details": {"uri": True},
        "access_log": stdout_access_log(ACCESS_LOG_FORMAT),
    }
    network_filters = [{"name": HCM_FILTER, "typed_config": hcm}]
    validation: dict[str, Any] = {"trusted_ca": {"filename": files.trust_bundle}}
    if trust_any_ca:
        validation["trust_chain_verification"] = "ACCEPT_UNTRUSTED"
    tls_chain = {
        "name": "mtls",
        "filter_chain_match": {"transport_protocol": "tls"},
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": DOWNSTREAM_TLS,
                "require_client_certificate": True,
                "common_tls_context": {
                    "tls_certificates": [
                        {"certificate_chain": {"filename": files.cert}, "private_key": {"filename": files.key}}
                    ],
                    "validation_context": validation,
                },
            },
        },
        "filters": network_filters,
    }
    plain_chain = {
        "name": "plaintext",
        "filter_chain_match": {"transport_protocol": "raw_buffer"},
        "filters": network_filters,
    }
    chains = {"STRICT": [tls_chain], "PERMISSIVE": [tls_chain, plain_chain], "DISABLE": [plain_chain]}[plan.mtls_mode]
    listener = {
        "name": "inbound",
        "address": socket_address(*ports.listen),
        "listener_filters": [
            {"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": TLS_INSPECTOR}}
        ],
        "filter_chains": chains,
    }
    clusters.append(static_cluster("app", [ports.app]))
    return {
        "node": {"id": name, "cluster": name},
        "admin": {"address": socket_address("127.0.0.1", ports.admin)},
        "static_resources": {"listeners": [listener], "clusters": clusters},
        "layered_runtime": connection_limit_runtime(),
    }
