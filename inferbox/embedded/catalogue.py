"""The embedded target's metric catalogue and trace naming.

The gateway is upstream Envoy with Envoy Gateway's tags; its PodMonitor adds ``tenant`` and
``model`` labels from the cluster names. The gateway's HTTP connection manager is named as
Envoy Gateway names it (``http-10080``), and so is its rate limiter (``http_local_rate_limiter``;
see gateway_config.py). Model
servers are KServe's (``request_predict_seconds``, label ``model_name``), scraped with ``tenant``
and ``model`` target labels. There is no autoscaler: replicas are the model's scraped replicas.
"""

from __future__ import annotations

from inferbox.contract import MetricCatalogue, Signal, TraceNaming

GATEWAY = 'namespace="envoy-gateway-system"'
ROUTE = 'tenant="{tenant}",model="{model}"'

QUERIES = {
    Signal.REQUESTS: f'sum(envoy_cluster_upstream_rq{{{GATEWAY},{ROUTE},envoy_response_code=~"{{code}}"}})',
    Signal.REQUEST_LATENCY_COUNT: f"sum(envoy_cluster_upstream_rq_time_count{{{GATEWAY},{ROUTE}}})",
    Signal.REQUEST_LATENCY_QUANTILE: (
        f"histogram_quantile({{q}}, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{{{GATEWAY},{ROUTE}}}"
        "[{window}]))) / 1000"
    ),
    Signal.JWT_ALLOWED: f'sum(envoy_http_jwt_authn_allowed{{{GATEWAY},envoy_http_conn_manager_prefix="http-10080"}})',
    Signal.JWT_DENIED: f'sum(envoy_http_jwt_authn_denied{{{GATEWAY},envoy_http_conn_manager_prefix="http-10080"}})',
    Signal.AUTHZ_DENIED: f'sum(envoy_http_rbac_denied{{{GATEWAY},envoy_http_conn_manager_prefix="http-10080"}})',
    Signal.GATEWAY_4XX: (
        f"sum(envoy_http_downstream_rq_xx{{{GATEWAY},"
        'envoy_http_conn_manager_prefix="http-10080",envoy_response_code_class="4"})'
    ),
    Signal.RATE_LIMITED: (
        f'sum(envoy_http_local_rate_limit_enforced{{{GATEWAY},envoy_local_http_ratelimit_prefix="http_local_rate_limiter"}})'
    ),
    Signal.REPLICAS: 'count(up{tenant="{tenant}",model="{model}"} == 1)',
    Signal.COLD_STARTS: (
        'count(max by (pod) (process_start_time_seconds{tenant="{tenant}",model="{model}"}) > time() - {window_s})'
    ),
    Signal.MODEL_LATENCY_COUNT: 'sum(request_predict_seconds_count{tenant="{tenant}",model_name="{model}"})',
    Signal.MODEL_LATENCY_QUANTILE: (
        'histogram_quantile({q}, sum by (le) (rate(request_predict_seconds_bucket{tenant="{tenant}",'
        'model_name="{model}"}[{window}])))'
    ),
}

CATALOGUE = MetricCatalogue(
    target="embedded",
    queries=QUERIES,
    gateway_target=f'up{{{GATEWAY},container="envoy"}}',
    issuer_target='up{namespace="inference-system",service="jwt-server"}',
    model_target='up{tenant="{tenant}",model="{model}"}',
)


def trace_naming(gateway_service: str) -> TraceNaming:
    # Model servers name their spans' service as Istio names a sidecar's: <app>.<namespace>.
    return TraceNaming(gateway_service=gateway_service, model_service="{model}-predictor\\.{tenant}")
