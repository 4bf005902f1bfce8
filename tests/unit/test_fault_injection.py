"""Envoy Gateway's BackendTrafficPolicy faultInjection on the embedded gateway: the declared subset,
the plan's semantics, and an Envoy fault filter that real Envoy accepts."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferbox.embedded.envoy_common import FAULT_FILTER, JWT_FILTER
from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.embedded.gateway_config import GatewayPorts
from inferbox.embedded.gateway_plan import FaultPlan, parse_go_duration, plan_gateway
from inferbox.embedded.subset import check_supported
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from tests.gateway_render import gateway_hcm, render_bootstrap

POLICY = "sklearn-iris-rate-limit"


def _with_fault(manifests: ManifestSet, fault: dict[str, Any], name: str = POLICY) -> ManifestSet:
    objects = []
    for obj in manifests:
        if obj.kind == "BackendTrafficPolicy" and obj.name == name:
            body = copy.deepcopy(obj.body)
            body["spec"]["faultInjection"] = fault
            obj = K8sObject(obj.api_version, obj.kind, obj.name, obj.namespace, body, obj.source)
        objects.append(obj)
    return ManifestSet(manifests.root, tuple(objects))


def _policy(manifests: ManifestSet) -> K8sObject:
    found = manifests.get("BackendTrafficPolicy", POLICY, "tenant-a")
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("50ms", 0.05), ("1s", 1.0), ("1.5s", 1.5), ("1m30s", 90.0), ("250us", 0.00025), ("2h", 7200.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "50", "ms", "5 s", "1d", "-1s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_go_duration(text)


def test_delay_and_abort_are_planned_on_the_targeted_route_only(manifests: ManifestSet) -> None:
    fault = {"delay": {"fixedDelay": "50ms", "percentage": 10}, "abort": {"httpStatus": 503, "percentage": 0.5}}
    plan = plan_gateway(_with_fault(manifests, fault))
    for route in plan.routes:
        if route.route == "tenant-a/sklearn-iris":
            assert route.fault == FaultPlan(delay_s=0.05, delay_percent=10.0, abort_status=503, abort_percent=0.5)
        else:
            assert route.fault is None, route.key


def test_percentage_defaults_to_all_requests(manifests: ManifestSet) -> None:
    plan = plan_gateway(_with_fault(manifests, {"delay": {"fixedDelay": "1s"}}))
    faults = {r.fault for r in plan.routes if r.route == "tenant-a/sklearn-iris"}
    assert faults == {FaultPlan(delay_s=1.0, delay_percent=100.0)}


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({}, "neither delay nor abort"),
        ({"delay": {"percentage": 10}}, "needs fixedDelay"),
        ({"delay": {"fixedDelay": "soon"}}, "not a duration"),
        ({"delay": {"fixedDelay": "1s", "percentage": 150}}, "outside 0-100"),
        ({"abort": {"percentage": 10}}, "httpStatus must be 200-600"),
        ({"abort": {"httpStatus": 700}}, "httpStatus must be 200-600"),
    ],
)
def test_bad_fault_injection_is_an_error_naming_the_field(
    manifests: ManifestSet, fault: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        plan_gateway(_with_fault(manifests, fault))


def test_grpc_aborts_are_outside_the_declared_subset(manifests: ManifestSet) -> None:
    edited = _with_fault(manifests, {"abort": {"grpcStatus": 14}})
    with pytest.raises(ManifestError, match=r"faultInjection\.abort\.grpcStatus is not a known field"):
        check_supported(_policy(edited))
    with pytest.raises(ManifestError, match="must be a number"):
        check_supported(_policy(_with_fault(manifests, {"delay": {"fixedDelay": "1s", "percentage": "10"}})))
    check_supported(_policy(_with_fault(manifests, {"delay": {"fixedDelay": "1s", "percentage": 12.5}})))


def test_fault_injection_on_a_gateway_target_is_refused(manifests: ManifestSet) -> None:
    objects = list(manifests)
    objects.append(
        K8sObject(
            "gateway.envoyproxy.io/v1alpha1",
            "BackendTrafficPolicy",
            "gateway-faults",
            "envoy-gateway-system",
            {
                "apiVersion": "gateway.envoyproxy.io/v1alpha1",
                "kind": "BackendTrafficPolicy",
                "metadata": {"name": "gateway-faults", "namespace": "envoy-gateway-system"},
                "spec": {
                    "targetRefs": [
                        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "inference-gateway"}
                    ],
                    "faultInjection": {"abort": {"httpStatus": 503}},
                },
            },
            "added.yaml",
        )
    )
    with pytest.raises(ManifestError, match="Gateway target is not interpreted"):
        plan_gateway(ManifestSet(manifests.root, tuple(objects)))


def _render(manifests: ManifestSet, tmp_path: Path) -> dict[str, Any]:
    ports = GatewayPorts(public=18080, admin=18081, pod_ip=None, pod_port=80)
    return render_bootstrap(plan_gateway(manifests), ports, tmp_path / "xds", endpoint=("127.0.0.1", 1))


def _hcm(bootstrap: dict[str, Any]) -> dict[str, Any]:
    hcm: dict[str, Any] = gateway_hcm(bootstrap)
    return hcm


def test_the_fault_filter_runs_first_and_only_where_a_route_has_a_fault(manifests: ManifestSet, tmp_path: Path) -> None:
    assert FAULT_FILTER not in [f["name"] for f in _hcm(_render(manifests, tmp_path))["http_filters"]]
    fault = {"delay": {"fixedDelay": "50ms", "percentage": 10}, "abort": {"httpStatus": 503, "percentage": 0.0001}}
    hcm = _hcm(_render(_with_fault(manifests, fault), tmp_path))
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index(FAULT_FILTER) == 0
    assert names.index(FAULT_FILTER) < names.index(JWT_FILTER), "Envoy Gateway injects faults before authentication"
    for vhost in hcm["route_config"]["virtual_hosts"]:
        for route in vhost["routes"]:
            per_route = route["typed_per_filter_config"].get(FAULT_FILTER)
            if vhost["domains"] == ["sklearn-iris.tenant-a.inference.example"]:
                assert per_route["delay"] == {
                    "fixed_delay": "0.050000000s",
                    "percentage": {"numerator": 100000, "denominator": "MILLION"},
                }
                assert per_route["abort"] == {
                    "http_status": 503,
                    "percentage": {"numerator": 1, "denominator": "MILLION"},
                }
            else:
                assert per_route is None


def test_real_envoy_accepts_the_fault_filter(manifests: ManifestSet, tmp_path: Path) -> None:
    fault = {"delay": {"fixedDelay": "1.5s", "percentage": 12.5}, "abort": {"httpStatus": 503, "percentage": 1}}
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(_render(_with_fault(manifests, fault), tmp_path)))
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
