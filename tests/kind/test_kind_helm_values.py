"""The Helm values the installer sets exist in the pinned charts and hold against their schemas: a
misspelt key would otherwise be ignored by Helm, and the setting it meant would keep its default."""

from __future__ import annotations

from inferbox.kind import upstream
from inferbox.kind.helm_values import check_plan_values, check_values, set_values
from inferbox.kind.installer import PlanOptions, build_plan
from inferbox.kind.versions import load_versions
from inferbox.manifests import load_manifests

DATA = upstream.load()


def test_every_value_the_installer_sets_is_one_of_its_charts() -> None:
    plan = build_plan(PlanOptions("kind", "kind-x", load_manifests(), load_versions(environ={}), kind_name="x"))
    assert check_plan_values(plan, DATA) == []


def test_a_misspelt_key_is_named_with_the_keys_that_exist_there() -> None:
    values = {"prometheus": {"prometheusSpec": {"podMonitorSelectorNilUsesHelmValue": False}}}
    [problem] = check_values("kube-prometheus-stack", values, DATA)
    assert "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValue is not a value of chart" in problem


def test_sub_chart_keys_are_checked_against_the_sub_chart() -> None:
    assert check_values("kube-prometheus-stack", {"grafana": {"image": {"tag": "12.0.2"}}}, DATA) == []
    [problem] = check_values("kube-prometheus-stack", {"grafana": {"imag": {"tag": "12.0.2"}}}, DATA)
    assert "grafana.imag" in problem
    assert "sub-chart grafana" in problem


def test_istios_wrapped_defaults_are_the_keys_a_user_sets() -> None:
    assert check_values("istiod", {"resources": {"requests": {"cpu": "100m"}}}, DATA) == []
    assert check_values("istiod", {"resource": {}}, DATA) != []


def test_a_charts_values_schema_is_enforced() -> None:
    problems = check_values("gateway", {"service": {"loadBalancerIP": 5}}, DATA)
    assert any("values.schema.json" in p for p in problems), problems


def test_set_values_become_nested_values() -> None:
    assert set_values({"crds.gatewayAPI.enabled": "false"}) == {"crds": {"gatewayAPI": {"enabled": "false"}}}
    assert check_values("gateway-crds-helm", set_values({"crds.envoyGateway.enabled": "true"}), DATA) == []
    assert check_values("gateway-crds-helm", set_values({"crds.envoy.enabled": "true"}), DATA) != []
