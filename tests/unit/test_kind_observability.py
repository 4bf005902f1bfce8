"""The Kind side of observability, as far as it can be checked without a cluster: the catalogue's
names against the list of names the pinned versions emit, the rendered dashboard ConfigMaps and
monitors, and the Grafana and Kiali checks against fakes of their APIs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferbox.cluster import observability as kind
from inferbox.cluster.helm_values import plan_values
from inferbox.cluster.installer import PlanOptions, build_plan
from inferbox.cluster.versions import load_versions
from inferbox.contract import Signal
from inferbox.embedded.catalogue import CATALOGUE as EMBEDDED
from inferbox.manifests import DEFAULT_MANIFEST_DIR, ManifestSet, load_manifests
from inferbox.observability.dashboards import all_panels, load_dashboard
from inferbox.observability.grafana import missing_dashboards, prometheus_datasource_problem
from inferbox.observability.kiali import edges, traffic_edge
from tests.cluster.upstream_data import pinned_schemas


def test_every_signal_has_promql_on_both_targets() -> None:
    assert set(kind.CATALOGUE.queries) == set(Signal)
    assert set(EMBEDDED.queries) == set(Signal)


@pytest.mark.parametrize("signal", list(Signal))
def test_kind_catalogue_uses_only_names_the_pinned_versions_emit(signal: Signal) -> None:
    assert kind.unknown_names(kind.CATALOGUE.queries[signal]) == []


def test_kind_target_selectors_use_known_names() -> None:
    for selector in (kind.CATALOGUE.gateway_target, kind.CATALOGUE.issuer_target, kind.CATALOGUE.model_target):
        assert kind.unknown_names(selector) == []


@pytest.mark.parametrize("panel", all_panels(DEFAULT_MANIFEST_DIR), ids=lambda p: p.id)
def test_dashboard_panels_use_only_names_both_targets_emit(panel: Any) -> None:
    for expr in panel.exprs:
        assert kind.unknown_names(expr) == [], expr


def test_names_that_do_not_exist_are_caught() -> None:
    assert kind.unknown_names("rate(kserve_request_duration_seconds_bucket[5m])") == [
        "metric kserve_request_duration_seconds_bucket is not emitted by any pinned component"
    ]
    assert kind.unknown_names('sum(istio_requests_total{response_code="200"})') == []
    assert kind.unknown_names("sum(istio_request_total)") != []
    assert kind.unknown_names('envoy_cluster_upstream_rq{cluster_name="x"}') == [
        "envoy_cluster_upstream_rq has no label cluster_name"
    ]
    assert kind.unknown_names("activator_request_count_total") != [], "Knative 1.18 counters have no _total"


def test_every_listed_name_says_where_it_was_read() -> None:
    assert all(source for _, source in kind.KIND_METRICS.values())


def test_catalogue_fills_placeholders() -> None:
    query = kind.CATALOGUE.query(Signal.REQUESTS, tenant="tenant-a", model="sklearn-iris", code="200")
    assert 'tenant="tenant-a",model="sklearn-iris",envoy_response_code=~"200"' in query
    assert kind.CATALOGUE.query(Signal.REPLICAS, tenant="t", model="m") == (
        'sum(autoscaler_actual_pods{namespace_name="t",configuration_name="m-predictor"})'
    )
    with pytest.raises(KeyError, match="needs the parameter code"):
        kind.CATALOGUE.query(Signal.REQUESTS, tenant="t", model="m")


def test_trace_naming_matches_istio_and_envoy_gateway_names() -> None:
    assert kind.TRACES.model_service_pattern("tenant-a", "sklearn-iris").fullmatch(
        "sklearn-iris-predictor-00001.tenant-a"
    )
    assert not kind.TRACES.model_service_pattern("tenant-a", "sklearn-iris").fullmatch(
        "sklearn-iris-predictor.tenant-c"
    )


def test_observability_from_endpoints() -> None:
    got = kind.observability(kind.Endpoints("http://p", "http://j/jaeger", "http://g", kiali="http://k"))
    assert (got.prometheus_url, got.jaeger_query_url, got.grafana_url, got.kiali_url) == (
        "http://p",
        "http://j/jaeger",
        "http://g",
        "http://k",
    )
    assert got.traces is kind.TRACES
    assert got.metrics_deadline_s() == 3 * kind.SCRAPE_INTERVAL_S + 10, "3 scrapes, a target update, 5 s margin"
    bare = kind.observability(kind.Endpoints("http://p"))
    assert bare.traces is None
    assert bare.grafana_auth is None
    assert not bare.mesh_graph


def test_dashboard_configmaps_for_grafanas_sidecar(tmp_path: Path) -> None:
    maps = kind.dashboard_configmaps(DEFAULT_MANIFEST_DIR)
    assert len(maps) == len(list(DEFAULT_MANIFEST_DIR.rglob("dashboards/*.json")))
    first = maps[0]
    assert first["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert first["metadata"]["namespace"] == "monitoring"
    assert len(first["metadata"]["name"]) <= 63
    ((name, text),) = first["data"].items()
    assert json.loads(text) == load_dashboard(DEFAULT_MANIFEST_DIR / "platform/monitoring/dashboards" / name)


def test_objects_to_apply_are_the_monitors_and_telemetry(manifests: ManifestSet) -> None:
    kinds = sorted({o.kind for o in kind.objects_to_apply(manifests)})
    assert kinds == ["PodMonitor", "ServiceMonitor", "Telemetry"]
    monitored = {
        o.spec["selector"]["matchLabels"].get("serving.kserve.io/inferenceservice")
        for o in manifests.of_kind("PodMonitor")
    }
    assert {m.name for m in manifests.of_kind("InferenceService")} <= monitored, "every model has its PodMonitor"


PLAN = build_plan(PlanOptions("kind", "kind-x", load_manifests(), load_versions(environ={}), kind_name="x"))


def _values(chart: str) -> dict[str, Any]:
    """The values the installer installs ``chart`` with."""
    [values] = [v for _, name, v in plan_values(PLAN) if name == chart]
    return dict(values)


def _installed_values(chart: str) -> dict[str, Any]:
    """The installer's values over the pinned chart's defaults (skipped, naming how to fetch the
    pinned charts, where they are not on this machine)."""
    merged: dict[str, Any] = _merged(pinned_schemas().chart_values(chart), _values(chart))
    return merged


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in over.items()}}
    return over


def test_the_installers_values_select_our_monitors() -> None:
    spec = _values("kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["scrapeInterval"] == f"{kind.SCRAPE_INTERVAL_S:.0f}s"
    providers = _values("istiod")["meshConfig"]["extensionProviders"]
    assert [p["name"] for p in providers] == ["jaeger"], "the name the Telemetry manifest uses"
    assert _values("kiali-server")["external_services"]["tracing"]["internal_url"] == (
        "http://jaeger-query.monitoring:16686"
    )


def test_grafanas_sidecar_as_installed_loads_our_dashboards() -> None:
    dashboards = _installed_values("kube-prometheus-stack")["grafana"]["sidecar"]["dashboards"]
    assert (dashboards["label"], dashboards["labelValue"]) == kind.DASHBOARD_LABEL
    assert dashboards["enabled"] is True


def test_kiali_reaches_jaeger_where_the_chart_serves_its_query_api() -> None:
    """One source of values: Kiali's tracing URL is the Jaeger query Service at the base path the
    Jaeger chart's all-in-one serves (its default, "/"), as the suite's own Jaeger client uses it."""
    kiali = _installed_values("kiali-server")["external_services"]["tracing"]
    jaeger = _installed_values("jaeger")
    assert jaeger["allInOne"]["enabled"] is True
    assert jaeger["query"]["basePath"] == "/"
    assert kiali["internal_url"] == "http://jaeger-query.monitoring:16686"


# -- Grafana and Kiali checks against fakes ------------------------------------------------------
def _grafana(dashboards: list[str], health: tuple[int, dict[str, Any]]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/search":
            return httpx.Response(200, json=[{"uid": uid, "type": "dash-db"} for uid in dashboards])
        if request.url.path == "/api/datasources":
            return httpx.Response(
                200, json=[{"uid": "prometheus", "name": "Prometheus", "type": "prometheus", "isDefault": True}]
            )
        if request.url.path == "/api/datasources/uid/prometheus/health":
            return httpx.Response(health[0], json=health[1])
        return httpx.Response(404)

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://grafana")


def test_grafana_checks() -> None:
    healthy = (200, {"status": "OK", "message": "Successfully queried the Prometheus API."})
    with _grafana(["inferbox-model-serving"], healthy) as grafana:
        assert missing_dashboards(grafana, {"inferbox-model-serving": "model-serving.json"}) == {}
        assert missing_dashboards(grafana, {"other": "other.json"}) == {"other": "other.json"}
        assert prometheus_datasource_problem(grafana) is None
    with _grafana([], (400, {"status": "ERROR", "message": "connection refused"})) as grafana:
        problem = prometheus_datasource_problem(grafana)
        assert problem is not None
        assert "not healthy" in problem


def _graph() -> dict[str, Any]:
    nodes = [
        {"data": {"id": "a", "nodeType": "workload", "namespace": "istio-system", "workload": "istio-ingressgateway"}},
        {
            "data": {
                "id": "b",
                "nodeType": "workload",
                "namespace": "tenant-a",
                "workload": "sklearn-iris-predictor-00001-deployment",
            }
        },
        {
            "data": {
                "id": "c",
                "nodeType": "workload",
                "namespace": "tenant-c",
                "workload": "pytorch-resnet-predictor-00001-deployment",
            }
        },
    ]
    edge_list = [
        {
            "data": {
                "id": "e1",
                "source": "a",
                "target": "b",
                "traffic": {"protocol": "http", "rates": {"http": "2.50"}},
            }
        },
        {"data": {"id": "e2", "source": "a", "target": "c", "traffic": {"protocol": "http", "rates": {}}}},
    ]
    return {"graphType": "workload", "elements": {"nodes": nodes, "edges": edge_list}}


def test_kiali_edges() -> None:
    found = edges(_graph())
    gateway = re.compile(kind.MESH_GRAPH["gateway_workload"])
    model = re.compile(kind.MESH_GRAPH["model_workload"].replace("{model}", "sklearn-iris"))
    edge = traffic_edge(found, gateway, "tenant-a", model)
    assert edge is not None
    assert edge.http_rate == 2.5
    idle = re.compile(kind.MESH_GRAPH["model_workload"].replace("{model}", "pytorch-resnet"))
    assert traffic_edge(found, gateway, "tenant-c", idle) is None, "an idle edge carries no traffic"


def test_scrape_interval_measured_from_prometheus() -> None:
    from inferbox.observability.prometheus import PrometheusClient, duration_s

    def handler(request: httpx.Request) -> httpx.Response:
        targets = [
            {"labels": {"job": "a"}, "scrapeInterval": "10s"},
            {"labels": {"job": "b"}, "scrapeInterval": "1m30s"},
        ]
        return httpx.Response(200, json={"status": "success", "data": {"activeTargets": targets}})

    client = PrometheusClient("http://prometheus", transport=httpx.MockTransport(handler))
    assert client.longest_scrape_interval() == 90.0
    assert duration_s("500ms") == 0.5
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_s("10")
