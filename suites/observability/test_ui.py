"""Grafana and Kiali, where the target runs them (Kind): Grafana lists the dashboards we ship and
its Prometheus datasource is healthy; Kiali's graph shows traffic from the gateway side to every
tenant's model workload."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Observability
from inferbox.observability.dashboards import dashboard_files, load_dashboard
from inferbox.observability.grafana import missing_dashboards, prometheus_datasource_problem
from inferbox.observability.kiali import edges, traffic_edge, workload_graph
from inferbox.observability.traffic import send_predictions
from inferbox.topology import Model
from inferbox.waiting import eventually

pytestmark = [pytest.mark.conformance, pytest.mark.observability, pytest.mark.features(Feature.DASHBOARDS)]

Token = Callable[[str], str]


@pytest.mark.capability(Capability.GRAFANA)
def test_grafana_lists_our_dashboards_and_its_prometheus_is_healthy(
    observability: Observability, request: pytest.FixtureRequest
) -> None:
    assert observability.grafana_url, "the target claims Grafana but gives no URL"
    wanted = {
        str(load_dashboard(path)["uid"]): path.name
        for path in dashboard_files(request.config.getoption("inferbox_manifests"))
    }
    with httpx.Client(base_url=observability.grafana_url, auth=observability.grafana_auth, timeout=10) as grafana:

        def listed() -> None:
            missing = missing_dashboards(grafana, wanted)
            assert not missing, f"Grafana does not list these dashboards (uid: file): {missing}"

        # Grafana's sidecar picks up dashboard ConfigMaps on its own schedule (about a minute).
        eventually(listed, timeout_s=120, interval_s=2)
        problem = prometheus_datasource_problem(grafana)
        assert problem is None, problem


@pytest.mark.capability(Capability.MESH_GRAPH)
def test_kiali_graph_shows_gateway_to_tenant_edges(
    observability: Observability, gateway: GatewayClient, model: Model, token_for: Token
) -> None:
    assert observability.kiali_url, "the target claims Kiali but gives no URL"
    graph_of = observability.mesh_graph
    source = re.compile(graph_of["gateway_workload"])
    target = re.compile(graph_of["model_workload"].replace("{model}", re.escape(model.name)))
    namespaces = [*graph_of["namespaces"].split(","), model.tenant]
    send_predictions(gateway, model, token_for(model.tenant), 5)
    with httpx.Client(base_url=observability.kiali_url, timeout=20) as kiali:

        def edge() -> None:
            found = edges(workload_graph(kiali, namespaces))
            assert traffic_edge(found, source, model.tenant, target), (
                f"no edge with traffic from {source.pattern} to {model.tenant}/{target.pattern} in Kiali's graph; "
                f"edges: {[str(e) for e in found]}"
            )

        # Kiali reads Istio's metrics from Prometheus, a scrape interval or more behind.
        eventually(edge, timeout_s=3 * observability.metrics_deadline_s() + 60, interval_s=5)
