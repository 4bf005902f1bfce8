"""BackendTrafficPolicy retry / timeout and Istio DestinationRule outlier detection, as the embedded
gateway interprets them (Envoy Gateway 1.4 and Istio 1.26 translations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferbox.embedded.gateway_config import GatewayPorts, cluster_resilience, outlier_detection, retry_policy
from inferbox.embedded.gateway_plan import RetryPlan, plan_gateway
from inferbox.embedded.outliers import OutlierPlan
from inferbox.embedded.subset import check_all_supported
from inferbox.errors import ManifestError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, ManifestSet, load_manifests
from inferbox.mutants.model import apply_pointer
from tests.gateway_render import render_bootstrap
from tests.manifest_edits import edited

CLUSTER = "isvc__tenant-c__pytorch-resnet"


def _manifests() -> ManifestSet:
    return load_manifests(DEFAULT_MANIFEST_DIR)


def test_the_shipped_policies_are_interpreted() -> None:
    manifests = _manifests()
    check_all_supported(manifests)
    plan = plan_gateway(manifests)
    route = next(r for r in plan.routes if r.route == "tenant-c/pytorch-resnet")
    assert route.resilience is not None
    assert route.resilience.retry is not None
    assert route.resilience.retry.per_try_timeout_s == 12.0
    assert route.resilience.connect_timeout_s == 2.0
    settings = cluster_resilience(plan, CLUSTER)
    assert settings["lb_policy"] == "LEAST_REQUEST"
    assert settings["connect_timeout"] == "2s"
    assert settings["circuit_breakers"]["thresholds"][0]["max_retries"] == 1024
    detection = settings["outlier_detection"]
    assert detection["consecutive_5xx"] == 3
    assert detection["enforcing_consecutive_5xx"] == 100
    assert detection["enforcing_success_rate"] == 0, "Istio turns success-rate ejection off"
    assert settings["common_lb_config"]["healthy_panic_threshold"]["value"] == 0.0, "Istio: minHealthPercent 0"


def test_without_a_connect_timeout_the_cluster_has_envoy_gateways_10_seconds(tmp_path: Path) -> None:
    """Envoy Gateway's default (cluster.go) where no BackendTrafficPolicy sets timeout.tcp.connectTimeout."""
    manifests = edited(
        _manifests(), "BackendTrafficPolicy", "pytorch-resnet-rate-limit", lambda b: b["spec"].pop("timeout")
    )
    ports = GatewayPorts(public=18080, admin=18081, pod_ip=None, pod_port=80)
    clusters = render_bootstrap(plan_gateway(manifests), ports, tmp_path / "xds")["static_resources"]["clusters"]
    assert next(c for c in clusters if c["name"] == CLUSTER)["connect_timeout"] == "10s"


def test_retry_defaults_follow_envoy_gateway() -> None:
    policy = retry_policy(RetryPlan())
    assert policy["retry_on"] == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    assert policy["retriable_status_codes"] == [503]
    assert policy["num_retries"] == 2
    assert policy["host_selection_retry_max_attempts"] == 5
    assert policy["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert "per_try_timeout" not in policy


def test_retry_on_gives_exactly_its_triggers_and_codes() -> None:
    policy = retry_policy(RetryPlan(triggers=("reset",), status_codes=(), per_try_timeout_s=1.5))
    assert policy["retry_on"] == "reset"
    assert "retriable_status_codes" not in policy
    assert policy["per_try_timeout"] == "1.5s"


def test_passive_health_check_takes_the_crd_defaults() -> None:
    plan = OutlierPlan("BackendTrafficPolicy", 3.0, 30.0, 5, 0, 5, False, 10, None)
    detection = outlier_detection(plan)
    assert detection == {
        "interval": "3s",
        "base_ejection_time": "30s",
        "consecutive_5xx": 5,
        "consecutive_gateway_failure": 0,
        "consecutive_local_origin_failure": 5,
        "split_external_local_origin_errors": False,
        "max_ejection_percent": 10,
    }


def _edited(kind: str, name: str, namespace: str, op: str, path: str, value: object = None) -> ManifestSet:
    return edited(_manifests(), kind, name, lambda body: apply_pointer(body, op, path, value))


def test_an_unknown_retry_trigger_is_refused() -> None:
    manifests = _edited(
        "BackendTrafficPolicy",
        "pytorch-resnet-rate-limit",
        "tenant-c",
        "replace",
        "/spec/retry/retryOn/triggers",
        ["x"],
    )
    with pytest.raises(ManifestError, match="unknown trigger"):
        plan_gateway(manifests)


def test_a_field_outside_the_subset_is_refused() -> None:
    manifests = _edited(
        "BackendTrafficPolicy", "pytorch-resnet-rate-limit", "tenant-c", "add", "/spec/retry/perRetry/jitter", "1s"
    )
    with pytest.raises(ManifestError, match="jitter"):
        check_all_supported(manifests)


def test_without_a_destination_rule_the_policy_passive_check_applies(tmp_path: Path) -> None:
    manifests = _edited(
        "BackendTrafficPolicy",
        "pytorch-resnet-rate-limit",
        "tenant-c",
        "add",
        "/spec/healthCheck",
        {"passive": {"consecutive5XxErrors": 7}},
    )
    plan = plan_gateway(manifests)
    plan.replica_outliers.pop("tenant-c/pytorch-resnet")
    detection = cluster_resilience(plan, CLUSTER)["outlier_detection"]
    assert detection["consecutive_5xx"] == 7
    assert detection["interval"] == "3s"
