"""The fidelity table: for every manifest feature the embedded gateway and sidecars translate, the
Envoy configuration Envoy Gateway 1.4.2 (sidecars: Istio 1.26) would produce, defaults included.

Each row names the upstream behaviour it encodes (described, with the upstream file), reads one
field of the configuration the embedded target renders from the platform's manifests (changed by
the row's own edit, if any), and states the value upstream emits. Each row also carries a mutant:
a manifest change or target knob after which the row must no longer hold, so a translation that
ignored the field, or a default that drifted, is caught by the table. The EnvoyPatchPolicy rows
apply the platform's own policy to the listener the embedded gateway generates, as Envoy Gateway
applies it to the one it generates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from inferbox.embedded.envoy_common import BUFFER_FILTER, JWT_FILTER, LUA_FILTER, RATELIMIT_FILTER, RBAC_FILTER
from inferbox.embedded.gateway_config import GatewayInputs, GatewayPorts, render_gateway, service_backends
from inferbox.embedded.gateway_plan import plan_gateway
from inferbox.embedded.mesh_plan import PodMeta, plan_sidecar
from inferbox.embedded.sidecar import SidecarFiles, SidecarPorts, render_sidecar
from inferbox.manifests import DEFAULT_MANIFEST_DIR, K8sObject, ManifestSet, load_manifests
from tests.manifest_edits import edited

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)
LISTENER = "envoy-gateway-system/inference-gateway/http"
IRIS_HOST = "sklearn-iris_tenant-a_inference_example"
IRIS_ROUTE = f"httproute/tenant-a/sklearn-iris/rule/0/match/0/{IRIS_HOST}"
IRIS_PROVIDER = f"{IRIS_ROUTE}/inference-in-a-box"
JWKS_CLUSTER = "jwt-server_inference-system_svc_cluster_local_8080"
MODEL_CLUSTER = "isvc__tenant-a__sklearn-iris"
Edit = Callable[[ManifestSet], ManifestSet]
Config = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    bootstrap: Config
    routes: Config
    sidecar: Config

    @property
    def listener(self) -> Config:
        found: Config = next(
            item for item in self.bootstrap["static_resources"]["listeners"] if item["name"] == f"{LISTENER}/host"
        )
        return found

    @property
    def hcm(self) -> Config:
        hcm: Config = self.listener["default_filter_chain"]["filters"][0]["typed_config"]
        return hcm

    def http_filter(self, name: str) -> Config:
        found: Config = next(f for f in self.hcm["http_filters"] if f["name"] == name)
        return found

    def provider(self, key: str = IRIS_PROVIDER) -> Config:
        providers: Config = self.http_filter(JWT_FILTER)["typed_config"]["providers"]
        found: Config = providers.get(key, {})
        return found

    def route(self, name: str = IRIS_ROUTE) -> Config:
        found: Config = next(
            r for v in self.hcm["route_config"]["virtual_hosts"] for r in v["routes"] if r["name"] == name
        )
        return found

    def cluster(self, name: str) -> Config:
        found: Config = next(c for c in self.bootstrap["static_resources"]["clusters"] if c["name"] == name)
        return found

    @property
    def sidecar_jwt(self) -> Config:
        hcm = self.sidecar["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        jwt: Config = next(f for f in hcm["http_filters"] if f["name"] == JWT_FILTER)["typed_config"]
        return jwt

    @property
    def sidecar_hcm(self) -> Config:
        hcm: Config = self.sidecar["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        return hcm


def render(manifests: ManifestSet, knobs: dict[str, Any], tmp: Path) -> Rendered:
    plan = plan_gateway(manifests, envoy_patch_policy=not knobs.get("patch_policy_disabled", False))
    services = {name: [("127.0.0.1", 18099)] for name in service_backends(plan)}
    inputs = GatewayInputs(
        plan,
        GatewayPorts(public=18080, admin=18081, pod_ip=None, pod_port=80),
        tmp,
        services,
        skip_path_normalization=knobs.get("skip_path_normalization", False),
        jwt_clock_skew_s=knobs.get("jwt_clock_skew_s"),
    )
    config = render_gateway(inputs)
    pod = PodMeta("tenant-a", "sklearn-iris-00001", "default", {"serving.kserve.io/inferenceservice": "sklearn-iris"})
    sidecar = render_sidecar(
        "sidecar",
        plan_sidecar(manifests, pod),
        SidecarPorts(("127.0.0.1", 18100), ("127.0.0.1", 18101), 18102),
        SidecarFiles("cert.pem", "key.pem", "bundle.pem"),
        lambda namespace, name, port: [("127.0.0.1", port)],
    )
    return Rendered(config.bootstrap, config.routes, sidecar)


def on(kind: str, name: str, change: Callable[[Config], Any]) -> Edit:
    return lambda manifests: edited(manifests, kind, name, change)


def _ctp(change: Callable[[Config], Any]) -> Edit:
    return on("ClientTrafficPolicy", "strip-client-identity-headers", lambda b: change(b["spec"]))


def _iris_provider(change: Callable[[Config], Any]) -> Edit:
    return on("SecurityPolicy", "sklearn-iris-jwt", lambda b: change(b["spec"]["jwt"]["providers"][0]))


def _iris_rule(change: Callable[[Config], Any]) -> Edit:
    return on("HTTPRoute", "sklearn-iris", lambda b: change(b["spec"]["rules"][0]))


def _iris_btp(change: Callable[[Config], Any]) -> Edit:
    return on("BackendTrafficPolicy", "sklearn-iris-rate-limit", lambda b: change(b["spec"]))


def _tenant_a_rule(change: Callable[[Config], Any]) -> Edit:
    return on("RequestAuthentication", "platform-tokens", lambda b: change(b["spec"]["jwtRules"][0]))


def _config_defaults(data: dict[str, str]) -> Edit:
    """Knative's config-defaults with ``data`` (replacing any the manifests have)."""
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-defaults", "namespace": "knative-serving"},
        "data": data,
    }
    added = K8sObject("v1", "ConfigMap", "config-defaults", "knative-serving", body, "test")
    return lambda m: ManifestSet(m.root, (*(o for o in _delete("ConfigMap", "config-defaults")(m)), added))


