"""What KServe and Knative make of the InferenceServices: revisions, their traffic, and the
autoscaler's settings (no processes yet).

- Every InferenceService is one Knative Service ``<isvc>-predictor`` with numbered revisions
  (``<isvc>-predictor-00001``...). A manifest describes the latest revision. With
  ``canaryTrafficPercent`` and a previously rolled-out revision (the annotation
  ``rollout.inferbox.io/previous-predictor``, a JSON merge patch of ``spec.predictor`` describing the
  revision rolled out before), the latest revision gets that percentage and the rolled-out one the
  rest, as KServe splits traffic; otherwise the latest revision gets everything.
- Autoscaling follows Knative's KPA: ``config-autoscaler`` in ``knative-serving`` (Knative 1.18's
  defaults for keys it does not set), per-revision ``autoscaling.knative.dev/*`` annotations (KServe
  copies the InferenceService's annotations onto its revisions), and KServe's ``minReplicas``,
  ``maxReplicas``, ``scaleMetric`` and ``scaleTarget``.

Keys and annotations the embedded target does not interpret are errors naming them, never ignored.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.replica_bounds import replica_bounds
from inferbox.serving import AutoscalingSettings

CONFIG_AUTOSCALER = ("knative-serving", "config-autoscaler")
PREVIOUS_PREDICTOR = "rollout.inferbox.io/previous-predictor"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
PROMETHEUS_SCRAPING = "serving.kserve.io/enable-prometheus-scraping"
KPA_CLASS = "kpa.autoscaling.knative.dev"
# Annotation domains whose keys change how a model is served; an uninterpreted key there is an error.
CHECKED_DOMAINS = ("autoscaling.knative.dev/", "serving.knative.dev/", "serving.kserve.io/", "rollout.inferbox.io/")

# Knative Serving 1.18's config-autoscaler defaults (config/core/configmaps/autoscaler.yaml), for
# the keys the embedded autoscaler interprets.
KNATIVE_DEFAULTS: dict[str, str] = {
    "enable-scale-to-zero": "true",
    "stable-window": "60s",
    "scale-to-zero-grace-period": "30s",
    "scale-to-zero-pod-retention-period": "0s",
    "container-concurrency-target-percentage": "70",
    "container-concurrency-target-default": "100",
    "requests-per-second-target-default": "200",
    "panic-window-percentage": "10.0",
    "panic-threshold-percentage": "200.0",
    "max-scale-up-rate": "1000.0",
    "max-scale-down-rate": "2.0",
    "target-burst-capacity": "211",
    "initial-scale": "1",
    "allow-zero-initial-scale": "false",
    "min-scale": "0",
    "max-scale": "0",
    "activator-capacity": "100.0",
    "pod-autoscaler-class": KPA_CLASS,
}
# Per-revision annotations (autoscaling.knative.dev/<key>) and the config key each overrides.
REVISION_ANNOTATIONS = {
    "window": "stable-window",
    "scale-to-zero-pod-retention-period": "scale-to-zero-pod-retention-period",
    "target-utilization-percentage": "container-concurrency-target-percentage",
    "target-burst-capacity": "target-burst-capacity",
    "initial-scale": "initial-scale",
    "panic-window-percentage": "panic-window-percentage",
    "panic-threshold-percentage": "panic-threshold-percentage",
    "class": "pod-autoscaler-class",
}
WINDOW_MIN_S, WINDOW_MAX_S = 6.0, 3600.0  # Knative's bounds for the stable window
BUCKET_S = 1.0  # Knative's metric bucket: the panic window is at least this long


@dataclass(frozen=True)
class RevisionPlan:
    namespace: str
    model: str
    number: int
    predictor: dict[str, Any]  # spec.predictor of this revision
    traffic_percent: int
    latest: bool

    @property
    def name(self) -> str:
        """Knative's name for it: <isvc>-predictor-<5-digit generation>."""
        return f"{self.model}-predictor-{self.number:05d}"

    @property
    def suffix(self) -> str:
        return f"{self.number:05d}"


@dataclass(frozen=True)
class ModelServingPlan:
    namespace: str
    name: str
    settings: AutoscalingSettings
    revisions: tuple[RevisionPlan, ...]
    canary_percent: int | None  # the declared canaryTrafficPercent, when a canary rolls out
    activator_capacity: int  # requests the activator holds per revision before refusing more

    def revision(self, name_or_suffix: str) -> RevisionPlan:
        for rev in self.revisions:
            if name_or_suffix in (rev.name, rev.suffix):
                return rev
        raise KeyError(f"{self.namespace}/{self.name} has no revision {name_or_suffix}")

    def traffic(self, promoted: bool = False, latest_offset: int = 0) -> dict[str, int]:
        """Percent per revision suffix. ``promoted``: the canary was promoted (all to the latest).
        ``latest_offset`` shifts points to (or from) the latest revision: a deliberately wrong
        target (the ``serving.canaryWeightOffset`` knob), never the platform's behaviour."""
        shares = {r.suffix: (100 if r.latest else 0) if promoted else r.traffic_percent for r in self.revisions}
        if latest_offset and len(self.revisions) == 2:
            latest, other = sorted(self.revisions, key=lambda r: not r.latest)
            shares[latest.suffix] = max(0, min(100, shares[latest.suffix] + latest_offset))
            shares[other.suffix] = 100 - shares[latest.suffix]
        return shares


