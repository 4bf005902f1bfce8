"""Knative Serving 1.18's ``config-defaults``: the keys that change how a revision serves, as the
embedded target interprets them, and Knative's own validation (pkg/apis/config/defaults.go).

A model pod's requests pass Knative's queue-proxy, which answers 504 once a request has taken
``revision-timeout-seconds`` (and, with ``revision-idle-timeout-seconds``, once it has been idle
that long); the embedded target gives a model pod's sidecar route those timeouts, so a request to
the model is cut off where queue-proxy would cut it. Keys that only shape pods on a cluster
(resources, container names, service links) or the queue-proxy's concurrency breaker are refused:
nothing on the embedded target would follow them. ``_example`` is documentation and is ignored,
as Knative ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass

from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet

CONFIG_DEFAULTS = ("knative-serving", "config-defaults")
# Knative's code defaults for the keys interpreted here.
DEFAULTS = {
    "revision-timeout-seconds": 300,
    "max-revision-timeout-seconds": 600,
    "revision-response-start-timeout-seconds": None,  # None: the revision timeout
    "revision-idle-timeout-seconds": 0,  # 0: no idle limit
    "container-concurrency-max-limit": 1000,
    "allow-container-concurrency-zero": True,
}
IGNORED = ("_example",)
# Keys whose effect the embedded target has no counterpart for, with why.
REFUSED = {
    "container-concurrency": "the queue-proxy's concurrency breaker is not modelled",
    "revision-cpu-request": "pod resources are not modelled",
    "revision-memory-request": "pod resources are not modelled",
    "revision-ephemeral-storage-request": "pod resources are not modelled",
    "revision-cpu-limit": "pod resources are not modelled",
    "revision-memory-limit": "pod resources are not modelled",
    "revision-ephemeral-storage-limit": "pod resources are not modelled",
    "container-name-template": "container names are not modelled",
    "init-container-name-template": "container names are not modelled",
    "enable-service-links": "pod service links are not modelled",
}


@dataclass(frozen=True)
class RevisionTimeouts:
    """How long queue-proxy lets a model request run, and stay idle (0: no idle limit)."""

    timeout_s: int = 300
    idle_timeout_s: int = 0


def _seconds(obj: K8sObject, key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise ManifestError(f"{obj.source}: {obj.ref}: {key}: {value!r} is not a whole number of seconds", "") from exc
    if number < 0:
        raise ManifestError(f"{obj.source}: {obj.ref}: {key} is negative", "use 0 or more seconds")
    return number


def _check_keys(obj: K8sObject, data: dict[str, str]) -> None:
    for key in data:
        if key in REFUSED:
            raise ManifestError(
                f"{obj.source}: {obj.ref}: key {key} is not interpreted by the embedded target ({REFUSED[key]})",
                "remove it, or run on a cluster (--platform kind/existing)",
            )
        if key not in DEFAULTS and key not in IGNORED:
            raise ManifestError(
                f"{obj.source}: {obj.ref}: {key} is not a key of Knative's config-defaults",
                "interpreted: " + ", ".join(sorted(DEFAULTS)),
            )


def revision_timeouts(manifests: ManifestSet) -> RevisionTimeouts:
    """config-defaults' revision timeouts, validated as Knative validates them; its defaults when absent."""
    obj = manifests.get("ConfigMap", CONFIG_DEFAULTS[1], CONFIG_DEFAULTS[0])
    if obj is None:
        return RevisionTimeouts()
    data = {str(k): str(v) for k, v in (obj.body.get("data") or {}).items()}
    _check_keys(obj, data)
    seconds = {key: _seconds(obj, key, data[key]) for key in data if key.endswith("seconds")}
    timeout = seconds.get("revision-timeout-seconds", 300)
    maximum = seconds.get("max-revision-timeout-seconds", 600)
    if timeout > maximum:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: revision-timeout-seconds ({timeout}) cannot be greater than "
            f"max-revision-timeout-seconds ({maximum})",
            "Knative refuses this config-defaults; lower the timeout or raise the maximum",
        )
    for key in ("revision-response-start-timeout-seconds", "revision-idle-timeout-seconds"):
        if seconds.get(key, 0) > timeout:
            raise ManifestError(
                f"{obj.source}: {obj.ref}: {key} ({seconds[key]}) cannot be greater than "
                f"revision-timeout-seconds ({timeout})",
                "Knative refuses this config-defaults",
            )
    start = seconds.get("revision-response-start-timeout-seconds", timeout)
    if start != timeout:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: revision-response-start-timeout-seconds below the revision timeout is not "
            "interpreted by the embedded target (time to first byte is not modelled)",
            "remove it, or run on a cluster (--platform kind/existing)",
        )
    for key in ("container-concurrency-max-limit",):
        if key in data and _seconds(obj, key, data[key]) < 1:
            raise ManifestError(f"{obj.source}: {obj.ref}: {key} must be at least 1", "Knative refuses it otherwise")
    if "allow-container-concurrency-zero" in data and data["allow-container-concurrency-zero"] not in ("true", "false"):
        raise ManifestError(f"{obj.source}: {obj.ref}: allow-container-concurrency-zero must be true or false", "")
    return RevisionTimeouts(timeout, seconds.get("revision-idle-timeout-seconds", 0))


# ConfigMaps the embedded target interprets, by (namespace, name), and where.
INTERPRETED_CONFIGMAPS = {
    ("knative-serving", "config-autoscaler"): "the embedded autoscaler (inferbox/serving_plan.py)",
    ("knative-serving", "config-domain"): "model host names (inferbox/embedded/gateway_plan.py)",
    CONFIG_DEFAULTS: "model pods' request timeouts (inferbox/embedded/knative_defaults.py)",
}


def check_configmap(obj: K8sObject) -> None:
    """A ConfigMap nothing on the embedded target reads would be ignored: refused instead."""
    if (obj.namespace or "default", obj.name) not in INTERPRETED_CONFIGMAPS:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: ConfigMap {obj.namespace}/{obj.name} is not interpreted by the embedded target",
            "remove it, or run on a cluster (--platform kind/existing); interpreted ConfigMaps: "
            + ", ".join(f"{ns}/{name}" for ns, name in INTERPRETED_CONFIGMAPS),
        )