def _delete(kind: str, name: str) -> Edit:
    return lambda m: ManifestSet(m.root, tuple(o for o in m if not (o.kind == kind and o.name == name)))


@dataclass(frozen=True)
class Mutant:
    """A change after which the row's expectation must fail: a manifest edit and/or target knobs."""

    edit: Edit | None = None
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    id: str
    upstream: str  # the upstream behaviour the row encodes, and where it is established
    read: Callable[[Rendered], Any]
    expected: Any
    mutant: Mutant
    edit: Edit | None = None  # the manifest feature the row is about (None: the platform as it is)


def _rename_iris_provider(name: str) -> Edit:
    def change(body: Config) -> None:
        body["spec"]["jwt"]["providers"][0]["name"] = name
        body["spec"]["authorization"]["rules"][0]["principal"]["jwt"]["provider"] = name

    return on("SecurityPolicy", "sklearn-iris-jwt", change)


def _pop(key: str) -> Callable[[Config], Any]:
    return lambda body: body.pop(key)


ROWS = [
    # -- jwt_authn (internal/xds/translator/jwt.go) --------------------------------------------------------
    Row(
        "J1-provider-per-route",
        "one provider per IR route and SecurityPolicy provider, named <route>/<provider> (jwt.go)",
        lambda r: sorted(r.provider()),
        sorted(
            [
                "forward",
                "payload_in_metadata",
                "claim_to_headers",
                "issuer",
                "audiences",
                "remote_jwks",
                "normalize_payload_in_metadata",
                "from_headers",
                "require_expiration",
                "max_lifetime",
            ]
        ),
        Mutant(_rename_iris_provider("renamed")),
    ),
    Row(
        "J1-requirement",
        "each route's PerRouteConfig names its IR route as requirement (jwt.go)",
        lambda r: r.route()["typed_per_filter_config"][JWT_FILTER]["requirement_name"],
        IRIS_ROUTE,
        Mutant(_delete("SecurityPolicy", "sklearn-iris-jwt")),
    ),
    Row(
        "J2-issuer",
        "the provider's issuer is copied; empty means not checked (jwt.go)",
        lambda r: r.provider().get("issuer"),
        "inference-in-a-box",
        Mutant(_iris_provider(_pop("issuer"))),
    ),
    Row(
        "J2-audiences",
        "the provider's audiences are copied (jwt.go)",
        lambda r: r.provider().get("audiences"),
        ["inference-gateway"],
        Mutant(_iris_provider(_pop("audiences"))),
    ),
    Row(
        "J3-forward",
        "the token is always forwarded upstream (jwt.go sets forward: true)",
        lambda r: r.provider()["forward"],
        True,
        Mutant(),
    ),
    Row(
        "J4-payload-under-provider-name",
        "the verified payload is kept under the provider's name, not its key (jwt.go payload_in_metadata)",
        lambda r: r.provider()["payload_in_metadata"],
        "inference-in-a-box",
        Mutant(_rename_iris_provider("other-name")),
    ),
    Row(
        "J4-scope-split",
        "scope is split on spaces in the payload (jwt.go normalize_payload_in_metadata)",
        lambda r: r.provider()["normalize_payload_in_metadata"],
        {"space_delimited_claims": ["scope"]},
        Mutant(),
    ),
    Row(
        "J5-claim-to-headers",
        "claimToHeaders becomes claim_to_headers one to one (jwt.go)",
        lambda r: r.provider()["claim_to_headers"],
        [{"header_name": "x-jwt-tenant", "claim_name": "tenant"}, {"header_name": "x-jwt-sub", "claim_name": "sub"}],
        Mutant(_iris_provider(_pop("claimToHeaders"))),
    ),
    Row(
        "J6-jwks-fetch",
        "remote JWKS: 10 s timeout (defaultExtServiceRequestTimeout, utils.go), 300 s cache, async fetch, "
        "cluster <host>_<port>, no retry policy unless backendSettings.retry (jwt.go, oidc.go)",
        lambda r: r.provider()["remote_jwks"],
        {
            "http_uri": {
                "uri": "http://jwt-server.inference-system.svc.cluster.local:8080/.well-known/jwks.json",
                "cluster": JWKS_CLUSTER,
                "timeout": "10s",
            },
            "cache_duration": "300s",
            "async_fetch": {},
        },
        Mutant(_iris_provider(lambda p: p["remoteJWKS"].update(uri="http://jwks.other.svc.cluster.local:80/k"))),
    ),
    Row(
        "J8-default-extraction",
        "without extractFrom no location is set, so Envoy reads the Bearer header and ?access_token= (jwt.go)",
        lambda r: {k for k in r.provider() if k.startswith("from_")},
        set(),
        Mutant(_iris_provider(lambda p: p.update(extractFrom={"params": ["access_token"]}))),
        edit=_iris_provider(_pop("extractFrom")),
    ),
    Row(
        "J9-extract-from",
        "extractFrom headers/cookies/params are copied exactly (jwt.go)",
        lambda r: (r.provider().get("from_headers"), r.provider().get("from_cookies"), r.provider().get("from_params")),
        ([{"name": "Authorization", "value_prefix": "Bearer "}], None, None),
        Mutant(_iris_provider(lambda p: p["extractFrom"].update(cookies=["access_token"]))),
    ),
    Row(
        "J12-no-clock-skew",
        "no clock_skew_seconds is set, so Envoy's 60 s applies (jwt.go)",
        lambda r: r.provider().get("clock_skew_seconds"),
        None,
        Mutant(knobs={"jwt_clock_skew_s": 1}),
    ),
    Row(
        "J12-nothing-else-without-a-patch",
        "jwt.go sets neither require_expiration nor max_lifetime: only a patch adds them",
        lambda r: (r.provider().get("require_expiration"), r.provider().get("max_lifetime")),
        (None, None),
        Mutant(),  # the platform's own patch adds both
        edit=_delete("EnvoyPatchPolicy", "jwt-token-lifetime"),
    ),
    Row(
        "J13-patch-applied",
        "an EnvoyPatchPolicy's jsonPath selects every provider of the listener; add creates the field "
        "(jsonpatch.go, utils/jsonpatch)",
        lambda r: (r.provider()["require_expiration"], r.provider()["max_lifetime"]),
        (True, "900s"),
        Mutant(knobs={"patch_policy_disabled": True}),
    ),
    Row(
        "J13-patch-on-every-provider",
        "the wildcard reaches the providers of every route, the token route's none",
        lambda r: all(
            p.get("require_expiration") for p in r.http_filter(JWT_FILTER)["typed_config"]["providers"].values()
        ),
        True,
        Mutant(
            on(
                "EnvoyPatchPolicy",
                "jwt-token-lifetime",
                lambda b: b["spec"]["jsonPatches"][0]["operation"].update(
                    jsonPath=b["spec"]["jsonPatches"][0]["operation"]["jsonPath"].replace(
                        "providers.*", f"providers['{IRIS_PROVIDER}']"
                    )
                ),
            )
        ),
    ),
    # -- authorization (internal/xds/translator/authorization.go) -------------------------------------------
    Row(
        "A1-claims-read-under-provider-name",
        "RBAC reads claims from the jwt_authn metadata under the provider's name (authorization.go; Envoy "
        "Gateway writes the rule as a matcher tree, the embedded target as the equivalent RBAC policy)",
        lambda r: r.route()["typed_per_filter_config"][RBAC_FILTER]["rbac"]["rules"]["policies"]["own-tenant-only"][
            "principals"
        ][0]["metadata"]["path"],
        [{"key": "inference-in-a-box"}, {"key": "tenant"}],
        Mutant(
            on(
                "SecurityPolicy",
                "sklearn-iris-jwt",
                lambda b: (
                    b["spec"]["jwt"]["providers"][0].update(name="p2"),
                    b["spec"]["authorization"]["rules"][0]["principal"]["jwt"].update(provider="p2"),
                ),
            )
        ),
    ),
    Row(
        "A1-default-deny",
        "defaultAction Deny: only a matching Allow rule lets a request through (authorization.go)",
        lambda r: r.route()["typed_per_filter_config"][RBAC_FILTER]["rbac"]["rules"]["action"],
        "ALLOW",
        Mutant(on("SecurityPolicy", "sklearn-iris-jwt", lambda b: b["spec"].pop("authorization"))),
    ),
    # -- listener and HTTP connection manager (internal/xds/translator/listener.go) -------------------------
    Row(
        "L1-names",
        "listener <ns>/<gateway>/<listener>, HCM in default_filter_chain, stat_prefix http-<port+10000>, route "
        "configuration named after the listener, ignoring ports in host matching (listener.go, translator.go)",
        lambda r: (
            r.listener["default_filter_chain"]["name"],
            r.hcm["stat_prefix"],
            r.routes["name"],
            r.routes["ignore_port_in_host_matching"],
        ),
        (LISTENER, "http-10080", LISTENER, True),
        Mutant(on("Gateway", "inference-gateway", lambda b: b["spec"]["listeners"][0].update(name="web"))),
    ),
    Row(
        "L2-normalize-path",
        "normalize_path is always true; no field turns it off (listener.go)",
        lambda r: r.hcm["normalize_path"],
        True,
        Mutant(knobs={"skip_path_normalization": True}),
    ),
    Row(
        "L3-merge-slashes-default",
        "merge_slashes defaults to true (gatewayapi/listener.go IR default)",
        lambda r: r.hcm["merge_slashes"],
        True,
        Mutant(_ctp(lambda s: s.update(path={"disableMergeSlashes": True}))),
        edit=_ctp(lambda s: s.pop("path")),
    ),
    Row(
        "L4-escaped-slashes-default",
        "path_with_escaped_slashes_action defaults to UNESCAPE_AND_REDIRECT (gatewayapi/listener.go)",
        lambda r: r.hcm["path_with_escaped_slashes_action"],
        "UNESCAPE_AND_REDIRECT",
        Mutant(_ctp(lambda s: s.update(path={"escapedSlashesAction": "KeepUnchanged"}))),
        edit=_ctp(lambda s: s.pop("path")),
    ),
    Row(
        "L4-escaped-slashes-set",
        "escapedSlashesAction maps to Envoy's enum (listener.go translateEscapePath)",
        lambda r: r.hcm["path_with_escaped_slashes_action"],
        "REJECT_REQUEST",
        Mutant(_ctp(lambda s: s["path"].update(escapedSlashesAction="UnescapeAndForward"))),
    ),
    Row(
        "L5-underscores-default",
        "headers_with_underscores_action defaults to REJECT_REQUEST (listener.go)",
        lambda r: r.hcm["common_http_protocol_options"]["headers_with_underscores_action"],
        "REJECT_REQUEST",
        Mutant(_ctp(lambda s: s["headers"].update(withUnderscoresAction="Allow"))),
        edit=_ctp(lambda s: s["headers"].pop("withUnderscoresAction")),
    ),
    Row(
        "L6-use-remote-address",
        "without clientIPDetection the connection's address is the client's (listener.go)",
        lambda r: r.hcm["use_remote_address"],
        True,
        Mutant(),
        edit=None,
    ),
    Row(
        "L7-server-header",
        "server_header_transformation PASS_THROUGH: the gateway's own replies carry no server header (listener.go)",
        lambda r: r.hcm["server_header_transformation"],
        "PASS_THROUGH",
        Mutant(),
    ),
    Row(
        "L8-buffer-limit-default",
        "the listener's per-connection buffer is 32768 bytes unless connection.bufferLimit (listener.go)",
        lambda r: r.listener["per_connection_buffer_limit_bytes"],
        32768,
        Mutant(_ctp(lambda s: s.update(connection={"bufferLimit": "1Mi"}))),
    ),
    Row(
        "L10-early-header-removal",
        "earlyRequestHeaders.remove becomes the early header mutation extension (listener.go)",
        lambda r: r.hcm["early_header_mutation_extensions"][0]["typed_config"]["mutations"],
        [{"remove": "x-jwt-tenant"}, {"remove": "x-jwt-sub"}],
        Mutant(_ctp(lambda s: s["headers"].pop("earlyRequestHeaders"))),
    ),
    Row(
        "L11-envoy-headers-suppressed",
        "the router suppresses x-envoy-* response headers (xds/filters/wellknown.go)",
        lambda r: r.hcm["http_filters"][-1]["typed_config"].get("suppress_envoy_headers"),
        True,
        Mutant(),
    ),
    Row(
        "L13-filter-order",
        "filters in Envoy Gateway's order: fault, jwt_authn, buffer, lua, rbac, local_ratelimit, router "
        "(httpfilters.go)",
        lambda r: [f["name"].split("/")[0] for f in r.hcm["http_filters"]],
        [JWT_FILTER, BUFFER_FILTER, LUA_FILTER, RBAC_FILTER, RATELIMIT_FILTER, "envoy.filters.http.router"],
        Mutant(_delete("EnvoyExtensionPolicy", "jwt-issued-at")),
    ),
    # -- routes (gatewayapi/route.go, xds/translator/route.go) ----------------------------------------------
    Row(
        "R1-virtual-host",
        "a virtual host <listener>/<host with . as _> per host, domains [host] (translator.go)",
        lambda r: sorted(
            v["name"] for v in r.routes["virtual_hosts"] if v["domains"] == ["sklearn-iris.tenant-a.inference.example"]
        ),
        [f"{LISTENER}/{IRIS_HOST}"],
        Mutant(
            on("HTTPRoute", "sklearn-iris", lambda b: b["spec"].update(hostnames=["iris.tenant-a.inference.example"]))
        ),
    ),
    Row(
        "R2-path-separated-prefix",
        "PathPrefix matches whole segments: path_separated_prefix without the trailing / (route.go)",
        lambda r: r.route()["match"],
        {"path_separated_prefix": "/v1/models"},
        Mutant(_iris_rule(lambda rule: rule["matches"][0]["path"].update(type="Exact"))),
    ),
    Row(
        "R5-no-timeout-by-default",
        "without timeouts no route timeout is emitted, so Envoy's 15 s applies (route.go getEffectiveRequestTimeout)",
        lambda r: (r.route()["route"].get("timeout"), r.route()["route"].get("idle_timeout")),
        (None, None),
        Mutant(_iris_rule(lambda rule: rule.update(timeouts={"request": "30s"}))),
    ),
    Row(
        "R3-request-timeout",
        "timeouts.request sets the route timeout, and the idle timeout to at least an hour (route.go)",
        lambda r: (r.route()["route"]["timeout"], r.route()["route"]["idle_timeout"]),
        ("30s", "3600s"),
        Mutant(_iris_rule(lambda rule: rule["timeouts"].update(request="45s"))),
        edit=_iris_rule(lambda rule: rule.update(timeouts={"request": "30s"})),
    ),
    Row(
        "R4-backend-request-overwrites",
        "timeouts.backendRequest overwrites the route timeout when the rule has no retry (gatewayapi/route.go)",
        lambda r: r.route()["route"]["timeout"],
        "5s",
        Mutant(_iris_rule(lambda rule: rule["timeouts"].pop("backendRequest"))),
        edit=_iris_rule(lambda rule: rule.update(timeouts={"request": "30s", "backendRequest": "5s"})),
    ),
    Row(
        "R6-unresolved-backend",
        "a rule whose backend does not resolve answers 500 without a body (gatewayapi/route.go)",
        lambda r: r.route()["direct_response"],
        {"status": 500},
        Mutant(_iris_rule(lambda rule: rule["backendRefs"][0].update(name="istio-ingressgateway"))),
        edit=_iris_rule(lambda rule: rule["backendRefs"][0].update(name="missing")),
    ),
    # -- backend traffic (xds/translator: cluster.go, local_ratelimit.go, request_buffer.go) ------------------
    Row(
        "B3-B7-B10-cluster-defaults",
        # (The 10 s connect timeout is checked where no BackendTrafficPolicy sets one: the platform's
        # own policies set 2 s; see test_resilience_config.)
        "every backend cluster: LEAST_REQUEST, 32 KiB buffer, max_retries 1024 (cluster.go)",
        lambda r: {
            k: r.cluster(MODEL_CLUSTER).get(k)
            for k in ("lb_policy", "per_connection_buffer_limit_bytes", "circuit_breakers")
        },
        {
            "lb_policy": "LEAST_REQUEST",
            "per_connection_buffer_limit_bytes": 32768,
            "circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "max_retries": 1024}]},
        },
        Mutant(),
    ),
    Row(
        "B11-request-buffer",
        "requestBuffer.limit: the buffer filter enabled per route with max_request_bytes (request_buffer.go)",
        lambda r: r.route()["typed_per_filter_config"][BUFFER_FILTER]["buffer"]["max_request_bytes"],
        1048576,
        Mutant(_iris_btp(lambda s: s["requestBuffer"].update(limit="2Mi"))),
    ),
    Row(
        "B12-rate-limit-descriptors",
        "a header-selected rule: descriptor key and value rule-<r>-match-<m>, no x-ratelimit headers "
        "(local_ratelimit.go)",
        lambda r: (
            r.route()["typed_per_filter_config"][RATELIMIT_FILTER]["descriptors"][0]["entries"],
            "enable_x_ratelimit_headers" in r.route()["typed_per_filter_config"][RATELIMIT_FILTER],
            r.route()["typed_per_filter_config"][RATELIMIT_FILTER]["stat_prefix"],
        ),
        ([{"key": "rule-0-match-0", "value": "rule-0-match-0"}], False, "http_local_rate_limiter"),
        Mutant(_iris_btp(lambda s: s["rateLimit"]["local"]["rules"][0].pop("clientSelectors"))),
    ),
    Row(
        "E1-lua-per-route",
        "an EnvoyExtensionPolicy's Lua runs as envoy.filters.http.lua/<policy>/lua/<i>, disabled on the listener "
        "and enabled per route (lua.go)",
        lambda r: sorted(k for k in r.route()["typed_per_filter_config"] if k.startswith(LUA_FILTER)),
        [f"{LUA_FILTER}/envoyextensionpolicy/envoy-gateway-system/jwt-issued-at/lua/0"],
        Mutant(_delete("EnvoyExtensionPolicy", "jwt-issued-at")),
    ),
    # -- Istio 1.26 sidecars (pilot/pkg/security/authn/policy_applier.go) --------------------------------------
    Row(
        "S1-sidecar-provider",
        "a RequestAuthentication rule becomes provider origins-<i>: payload under 'payload', scope and "
        "permission split, token not forwarded unless forwardOriginalToken, CORS preflights bypassed",
        lambda r: (
            sorted(r.sidecar_jwt["providers"]),
            r.sidecar_jwt["providers"]["origins-0"]["payload_in_metadata"],
            r.sidecar_jwt["providers"]["origins-0"]["normalize_payload_in_metadata"],
            r.sidecar_jwt["providers"]["origins-0"]["forward"],
            r.sidecar_jwt["bypass_cors_preflight"],
        ),
        (["origins-0"], "payload", {"space_delimited_claims": ["scope", "permission"]}, False, True),
        Mutant(_tenant_a_rule(lambda rule: rule.update(forwardOriginalToken=True))),
    ),
    Row(
        "S2-sidecar-extraction",
        "fromHeaders becomes from_headers; nothing else is read (policy_applier.go)",
        lambda r: (
            r.sidecar_jwt["providers"]["origins-0"].get("from_headers"),
            r.sidecar_jwt["providers"]["origins-0"].get("from_params"),
        ),
        ([{"name": "Authorization", "value_prefix": "Bearer "}], None),
        Mutant(_tenant_a_rule(lambda rule: rule.pop("fromHeaders"))),
    ),
    Row(
        "S4-sidecar-no-lifetime-checks",
        "istiod sets no clock skew, require_expiration or max_lifetime (policy_applier.go)",
        lambda r: {
            k
            for k in r.sidecar_jwt["providers"]["origins-0"]
            if k in ("clock_skew_seconds", "require_expiration", "max_lifetime")
        },
        set(),
        Mutant(),
    ),
    Row(
        "S6-sidecar-route",
        "Istio names its proxy istio-envoy; in a model pod Knative's queue-proxy cuts a request off after "
        "config-defaults' revision-timeout-seconds, 300 s by default (Knative pkg/apis/config/defaults.go)",
        lambda r: (
            r.sidecar_hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["timeout"],
            r.sidecar_hcm["server_name"],
        ),
        ("300s", "istio-envoy"),
        Mutant(_config_defaults({"revision-timeout-seconds": "1"})),
    ),
    Row(
        "K1-revision-timeouts",
        "config-defaults' revision timeout and idle timeout bound a model request (queue-proxy's timeout handler)",
        lambda r: r.sidecar_hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"],
        {"cluster": "app", "timeout": "20s", "idle_timeout": "5s"},
        Mutant(_config_defaults({"revision-timeout-seconds": "20"})),
        edit=_config_defaults({"revision-timeout-seconds": "20", "revision-idle-timeout-seconds": "5"}),
    ),
]


