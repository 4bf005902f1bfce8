"""Checks across objects that a cluster would otherwise be needed for: every metric of the Kind
catalogue reaches Prometheus (a selected monitor, the exporting pods' port, reachable under their
mTLS mode and network policy), Services and NetworkPolicy peers match real pods, the model
metrics have one scrape mechanism, and the host reaches the platform through Envoy Gateway only.

They run on the installer's own values; where a chart's default matters, the test reads it from
the pinned chart (``pinned``: skipped, naming how to fetch it, where it is not on this machine)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from inferbox.cluster.crosscheck import Platform, metric_problems, selector_problems
from inferbox.cluster.helm_values import plan_values
from inferbox.cluster.installer import PlanOptions, build_plan, rendered_objects
from inferbox.cluster.kindcluster import GATEWAY_NODE_PORT, load_kind_config
from inferbox.cluster.upstream import UpstreamData
from inferbox.cluster.versions import load_versions
from inferbox.manifests import load_manifests

MANIFESTS = load_manifests()
PLAN = build_plan(PlanOptions("kind", "kind-x", MANIFESTS, load_versions(environ={}), kind_name="x"))
OBJECTS = [dict(b) for _, b in rendered_objects(PLAN)]
MODELS = [(o.namespace or "", o.name) for o in MANIFESTS.of_kind("InferenceService")]


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in over.items()}}
    return over


def _values(chart: str) -> dict[str, Any]:
    """The values the installer installs ``chart`` with."""
    [values] = [v for _, name, v in plan_values(PLAN) if name == chart]
    return dict(values)


def _installed(chart: str, pinned: UpstreamData) -> dict[str, Any]:
    """A chart's values as installed: the pinned chart's defaults with the installer's values over them."""
    defaults = pinned.chart_values(chart)
    defaults = defaults.get("_internal_defaults_do_not_set", defaults)
    merged: dict[str, Any] = _merged(defaults, _values(chart))
    return merged


# The keys of it the cross-check reads (which monitors Prometheus selects) are the installer's.
PROMETHEUS_SPEC = _values("kube-prometheus-stack")["prometheus"]["prometheusSpec"]


def _platform(objects: list[dict[str, Any]] | None = None, spec: dict[str, Any] | None = None) -> Platform:
    chosen: list[Mapping[str, Any]] = list(copy.deepcopy(objects if objects is not None else OBJECTS))
    return Platform(chosen, spec or PROMETHEUS_SPEC)


def test_every_catalogue_metric_is_scraped_where_it_is_exported() -> None:
    assert metric_problems(_platform(), MODELS) == []


def _without(kind: str, name: str) -> list[dict[str, Any]]:
    return [o for o in OBJECTS if (o["kind"], o["metadata"]["name"]) != (kind, name)]


def test_without_a_monitor_for_knatives_autoscaler_the_replica_count_has_no_scrape() -> None:
    """The break the first real run would have met: nothing scraped autoscaler_actual_pods."""
    problems = metric_problems(_platform(_without("PodMonitor", "knative-autoscaler")), MODELS)
    assert problems == [
        "autoscaler_actual_pods, autoscaler_desired_pods: no PodMonitor or ServiceMonitor selects "
        "knative-serving/autoscaler"
    ]


def test_a_plain_monitor_of_the_autoscaler_is_refused_by_strict_mtls() -> None:
    problems = metric_problems(_platform(_without("PeerAuthentication", "autoscaler-metrics")), MODELS)
    assert len(problems) == 1
    assert "mTLS is STRICT on port 9090 of knative-serving/autoscaler" in problems[0]