def _duration_s(value: str, where: str) -> float:
    match = re.fullmatch(r"\s*((?:\d+(?:\.\d+)?(?:ms|s|m|h))+)\s*", value)
    if not match:
        raise ManifestError(f"{where}: {value!r} is not a duration", 'write durations like "6s", "1m30s" or "500ms"')
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total


def _number(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ManifestError(f"{where}: {value!r} is not a number", "write a plain number") from None


def _bool(value: str, where: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ManifestError(f"{where}: {value!r} is not true or false", 'write "true" or "false"')
    return value.lower() == "true"


def autoscaler_config(manifests: ManifestSet) -> dict[str, str]:
    """config-autoscaler's data over Knative's defaults; an uninterpreted key is an error."""
    obj = manifests.get("ConfigMap", CONFIG_AUTOSCALER[1], CONFIG_AUTOSCALER[0])
    data = dict(KNATIVE_DEFAULTS)
    if obj is None:
        return data
    given = dict(obj.body.get("data") or {})
    unknown = sorted(set(given) - set(KNATIVE_DEFAULTS))
    if unknown:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: key(s) {', '.join(unknown)} are not interpreted by the embedded target",
            "remove them, or run on a cluster (--platform kind/existing); interpreted: "
            + ", ".join(sorted(KNATIVE_DEFAULTS)),
        )
    data.update(given)
    return data


def _check_annotations(obj: K8sObject) -> None:
    for key, value in obj.annotations.items():
        if not key.startswith(CHECKED_DOMAINS):
            continue
        if key == DEPLOYMENT_MODE:
            if value != "Serverless":
                raise ManifestError(
                    f"{obj.source}: {obj.ref}: annotation {key}: {value!r} is not interpreted by the embedded target",
                    "the embedded target serves InferenceServices the Serverless way (Knative); remove it or "
                    "use Serverless",
                )
            continue
        if key in (PREVIOUS_PREDICTOR, PROMETHEUS_SCRAPING):
            continue  # the scraping switch is the observability plane's (inferbox/embedded/observability.py)
        short = key.removeprefix("autoscaling.knative.dev/")
        if key.startswith("autoscaling.knative.dev/") and short in REVISION_ANNOTATIONS:
            continue
        allowed = [
            DEPLOYMENT_MODE,
            PREVIOUS_PREDICTOR,
            PROMETHEUS_SCRAPING,
            *(f"autoscaling.knative.dev/{k}" for k in REVISION_ANNOTATIONS),
        ]
        raise ManifestError(
            f"{obj.source}: {obj.ref}: annotation {key} is not interpreted by the embedded target",
            f"remove it, or run on a cluster (--platform kind/existing); interpreted here: {', '.join(allowed)}",
        )


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def previous_predictor(obj: K8sObject) -> dict[str, Any] | None:
    """spec.predictor of the revision rolled out before this one, or None."""
    raw = obj.annotations.get(PREVIOUS_PREDICTOR)
    if raw is None:
        return None
    try:
        patch = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: annotation {PREVIOUS_PREDICTOR} is not JSON: {exc}",
            "write a JSON merge patch of spec.predictor, e.g. "
            '\'{"model": {"storageUri": "gs://bucket/previous-model"}}\'',
        ) from exc
    if not isinstance(patch, dict) or not patch:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: annotation {PREVIOUS_PREDICTOR} must be a non-empty JSON object",
            "write a JSON merge patch of spec.predictor",
        )
    base = _merge_patch(obj.spec.get("predictor") or {}, patch)
    base.pop("canaryTrafficPercent", None)
    return dict(base)