def _observe(row: Row, tmp_path: Path, mutant: Mutant | None = None) -> Any:
    manifests = row.edit(MANIFESTS) if row.edit else MANIFESTS
    knobs: dict[str, Any] = {}
    if mutant is not None:
        manifests = mutant.edit(manifests) if mutant.edit else manifests
        knobs = mutant.knobs
    try:
        return row.read(render(manifests, knobs, tmp_path))
    except (KeyError, StopIteration, IndexError) as exc:
        return f"<absent: {type(exc).__name__} {exc}>"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_the_embedded_target_emits_what_upstream_emits(row: Row, tmp_path: Path) -> None:
    observed = _observe(row, tmp_path)
    assert observed == row.expected, f"{row.id}: upstream ({row.upstream}) emits {row.expected!r}, we emit {observed!r}"


# Rows whose field no manifest or knob of the embedded target can change (Envoy Gateway emits them
# unconditionally); each names why its mutant is empty.
UNCONDITIONAL = {
    "J3-forward": "jwt.go always forwards; no SecurityPolicy field changes it",
    "J4-scope-split": "jwt.go always splits scope; no SecurityPolicy field changes it",
    "L6-use-remote-address": "no clientIPDetection field is interpreted; the row guards the constant",
    "L7-server-header": "Envoy Gateway has no field for it",
    "L11-envoy-headers-suppressed": "headers.enableEnvoyHeaders is outside the declared subset",
    "B3-B7-B10-cluster-defaults": "BackendTrafficPolicy connection/loadBalancer are outside the declared subset",
    "S4-sidecar-no-lifetime-checks": "Istio has no field for them",
    "J12-nothing-else-without-a-patch": "the mutant is the platform itself: its patch adds both fields",
}


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_a_mutant_flips_every_row(row: Row, tmp_path: Path) -> None:
    """The table catches drift: each row's mutant changes what is emitted, so the row fails on it."""
    if row.mutant == Mutant():
        assert row.id in UNCONDITIONAL, f"{row.id} has no mutant and no reason why none can exist"
        if row.id != "J12-nothing-else-without-a-patch":
            return
        observed = _observe(replace(row, edit=None), tmp_path)
    else:
        observed = _observe(row, tmp_path, row.mutant)
    assert observed != row.expected, f"{row.id}: its mutant leaves {observed!r}; the row would not catch it"
