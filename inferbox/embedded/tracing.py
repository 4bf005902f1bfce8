"""Tracing and gateway metrics settings from the manifests, and the Envoy configuration they become.

- The gateway's tracing comes from the ``EnvoyProxy`` its GatewayClass names
  (``spec.telemetry.tracing``), translated as Envoy Gateway 1.4 does: Envoy's OpenTelemetry tracer,
  ``random_sampling`` = ``samplingRate``, upstream child spans on, custom tags, and the service name
  ``<gateway>.<namespace>``. Envoy Gateway exports over OTLP/gRPC; the embedded gateway exports over
  OTLP/HTTP (Envoy's ``http_service``) to the trace store, which stands in for the Service
  ``monitoring/jaeger-collector``.
- The gateway's Prometheus endpoint follows ``spec.telemetry.metrics.prometheus.disable``: like
  Envoy Gateway, a listener on the pod's port 19001 serving ``/stats/prometheus`` from Envoy's admin.
- The mesh's tracing comes from Istio ``Telemetry`` objects (mesh-wide in ``istio-system``, or per
  namespace): the provider ``jaeger`` is the installer's extension provider, which on the embedded
  target is the trace store; ``randomSamplingPercentage`` applies to requests that arrive without a
  sampling decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet

MESH_ROOT_NAMESPACE = "istio-system"
# Envoy Gateway's data-plane metrics port and the Jaeger collector the platform's manifests name.
GATEWAY_METRICS_PORT = 19001
TRACE_COLLECTOR = ("monitoring", "jaeger-collector")
MESH_TRACE_PROVIDERS = {"jaeger"}
OTEL_CONFIG = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


@dataclass(frozen=True)
class CustomTag:
    tag: str
    kind: str  # Literal, Environment or RequestHeader
    name_or_value: str
    default: str = ""


@dataclass(frozen=True)
class GatewayTracing:
    sampling_percent: float
    service_name: str
    custom_tags: tuple[CustomTag, ...]


@dataclass(frozen=True)
class MeshTracing:
    sampling_percent: float
    reporting: bool


def envoy_proxy_for_gateway(manifests: ManifestSet) -> K8sObject | None:
    """The EnvoyProxy that the (one) gateway's GatewayClass points at, if any."""
    for gateway in manifests.of_kind("Gateway"):
        cls = manifests.get("GatewayClass", gateway.spec.get("gatewayClassName", ""))
        ref = (cls.spec.get("parametersRef") if cls else None) or {}
        if ref.get("kind") == "EnvoyProxy":
            proxy = manifests.get("EnvoyProxy", ref["name"], ref.get("namespace"))
            if proxy is None:
                raise ManifestError(
                    f"GatewayClass {cls.name if cls else '?'} names EnvoyProxy {ref.get('namespace')}/{ref['name']}, "
                    "which is not in the manifests",
                    "add the EnvoyProxy or remove the parametersRef",
                )
            return proxy
    return None


