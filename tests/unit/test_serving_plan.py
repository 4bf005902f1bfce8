"""What the embedded target makes of InferenceServices and Knative's autoscaler settings."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from inferbox.embedded.subset import check_all_supported
from inferbox.errors import ManifestError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, K8sObject, ManifestSet, load_manifests
from inferbox.serving_plan import PREVIOUS_PREDICTOR, autoscaler_config, plan_model, plan_serving

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)


def _isvc(name: str = "sklearn-iris", namespace: str = "tenant-a") -> K8sObject:
    obj = MANIFESTS.get("InferenceService", name, namespace)
    assert obj is not None
    return obj


def _with(obj: K8sObject, change: dict[str, object]) -> K8sObject:
    body = copy.deepcopy(obj.body)
    body["metadata"].setdefault("annotations", {}).update(change.get("annotations", {}))
    body["spec"]["predictor"].update(change.get("predictor", {}))
    return K8sObject(obj.api_version, obj.kind, obj.name, obj.namespace, body, obj.source)


def test_the_canary_model_has_two_revisions_split_as_declared() -> None:
    plan = plan_serving(MANIFESTS)[("tenant-a", "sklearn-iris")]
    first, second = plan.revisions
    assert (first.name, first.traffic_percent, first.latest) == ("sklearn-iris-predictor-00001", 80, False)
    assert (second.name, second.traffic_percent, second.latest) == ("sklearn-iris-predictor-00002", 20, True)
    assert first.predictor["model"]["storageUri"].endswith("/model")
    assert second.predictor["model"]["storageUri"].endswith("/model-2")
    assert "canaryTrafficPercent" not in first.predictor
    assert plan.canary_percent == 20
    assert plan.traffic() == {"00001": 80, "00002": 20}
    assert plan.traffic(promoted=True) == {"00001": 0, "00002": 100}
    assert plan.traffic(latest_offset=-15) == {"00001": 95, "00002": 5}
    assert plan.traffic(promoted=True, latest_offset=-15) == {"00001": 15, "00002": 85}


def test_a_model_without_a_previous_revision_has_one_revision() -> None:
    plan = plan_serving(MANIFESTS)[("tenant-c", "pytorch-resnet")]
    assert [(r.name, r.traffic_percent) for r in plan.revisions] == [("pytorch-resnet-predictor-00001", 100)]
    # KServe: the first revision gets everything, canaryTrafficPercent or not.
    alone = plan_model(_with(_isvc("pytorch-resnet", "tenant-c"), {"predictor": {"canaryTrafficPercent": 30}}), {})
    assert [r.traffic_percent for r in alone.revisions] == [100]


def test_settings_come_from_config_autoscaler_and_the_predictor() -> None:
    settings = plan_serving(MANIFESTS)[("tenant-c", "pytorch-resnet")].settings
    assert (settings.min_replicas, settings.max_replicas, settings.metric, settings.target) == (0, 3, "concurrency", 4)
    assert settings.target_utilization == pytest.approx(0.7)
    assert settings.per_replica_target == pytest.approx(2.8)
    assert (settings.stable_window_s, settings.panic_window_s, settings.scale_to_zero_grace_s) == (6, 1, 2)
    assert settings.idle_to_zero_s == 8
    assert settings.target_burst_capacity == 0
    assert settings.replicas_for(6) == 3
    assert settings.replicas_for(100) == 3  # maxReplicas
    assert settings.replicas_for(0) == 0


def test_knative_defaults_apply_without_config_autoscaler() -> None:
    objects = tuple(o for o in MANIFESTS if not (o.kind == "ConfigMap" and o.name == "config-autoscaler"))
    config = autoscaler_config(ManifestSet(MANIFESTS.root, objects))
    settings = plan_model(_isvc(), config).settings
    assert (settings.stable_window_s, settings.scale_to_zero_grace_s, settings.target_burst_capacity) == (60, 30, 211)
    assert settings.idle_to_zero_s == 90


def test_revision_annotations_override_the_config() -> None:
    config = autoscaler_config(MANIFESTS)
    obj = _with(_isvc(), {"annotations": {"autoscaling.knative.dev/window": "20s"}})
    assert plan_model(obj, config).settings.stable_window_s == 20


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"annotations": {"autoscaling.knative.dev/metric-aggregation-algorithm": "linear"}}, "metric-aggregation"),
        ({"annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}}, "deploymentMode"),
        ({"annotations": {"autoscaling.knative.dev/window": "2s"}}, "stable window"),
        ({"annotations": {"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev"}}, "autoscaler class"),
        ({"annotations": {PREVIOUS_PREDICTOR: "{not json"}}, "not JSON"),
        ({"predictor": {"minReplicas": 4}}, "inconsistent"),
        ({"predictor": {"canaryTrafficPercent": 120}}, "canaryTrafficPercent"),
    ],
)
def test_what_is_not_interpreted_is_an_error_naming_it(change: dict[str, object], named: str) -> None:
    with pytest.raises(ManifestError, match=named):
        plan_model(_with(_isvc(), change), autoscaler_config(MANIFESTS))


def test_a_previous_revision_outside_the_embedded_subset_is_an_error_naming_the_field() -> None:
    obj = _with(_isvc(), {"annotations": {PREVIOUS_PREDICTOR: json.dumps({"model": {"runtime": "x"}})}})
    with pytest.raises(ManifestError, match=r"spec\.predictor\.model\.runtime"):
        check_all_supported(ManifestSet(MANIFESTS.root, (obj,)))


def test_an_unknown_config_autoscaler_key_is_an_error(tmp_path: Path) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config-autoscaler", "namespace": "knative-serving"},
        "data": {"stable-window": "6s", "tick-interval": "2s"},
    }
    (tmp_path / "cm.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ManifestError, match="tick-interval"):
        autoscaler_config(load_manifests(tmp_path))
