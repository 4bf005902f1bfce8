"""Outlier detection of a model's replicas, as an Istio 1.26 DestinationRule declares it (the gateway
and the sidecars both use it: on the embedded target the gateway reaches replicas itself, where
Istio's ingress would)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferbox.embedded.durations import parse_go_duration
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet

SVC_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class OutlierPlan:
    """Passive health checking (Envoy outlier detection) of a backend's endpoints. ``source`` says
    whose translation it follows: Envoy Gateway's healthCheck.passive or Istio's DestinationRule."""

    source: str
    interval_s: float | None
    base_ejection_s: float | None
    consecutive_5xx: int | None
    consecutive_gateway_errors: int | None
    consecutive_local_origin: int | None
    split_local_origin: bool
    max_ejection_percent: int | None
    panic_threshold: int | None  # None: Envoy's 50 %


def _seconds(rule: K8sObject, name: str, value: Any) -> float:
    try:
        return parse_go_duration(str(value))
    except ValueError as exc:
        raise ManifestError(f"{rule.source}: {rule.ref}: trafficPolicy.outlierDetection.{name}: {exc}", "") from exc


def _rule_hosts(rule: K8sObject, namespace: str, model: str) -> bool:
    """Whether the rule's host names the model's revision services (``<model>-predictor...``)."""
    host = str(rule.spec.get("host", ""))
    fqdn_suffix = f".{namespace}.{SVC_DOMAIN}"
    if host == f"*{fqdn_suffix}":
        return True
    name = host.removesuffix(fqdn_suffix) if host.endswith(fqdn_suffix) else host
    return "." not in name and name.startswith(f"{model}-predictor")


def _outlier(rule: K8sObject) -> OutlierPlan:
    """Istio's translation: only the fields set are emitted (Envoy's defaults otherwise), success-rate
    ejection off, and the panic threshold is minHealthPercent (0 unless set)."""
    raw = (rule.spec.get("trafficPolicy") or {}).get("outlierDetection") or {}
    split = bool(raw.get("splitExternalLocalOriginErrors", False))
    return OutlierPlan(
        source="DestinationRule",
        interval_s=_seconds(rule, "interval", raw["interval"]) if "interval" in raw else None,
        base_ejection_s=_seconds(rule, "baseEjectionTime", raw["baseEjectionTime"])
        if "baseEjectionTime" in raw
        else None,
        consecutive_5xx=int(raw["consecutive5xxErrors"]) if "consecutive5xxErrors" in raw else None,
        consecutive_gateway_errors=int(raw["consecutiveGatewayErrors"]) if "consecutiveGatewayErrors" in raw else None,
        consecutive_local_origin=(
            int(raw["consecutiveLocalOriginFailures"]) if split and "consecutiveLocalOriginFailures" in raw else None
        ),
        split_local_origin=split,
        max_ejection_percent=int(raw["maxEjectionPercent"]) if int(raw.get("maxEjectionPercent", 0)) > 0 else None,
        panic_threshold=int(raw.get("minHealthPercent", 0)),
    )


def destination_rule_outliers(manifests: ManifestSet) -> dict[str, OutlierPlan]:
    """Per "<namespace>/<model>", the outlier detection a DestinationRule of the model's namespace
    sets for its revision services (the most specific host wins: a named host over a wildcard)."""
    found: dict[str, OutlierPlan] = {}
    rules = [
        r for r in manifests.of_kind("DestinationRule") if "outlierDetection" in (r.spec.get("trafficPolicy") or {})
    ]
    for isvc in manifests.of_kind("InferenceService"):
        namespace = isvc.namespace or "default"
        matching = [
            r for r in rules if (r.namespace or "default") == namespace and _rule_hosts(r, namespace, isvc.name)
        ]
        matching.sort(key=lambda r: str(r.spec.get("host", "")).startswith("*"))
        if matching:
            found[f"{namespace}/{isvc.name}"] = _outlier(matching[0])
    return found
