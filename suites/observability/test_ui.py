"""Grafana and Kiali, where the target runs them (Kind): Grafana lists the dashboards we ship and
its Prometheus datasource is healthy; Kiali's graph shows traffic from the gateway side to every
tenant's model workload."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Observability, Platform
from inferbox.observability.dashboards import dashboard_files, load_dashboard
from inferbox.observability.traffic import send_predictions
from inferbox.topology import Model
from inferbox.waiting import eventually

pytestmark = [pytest.mark.conformance, pytest.mark.observability, pytest.mark.features(Feature.DASHBOARDS)]

Token = Callable[[str], str]


@pytest.mark.capability(Capability.GRAFANA)
def test_grafana_lists_our_dashboards_and_its_prometheus_is_healthy(
    platform: Platform, observability: Observability, request: pytest.FixtureRequest
) -> None:
    assert observability.grafana_url, "the target claims Grafana but gives no URL"
    wanted = {
        str(load_dashboard(path)["uid"]): path.name for path in dashboard_files(request.config.getoption("manifests"))
    }
    with httpx.Client(base_url=observability.grafana_url, auth=observability.grafana_auth, timeout=10) as grafana:

        def listed() -> None:
            found = {d["uid"] for d in grafana.get("/api/search", params={"type": "dash-db", "limit": 5000}).json()}
            missing = {uid: name for uid, name in wanted.items() if uid not in found}
            assert not missing, f"Grafana does not list these dashboards (uid: file): {missing}"

        # Grafana's sidecar picks up dashboard ConfigMaps on its own schedule.
        eventually(listed, timeout_s=120, interval_s=2)
        sources = [s for s in grafana.get("/api/datasources").json() if s.get("type") == "prometheus"]
        assert sources, "Grafana has no Prometheus datasource"
        default = next((s for s in sources if s.get("isDefault")), sources[0])
        health = grafana.get(f"/api/datasources/uid/{default['uid']}/health")
        assert (health.status_code, health.json().get("status")) == (200, "OK"), (
            f"Prometheus datasource {default.get('name')} is not healthy: {health.status_code} {health.text[:200]}"
        )


def _nodes(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["data"]["id"]: n["data"] for n in (graph.get("elements") or {}).get("nodes") or []}


@pytest.mark.capability(Capability.MESH_GRAPH)
def test_kiali_graph_shows_gateway_to_tenant_edges(
    observability: Observability, gateway: GatewayClient, model: Model, token_for: Token
) -> None:
    assert observability.kiali_url, "the target claims Kiali but gives no URL"
    graph_of = observability.mesh_graph
    source = re.compile(graph_of["gateway_workload"])
    target = re.compile(graph_of["model_workload"].replace("{model}", re.escape(model.name)))
    namespaces = ",".join(sorted({graph_of["gateway_namespace"], model.tenant}))
    send_predictions(gateway, model, token_for(model.tenant), 5)
    with httpx.Client(base_url=observability.kiali_url, timeout=20) as kiali:

        def edge() -> None:
            graph = kiali.get(
                "/api/namespaces/graph",
                params={
                    "namespaces": namespaces,
                    "graphType": "workload",
                    "duration": "10m",
                    "queryTime": int(time.time()),
                },
            ).json()
            nodes = _nodes(graph)
            edges = [e["data"] for e in (graph.get("elements") or {}).get("edges") or []]
            seen = []
            for data in edges:
                src, dst = nodes.get(data["source"], {}), nodes.get(data["target"], {})
                seen.append(
                    f"{src.get('namespace')}/{src.get('workload')} -> {dst.get('namespace')}/{dst.get('workload')}"
                )
                if (
                    dst.get("namespace") == model.tenant
                    and target.fullmatch(str(dst.get("workload", "")))
                    and (source.fullmatch(str(src.get("workload", ""))) or src.get("isRoot"))
                ):
                    return
            raise AssertionError(f"no edge gateway -> {model.tenant}/{model.name} in Kiali's graph; edges: {seen}")

        # Kiali reads Istio's metrics from Prometheus, a scrape interval or more behind.
        eventually(edge, timeout_s=3 * observability.metrics_deadline_s() + 60, interval_s=5)