def gateway_tracing(manifests: ManifestSet, gateway: str) -> GatewayTracing | None:
    """``gateway`` is namespace/name. None when the EnvoyProxy sets no tracing."""
    proxy = envoy_proxy_for_gateway(manifests)
    tracing = ((proxy.spec.get("telemetry") or {}).get("tracing") if proxy else None) or None
    if proxy is None or tracing is None:
        return None
    for ref in (tracing.get("provider") or {}).get("backendRefs") or []:
        where = (ref.get("namespace", proxy.namespace), ref["name"])
        if where != TRACE_COLLECTOR:
            raise ManifestError(
                f"{proxy.source}: {proxy.ref}: spec.telemetry.tracing.provider.backendRefs names "
                f"{where[0]}/{where[1]}; the embedded target's trace store stands in for "
                f"{TRACE_COLLECTOR[0]}/{TRACE_COLLECTOR[1]} only",
                f"send traces to Service {TRACE_COLLECTOR[1]} in namespace {TRACE_COLLECTOR[0]}",
            )
    if not (tracing.get("provider") or {}).get("backendRefs"):
        raise ManifestError(
            f"{proxy.source}: {proxy.ref}: spec.telemetry.tracing.provider has no backendRefs",
            f"add a backendRef to Service {TRACE_COLLECTOR[0]}/{TRACE_COLLECTOR[1]}",
        )
    tags = []
    for tag, spec in sorted((tracing.get("customTags") or {}).items()):
        kind = spec["type"]
        detail = spec.get({"Literal": "literal", "Environment": "environment", "RequestHeader": "requestHeader"}[kind])
        if not detail:
            raise ManifestError(
                f"{proxy.source}: {proxy.ref}: custom tag {tag} of type {kind} has no details",
                f"add the {kind[0].lower() + kind[1:]} block",
            )
        value = detail.get("value") if kind == "Literal" else detail.get("name")
        tags.append(CustomTag(tag, kind, str(value), str(detail.get("defaultValue", ""))))
    name, namespace = gateway.split("/")[1], gateway.split("/")[0]
    return GatewayTracing(float(tracing.get("samplingRate", 100)), f"{name}.{namespace}", tuple(tags))


def gateway_metrics_enabled(manifests: ManifestSet) -> bool:
    proxy = envoy_proxy_for_gateway(manifests)
    metrics = ((proxy.spec.get("telemetry") or {}).get("metrics") if proxy else None) or {}
    return not (metrics.get("prometheus") or {}).get("disable", False)


def mesh_tracing(manifests: ManifestSet, namespace: str) -> MeshTracing | None:
    """The tracing a sidecar in ``namespace`` applies: the namespace's Telemetry, else the mesh's."""
    chosen = None
    for scope in (namespace, MESH_ROOT_NAMESPACE):
        found = [t for t in manifests.of_kind("Telemetry") if t.namespace == scope and t.spec.get("tracing")]
        if len(found) > 1:
            raise ManifestError(
                f"namespace {scope} has {len(found)} Telemetry objects with tracing", "Istio applies one; merge them"
            )
        if found:
            chosen = found[0]
            break
    if chosen is None:
        return None
    entry = chosen.spec["tracing"][0]
    for provider in entry.get("providers") or []:
        if provider["name"] not in MESH_TRACE_PROVIDERS:
            raise ManifestError(
                f"{chosen.source}: {chosen.ref}: tracing provider {provider['name']!r} is unknown to the embedded "
                "target",
                f"use one of {sorted(MESH_TRACE_PROVIDERS)} (the installer's extension provider for Jaeger)",
            )
    return MeshTracing(
        float(entry.get("randomSamplingPercentage", 1.0)),  # Istio's default sampling is 1%
        not entry.get("disableSpanReporting", False),
    )