def _edit(namespace: str, kind: str, name: str, change: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """The platform's objects with one of them changed."""
    objects = copy.deepcopy(OBJECTS)
    [target] = [
        o
        for o in objects
        if (o["metadata"].get("namespace"), o["kind"], o["metadata"]["name"]) == (namespace, kind, name)
    ]
    change(target)
    return objects


def _drop_prometheus_ports(policy: dict[str, Any]) -> None:
    policy["spec"]["ingress"] = policy["spec"]["ingress"][:-1]


BREAKS = [
    # The selector no longer matches the model's pods.
    (
        _edit("tenant-a", "PodMonitor", "sklearn-iris", lambda o: o["spec"]["selector"]["matchLabels"].update(app="x")),
        "no PodMonitor or ServiceMonitor selects tenant-a/sklearn-iris predictor",
    ),
    # The gateway proxies' port is misnamed.
    (
        _edit(
            "envoy-gateway-system",
            "PodMonitor",
            "inference-gateway",
            lambda o: o["spec"]["podMetricsEndpoints"][0].update(port="stats"),
        ),
        "no PodMonitor or ServiceMonitor selects envoy-gateway-system/envoy (inference-gateway)",
    ),
    # The tenant's NetworkPolicy no longer lets Prometheus in.
    (
        _edit("tenant-a", "NetworkPolicy", "allow-platform-ingress", _drop_prometheus_ports),
        "lets Prometheus not reach port 15020",
    ),
]


@pytest.mark.parametrize(("objects", "expected"), BREAKS, ids=["selector", "port-name", "network-policy"])
def test_a_scrape_that_cannot_work_is_named(objects: list[dict[str, Any]], expected: str) -> None:
    problems = metric_problems(_platform(objects), MODELS)
    assert any(expected in p for p in problems), problems


def test_monitors_need_the_release_label_unless_prometheus_selects_every_monitor() -> None:
    spec = {**PROMETHEUS_SPEC, "podMonitorSelectorNilUsesHelmValues": True}
    problems = metric_problems(_platform(spec=spec), MODELS)
    assert any("knative-autoscaler is not selected by Prometheus" in p for p in problems)


def test_services_and_network_policy_peers_match_real_pods() -> None:
    assert selector_problems(_platform()) == []
    typo = _edit(
        "inference-system",
        "Service",
        "jwt-server",
        lambda o: o["spec"]["selector"].update({"app.kubernetes.io/name": "jwt"}),
    )
    assert any("Service inference-system/jwt-server selects" in p for p in selector_problems(_platform(typo)))

    def wrong_gateway_label(policy: dict[str, Any]) -> None:
        policy["spec"]["ingress"][1]["from"][0]["podSelector"]["matchLabels"] = {"app": "istio-ingress"}

    wrong = _edit("tenant-a", "NetworkPolicy", "allow-platform-ingress", wrong_gateway_label)
    assert any(
        "no pod in istio-system has labels {'app': 'istio-ingress'}" in p for p in selector_problems(_platform(wrong))
    )


def test_model_metrics_have_one_scrape_mechanism() -> None:
    """KServe's cluster-wide Prometheus switch is left alone (it would point the pods' prometheus.io
    annotations at the queue-proxy). Each model's annotations name the model server's own
    /metrics, which Istio's sidecar merges on port 15020, where the model's PodMonitor scrapes."""
    assert "enablePrometheusScraping" not in _values("kserve").get("kserve", {}).get("metricsaggregator", {})
    assert "enablePrometheusMerge" not in _values("istiod").get("meshConfig", {})
    for isvc in MANIFESTS.of_kind("InferenceService"):
        annotations = isvc.body["metadata"]["annotations"]
        assert annotations.get("serving.kserve.io/enable-prometheus-scraping", "false") == "false", isvc.ref
        assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"]) == ("true", "8080"), isvc.ref


def test_left_at_their_defaults_kserves_scraping_is_off_and_istios_merge_on(pinned: UpstreamData) -> None:
    assert _installed("kserve", pinned)["kserve"]["metricsaggregator"]["enablePrometheusScraping"] == "false"
    assert _installed("istiod", pinned)["meshConfig"].get("enablePrometheusMerge", True) is True


def test_the_host_reaches_the_platform_through_envoy_gateway_only() -> None:
    """Envoy Gateway's NodePort is the one host port; Istio's ingress gateway (which would go
    around the gateway's token check and rate limit) is a ClusterIP."""
    assert load_kind_config().port_mappings() == {GATEWAY_NODE_PORT: 8080}
    assert _values("gateway")["service"]["type"] == "ClusterIP"