def settings_for(obj: K8sObject, config: dict[str, str]) -> tuple[AutoscalingSettings, int]:
    """The KPA settings of an InferenceService's revisions, and the activator's per-revision capacity."""
    _check_annotations(obj)
    where = f"{obj.source}: {obj.ref}"
    merged = {**KNATIVE_DEFAULTS, **config}
    for short, key in REVISION_ANNOTATIONS.items():
        value = obj.annotations.get(f"autoscaling.knative.dev/{short}")
        if value is not None:
            merged[key] = value
    if merged["pod-autoscaler-class"] != KPA_CLASS:
        raise ManifestError(
            f"{where}: autoscaler class {merged['pod-autoscaler-class']!r} is not interpreted by the embedded target",
            f"use Knative's KPA ({KPA_CLASS}), or run on a cluster",
        )
    predictor = obj.spec.get("predictor") or {}
    metric = str(predictor.get("scaleMetric", "concurrency"))
    if metric not in ("concurrency", "rps"):
        raise ManifestError(
            f"{where}: spec.predictor.scaleMetric {metric!r} is not interpreted by the embedded target",
            "use concurrency or rps (Knative's KPA metrics); cpu and memory need the HPA on a cluster",
        )
    default_target = (
        merged["container-concurrency-target-default"]
        if metric == "concurrency"
        else merged["requests-per-second-target-default"]
    )
    target = float(predictor.get("scaleTarget", _number(default_target, where)))
    utilization = _number(merged["container-concurrency-target-percentage"], where)
    utilization = utilization / 100.0 if utilization > 1.0 else utilization
    stable = _duration_s(merged["stable-window"], f"{where}: stable window")
    if not WINDOW_MIN_S <= stable <= WINDOW_MAX_S:
        raise ManifestError(f"{where}: the stable window {stable}s is outside Knative's [6s, 1h]", "use 6s or more")
    panic_pct = _number(merged["panic-window-percentage"], where)
    panic = max(BUCKET_S, round(stable * panic_pct / 100.0))
    grace = _duration_s(merged["scale-to-zero-grace-period"], f"{where}: scale-to-zero-grace-period")
    if grace <= 0:
        raise ManifestError(f"{where}: scale-to-zero-grace-period must be positive", "use e.g. 2s")
    tbc = _number(merged["target-burst-capacity"], where)
    if tbc < 0 and tbc != -1:
        raise ManifestError(f"{where}: target-burst-capacity {tbc} must be >= 0 or -1", "use 0, -1 or a capacity")
    min_replicas, max_replicas = replica_bounds(predictor)
    if min_replicas < 0 or (max_replicas and min_replicas > max_replicas):
        raise ManifestError(
            f"{where}: minReplicas {min_replicas} / maxReplicas {max_replicas} are inconsistent", "fix them"
        )
    initial = int(_number(merged["initial-scale"], where))
    if initial == 0 and not _bool(merged["allow-zero-initial-scale"], where):
        raise ManifestError(f"{where}: initial-scale 0 needs allow-zero-initial-scale", "allow it, or use 1")
    settings = AutoscalingSettings(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        metric=metric,
        target=target,
        target_utilization=utilization,
        stable_window_s=stable,
        panic_window_s=panic,
        panic_threshold=_number(merged["panic-threshold-percentage"], where) / 100.0,
        scale_to_zero_enabled=_bool(merged["enable-scale-to-zero"], where),
        scale_to_zero_grace_s=grace,
        scale_to_zero_retention_s=_duration_s(merged["scale-to-zero-pod-retention-period"], where),
        initial_scale=initial,
        target_burst_capacity=tbc,
        max_scale_down_rate=_number(merged["max-scale-down-rate"], where),
    )
    return settings, max(1, math.floor(_number(merged["activator-capacity"], where)))


def plan_model(obj: K8sObject, config: dict[str, str]) -> ModelServingPlan:
    settings, capacity = settings_for(obj, config)
    predictor = dict(obj.spec.get("predictor") or {})
    namespace = obj.namespace or "default"
    canary = predictor.get("canaryTrafficPercent")
    previous = previous_predictor(obj)
    if canary is not None and not 0 <= int(canary) <= 100:
        raise ManifestError(f"{obj.source}: {obj.ref}: canaryTrafficPercent {canary} is not in 0-100", "fix it")
    if previous is None:
        # The first revision of a service gets all traffic, canaryTrafficPercent or not (KServe).
        only = (RevisionPlan(namespace, obj.name, 1, predictor, 100, True),)
        return ModelServingPlan(namespace, obj.name, settings, only, None, capacity)
    latest_share = 100 if canary is None else int(canary)
    revisions = (
        RevisionPlan(namespace, obj.name, 1, previous, 100 - latest_share, False),
        RevisionPlan(namespace, obj.name, 2, predictor, latest_share, True),
    )
    return ModelServingPlan(namespace, obj.name, settings, revisions, None if canary is None else int(canary), capacity)


def plan_serving(manifests: ManifestSet) -> dict[tuple[str, str], ModelServingPlan]:
    """Every InferenceService's serving plan, by (namespace, name)."""
    config = autoscaler_config(manifests)
    plans = {}
    for obj in manifests.of_kind("InferenceService"):
        plan = plan_model(obj, config)
        plans[(plan.namespace, plan.name)] = plan
    return plans