# -- the gateway's Envoy bootstrap ------------------------------------------------------------
def _static_cluster(name: str, host: str, port: int) -> dict[str, Any]:
    address = {"socket_address": {"address": host, "port_value": port}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _gateway_hcms(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for listener in bootstrap["static_resources"]["listeners"]:
        chains = [*(listener.get("filter_chains") or []), listener.get("default_filter_chain") or {}]
        for chain in chains:
            for flt in chain.get("filters") or []:
                config = flt.get("typed_config") or {}
                # Envoy Gateway names the HTTP listener's connection manager http-<port>.
                ours = config.get("@type") == HCM and str(config.get("stat_prefix", "")).startswith("http-")
                if ours and not any(config is seen for seen in found):
                    found.append(config)
    return found


def _envoy_tag(tag: CustomTag) -> dict[str, Any]:
    if tag.kind == "Literal":
        return {"tag": tag.tag, "literal": {"value": tag.name_or_value}}
    if tag.kind == "Environment":
        return {"tag": tag.tag, "environment": {"name": tag.name_or_value, "default_value": tag.default}}
    return {"tag": tag.tag, "request_header": {"name": tag.name_or_value, "default_value": tag.default}}


def add_gateway_tracing(
    bootstrap: dict[str, Any], tracing: GatewayTracing, collector: tuple[str, int], flush_interval_ms: int
) -> None:
    """Turns on Envoy's OpenTelemetry tracer on the gateway's HTTP connection manager."""
    host, port = collector
    config = {
        "random_sampling": {"value": tracing.sampling_percent},
        "client_sampling": {"value": 100},
        "overall_sampling": {"value": 100},
        "spawn_upstream_span": True,
        "custom_tags": [_envoy_tag(t) for t in tracing.custom_tags],
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": OTEL_CONFIG,
                "http_service": {
                    "http_uri": {
                        "uri": f"http://{host}:{port}/v1/traces",
                        "cluster": "trace_collector",
                        "timeout": "2s",
                    }
                },
                "service_name": tracing.service_name,
            },
        },
    }
    hcms = _gateway_hcms(bootstrap)
    if not hcms:
        raise RuntimeError("the gateway bootstrap has no HTTP connection manager with stat_prefix 'gateway'")
    for hcm in hcms:
        hcm["tracing"] = config
    bootstrap["static_resources"]["clusters"].append(
        {
            "name": "trace_collector",
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": "trace_collector",
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                        ]
                    }
                ],
            },
        }
    )
    # Envoy batches spans and exports every flush interval (5 s by default); a short interval keeps
    # a request's trace queryable within about a second on the embedded target.
    bootstrap.setdefault("layered_runtime", {"layers": []})["layers"].append(
        {"name": "tracing", "static_layer": {"tracing.opentelemetry.flush_interval_ms": flush_interval_ms}}
    )


def add_gateway_metrics(bootstrap: dict[str, Any], address: tuple[str, int]) -> None:
    """A listener serving only GET /stats/prometheus from the admin interface (Envoy Gateway's
    ``metrics`` port). Histograms are merged whenever the stats are read, so a scrape shows them as
    of the previous scrape (instead of up to Envoy's 5 s flush interval behind)."""
    admin = bootstrap["admin"]["address"]["socket_address"]
    route = {
        "match": {
            "prefix": "/stats/prometheus",
            "headers": [{"name": ":method", "string_match": {"exact": "GET"}}],
        },
        "route": {"cluster": "prometheus_stats"},
    }
    hcm = {
        "@type": HCM,
        "stat_prefix": "prometheus_stats",
        "route_config": {"virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    bootstrap["static_resources"]["listeners"].append(
        {
            "name": "prometheus-stats",
            "address": {"socket_address": {"address": address[0], "port_value": address[1]}},
            "filter_chains": [
                {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
            ],
        }
    )
    bootstrap["static_resources"]["clusters"].append(
        _static_cluster("prometheus_stats", admin["address"], int(admin["port_value"]))
    )
    bootstrap["stats_flush_on_admin"] = True


def add_merged_metrics(
    bootstrap: dict[str, Any], listen: tuple[str, int], app: tuple[str, int] | None, path: str
) -> None:
    """Istio's merged-metrics port on a sidecar: plaintext GET /stats/prometheus answered with the
    application's own metrics (``app`` at ``path``, as the pod's prometheus.io annotations say), or an
    empty page when the pod declares none. The Istio agent also merges the sidecar's Envoy stats in;
    the checks read only the application's series from this port."""
    route: dict[str, Any] = {
        "match": {"prefix": "/stats/prometheus", "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
    }
    if app is not None:
        route["route"] = {"cluster": "app_metrics", "prefix_rewrite": path}
        bootstrap["static_resources"]["clusters"].append(_static_cluster("app_metrics", *app))
    else:
        route["direct_response"] = {"status": 200, "body": {"inline_string": ""}}
    hcm = {
        "@type": HCM,
        "stat_prefix": "merged_metrics",
        "route_config": {"virtual_hosts": [{"name": "metrics", "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }
    bootstrap["static_resources"]["listeners"].append(
        {
            "name": "merged-metrics",
            "address": {"socket_address": {"address": listen[0], "port_value": listen[1]}},
            "filter_chains": [
                {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
            ],
        }
    )
