"""Every dashboard panel we ship (Grafana JSON under manifests/) queries metrics that exist on the
target, its PromQL parses, and it returns data after traffic: a panel on a metric nobody emits
fails, naming the metric or the query."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Observability, Platform
from inferbox.observability.dashboards import Panel, concrete
from inferbox.observability.prometheus import PrometheusClient
from inferbox.observability.promql import names
from inferbox.observability.traffic import send_predictions
from inferbox.openai_client import OpenAIClient, chat_body
from inferbox.waiting import eventually

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.observability,
    pytest.mark.features(Feature.DASHBOARDS),
    pytest.mark.capability(Capability.METRICS),
]

Token = Callable[[str], str]


@pytest.fixture(scope="module")
def dashboard_traffic(
    models_held_warm: None,  # noqa: ARG001 - requested for its effect: replicas held while judged
    platform: Platform,
    prometheus: PrometheusClient,
    observability: Observability,
    gateway: GatewayClient,
    token_for: Token,
) -> set[str]:
    """Traffic every panel should see: served predictions for every model, a request without a
    token and one with another tenant's token, and a streamed chat completion of every generative
    model through the AI Gateway. Returns the metric names Prometheus then knows.

    The models are held at one ready replica while the panels are judged: a model that idled to
    zero meanwhile has no replica to show (the ready-replicas panel would rightly be empty)."""
    tenants = [t.name for t in platform.topology.tenants]
    if Capability.AUTOSCALING in platform.capabilities:
        _wait_replicas_scraped(platform, prometheus, observability)
    for model in platform.topology.predictive_models:
        send_predictions(gateway, model, token_for(model.tenant), 3)
        gateway.metadata_v1(model)
        other = next((t for t in tenants if t != model.tenant), None)
        if other:
            gateway.metadata_v1(model, token_for(other))
    if Capability.AI_GATEWAY in platform.capabilities:
        ai_gateway = OpenAIClient(platform.ai_gateway_url())
        try:
            for model in platform.topology.generative_models:
                body = chat_body(model.name, "Hello", 4, stream=True, include_usage=True)
                ai_gateway.stream_chat(body, token_for(model.tenant))
        finally:
            ai_gateway.close()
    sent = time.time()
    # Two scrapes after the traffic, so rates over the window have two points with it.
    prometheus.wait_scraped_after(sent, observability.metrics_deadline_s())
    prometheus.wait_scraped_after(time.time(), observability.metrics_deadline_s())
    response = prometheus.http.get("/api/v1/label/__name__/values")
    known: list[str] = response.json()["data"]
    return set(known)


def _wait_replicas_scraped(platform: Platform, prometheus: PrometheusClient, observability: Observability) -> None:
    """Every ready replica of every model is a scrape target Prometheus has scraped, before the
    traffic: a replica started for the hold becomes a target only at Prometheus's next discovery
    update (every few seconds), and the predictions it served before would never be counted."""

    def scraped() -> None:
        for model in platform.topology.predictive_models:
            ready = sum(r.ready for r in platform.revisions(model))
            up = observability.catalogue.model_up(model.tenant, model.name)
            seen = prometheus.query(f"count({up} == 1)")
            count = int(seen[0].value) if seen else 0
            assert count >= ready, f"{model.tenant}/{model.name}: {count} of {ready} ready replicas scraped"

    eventually(scraped, timeout_s=observability.metrics_deadline_s(), interval_s=0.2)


def test_dashboard_panels_return_data(
    panel: Panel, prometheus: PrometheusClient, observability: Observability, dashboard_traffic: set[str]
) -> None:
    problems = []
    for expr in panel.exprs:
        missing = sorted(names(expr).metrics - dashboard_traffic)
        if missing:
            problems.append(f"metric(s) {', '.join(missing)} do not exist on this target (panel query `{expr}`)")
            continue
        query = concrete(expr, observability.scrape_interval_s)
        if not prometheus.query(query):
            problems.append(f"no data: `{query}` returned no series")
    assert not problems, f"panel {panel.title!r} of {panel.file}:\n" + "\n".join(problems)
