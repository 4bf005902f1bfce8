"""The Helm values the installer sets exist in the pinned charts and hold against their schemas: a
misspelt key would otherwise be ignored by Helm, and the setting it meant would keep its default.

The check itself is proven on small charts of our own (``tests/cluster/schemas/charts``); the
installer's real values are checked against the pinned charts where ``scripts/upstream-schemas``
has fetched them."""

from __future__ import annotations

import pytest

from inferbox.cluster import helm_values
from inferbox.cluster.helm_values import check_plan_values, check_values, plan_values, set_values
from inferbox.cluster.installer import PlanOptions, build_plan
from inferbox.cluster.versions import load_versions
from inferbox.manifests import load_manifests
from tests.cluster.upstream_data import own_schemas, pinned_schemas

OWN = own_schemas()
PLAN = build_plan(PlanOptions("kind", "kind-x", load_manifests(), load_versions(environ={}), kind_name="x"))


def test_values_that_exist_in_the_chart_pass() -> None:
    values = {"image": {"tag": "1.1.0"}, "replicas": 2, "service": {"type": "NodePort"}}
    assert check_values("demo", values, OWN) == []


def test_a_misspelt_key_is_named_with_the_keys_that_exist_there() -> None:
    [problem] = check_values("demo", {"service": {"typ": "NodePort"}}, OWN)
    assert problem == "service.typ is not a value of chart demo (its keys there: port, type)"
    [problem] = check_values("demo", {"replica": 2}, OWN)
    assert problem.startswith("replica is not a value of chart demo (its keys there: image, podAnnotations")


def test_maps_the_chart_leaves_open_take_any_key() -> None:
    assert check_values("demo", {"podAnnotations": {"prometheus.io/scrape": "true"}}, OWN) == []


def test_a_value_handed_on_whole_to_the_program_is_not_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_values("demo", {"settings": {"threads": 4}}, OWN) != []
    monkeypatch.setitem(helm_values.PASSTHROUGH, ("demo", "settings"), "the program's own configuration")
    assert check_values("demo", {"settings": {"threads": 4}}, OWN) == []


def test_sub_chart_keys_are_checked_against_the_sub_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(helm_values.SUBCHARTS, "demo", ("sub",))
    # The sub-chart's own values, and those the parent chart sets for it.
    assert check_values("demo", {"sub": {"persistence": {"size": "2Gi"}, "enabled": False}}, OWN) == []
    [problem] = check_values("demo", {"sub": {"persistance": {"size": "2Gi"}}}, OWN)
    assert problem.startswith("sub.persistance is not a value of chart demo (sub-chart sub)")


def test_wrapped_defaults_are_the_keys_a_user_sets() -> None:
    """Istio's charts keep their defaults under a wrapper key that the user does not write."""
    assert check_values("wrapped", {"resources": {"requests": {"cpu": "100m"}}, "logLevel": "debug"}, OWN) == []
    [problem] = check_values("wrapped", {"resource": {}}, OWN)
    assert "resource is not a value of chart wrapped" in problem


def test_a_charts_values_schema_is_enforced() -> None:
    [problem] = check_values("demo", {"service": {"type": "ExternalName"}}, OWN)
    assert problem.startswith("service.type: 'ExternalName' is not one of")
    assert problem.endswith("(chart demo's values.schema.json)")
    [problem] = check_values("demo", {"replicas": -1}, OWN)
    assert "replicas: -1 is less than the minimum of 0" in problem


def test_set_values_become_nested_values() -> None:
    assert set_values({"crds.gatewayAPI.enabled": "false"}) == {"crds": {"gatewayAPI": {"enabled": "false"}}}
    assert check_values("demo", set_values({"image.tag": "2"}), OWN) == []
    assert check_values("demo", set_values({"image.digest": "sha256:x"}), OWN) != []


def test_every_helm_install_of_the_plan_is_checked() -> None:
    charts = {chart for _, chart, _ in plan_values(PLAN)}
    assert {"cert-manager", "istiod", "gateway", "kserve", "gateway-helm", "kube-prometheus-stack"} <= charts


# -- against the pinned charts ------------------------------------------------------------------
def test_every_value_the_installer_sets_is_one_of_its_charts() -> None:
    assert check_plan_values(PLAN, pinned_schemas()) == []


def test_the_pinned_charts_catch_a_misspelt_key() -> None:
    data = pinned_schemas()
    values = {"prometheus": {"prometheusSpec": {"podMonitorSelectorNilUsesHelmValue": False}}}
    [problem] = check_values("kube-prometheus-stack", values, data)
    assert "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValue is not a value of chart" in problem
    [problem] = check_values("kube-prometheus-stack", {"grafana": {"imag": {"tag": "12.0.2"}}}, data)
    assert "sub-chart grafana" in problem
    assert check_values("istiod", {"resource": {}}, data) != []
    assert any("values.schema.json" in p for p in check_values("gateway", {"service": {"loadBalancerIP": 5}}, data))
