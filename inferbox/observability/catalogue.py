"""The platform's metric catalogue: one table of PromQL for every target, and the per-target
differences as data.

Both targets run the same Envoy configured as Envoy Gateway 1.4.2 configures it (its HTTP connection
manager ``http-10080``, its rate limiter ``http_local_rate_limiter``, our PodMonitor's ``tenant`` and
``model`` labels from the cluster names) and KServe's model server (``request_predict_seconds``, label
``model_name``). They differ in how a model's ready replicas are counted: on a cluster Knative's
autoscaler reports them; the embedded target has no such exporter, so it counts the model's scraped
replicas.
"""

from __future__ import annotations

from inferbox.contract import MetricCatalogue, Signal

GATEWAY = 'namespace="envoy-gateway-system"'
ROUTE = 'tenant="{tenant}",model="{model}"'
# Envoy Gateway maps the Gateway's listener port 80 to 10080 and names the HCM http-<port>.
HCM_PREFIX = 'envoy_http_conn_manager_prefix="http-10080"'
RATE_LIMITER = 'envoy_local_http_ratelimit_prefix="http_local_rate_limiter"'

# -- what differs between targets ---------------------------------------------------------------
# Knative's autoscaler counts the revision's ready pods (the KPA; the configuration is <isvc>-predictor).
REPLICAS_FROM_KNATIVE = 'sum(autoscaler_actual_pods{namespace_name="{tenant}",configuration_name="{model}-predictor"})'
# Without an autoscaler exporter: the model's replicas that Prometheus scrapes successfully.
REPLICAS_FROM_SCRAPES = 'count(up{tenant="{tenant}",model="{model}"} == 1)'

SHARED: dict[Signal, str] = {
    Signal.REQUESTS: f'sum(envoy_cluster_upstream_rq{{{GATEWAY},{ROUTE},envoy_response_code=~"{{code}}"}})',
    Signal.REQUEST_LATENCY_COUNT: f"sum(envoy_cluster_upstream_rq_time_count{{{GATEWAY},{ROUTE}}})",
    Signal.REQUEST_LATENCY_QUANTILE: (
        f"histogram_quantile({{q}}, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{{{GATEWAY},{ROUTE}}}"
        "[{window}]))) / 1000"
    ),
    Signal.JWT_ALLOWED: f"sum(envoy_http_jwt_authn_allowed{{{GATEWAY},{HCM_PREFIX}}})",
    Signal.JWT_DENIED: f"sum(envoy_http_jwt_authn_denied{{{GATEWAY},{HCM_PREFIX}}})",
    Signal.AUTHZ_DENIED: f"sum(envoy_http_rbac_denied{{{GATEWAY},{HCM_PREFIX}}})",
    Signal.GATEWAY_4XX: f'sum(envoy_http_downstream_rq_xx{{{GATEWAY},{HCM_PREFIX},envoy_response_code_class="4"}})',
    Signal.RATE_LIMITED: f"sum(envoy_http_local_rate_limit_enforced{{{GATEWAY},{RATE_LIMITER}}})",
    Signal.COLD_STARTS: (
        'count(max by (pod) (process_start_time_seconds{tenant="{tenant}",model="{model}"}) > time() - {window_s})'
    ),
    Signal.MODEL_LATENCY_COUNT: 'sum(request_predict_seconds_count{tenant="{tenant}",model_name="{model}"})',
    Signal.MODEL_LATENCY_QUANTILE: (
        'histogram_quantile({q}, sum by (le) (rate(request_predict_seconds_bucket{tenant="{tenant}",'
        'model_name="{model}"}[{window}])))'
    ),
}


def catalogue(target: str, replicas: str) -> MetricCatalogue:
    """The catalogue of one target: the shared queries and its way of counting ready replicas."""
    return MetricCatalogue(
        target=target,
        queries={**SHARED, Signal.REPLICAS: replicas},
        gateway_target=f'up{{{GATEWAY},container="envoy"}}',
        issuer_target='up{namespace="inference-system",service="jwt-server"}',
        model_target='up{tenant="{tenant}",model="{model}"}',
    )
