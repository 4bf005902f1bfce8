"""ResourceQuota and LimitRange on the embedded target: admission of pods, as the API server does.

Every pod the embedded platform creates in a namespace (model replicas, the suite's probe pods)
is admitted here first. A LimitRange fills in requests and limits a container does not declare and
refuses one above its ``max``; a ResourceQuota refuses a pod that would take the namespace past a
hard limit (``pods``, ``requests.cpu``, ``requests.memory``, ``limits.cpu``, ``limits.memory``).
The refusal reads like the API server's, and the deployer records it as an event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from kubernetes.utils import parse_quantity

from inferbox.errors import ManifestError, PlatformError
from inferbox.manifests import K8sObject, ManifestSet

SUPPORTED = ("pods", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
# The official client's parser (the package has no type hints; its result is a Decimal).
_parse_quantity: Callable[[str | int | float], Decimal] = parse_quantity


def quantity(value: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("100m", "2Gi", "1") as a number (the official client's parser)."""
    try:
        parsed = _parse_quantity(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from exc
    return parsed


def _format(key: str, amount: Decimal) -> str:
    if key == "pods":
        return str(int(amount))
    if key.endswith("cpu"):
        return f"{int(amount * 1000)}m"
    return f"{int(amount / 2**20)}Mi"


class QuotaExceeded(PlatformError):
    """A pod was refused by its namespace's ResourceQuota or LimitRange."""


@dataclass
class PodResources:
    requests: dict[str, Decimal] = field(default_factory=dict)  # cpu, memory
    limits: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_containers(cls, containers: list[dict[str, dict[str, str]]]) -> PodResources:
        total = cls()
        for resources in containers:
            for kind, bucket in (("requests", total.requests), ("limits", total.limits)):
                for name, value in (resources.get(kind) or {}).items():
                    bucket[name] = bucket.get(name, Decimal(0)) + quantity(value)
        return total


@dataclass
class Quota:
    name: str
    hard: dict[str, Decimal]


class QuotaLedger:
    """Hard limits and usage per namespace; thread-safe (replicas start in parallel)."""

    def __init__(self, manifests: ManifestSet) -> None:
        self.quotas: dict[str, list[Quota]] = {}
        self.limit_ranges: dict[str, list[dict[str, dict[str, str]]]] = {}
        self.usage: dict[str, dict[str, PodResources]] = {}  # namespace -> pod name -> resources
        self._lock = threading.Lock()
        for obj in manifests.of_kind("ResourceQuota"):
            self.quotas.setdefault(obj.namespace or "default", []).append(Quota(obj.name, self._hard(obj)))
        for obj in manifests.of_kind("LimitRange"):
            self.limit_ranges.setdefault(obj.namespace or "default", []).extend(obj.spec.get("limits") or [])

    @staticmethod
    def _hard(obj: K8sObject) -> dict[str, Decimal]:
        hard = {}
        for key, value in (obj.spec.get("hard") or {}).items():
            if key not in SUPPORTED:
                raise ManifestError(
                    f"{obj.source}: {obj.ref}: quota on {key!r} is not interpreted by the embedded target",
                    f"use {', '.join(SUPPORTED)}, or run on a cluster",
                )
            try:
                hard[key] = quantity(value)
            except ValueError as exc:
                raise ManifestError(f"{obj.source}: {obj.ref}: {exc}", "write a quantity like 100m, 2Gi or 4") from exc
        return hard

    def container_resources(self, namespace: str, resources: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        """A container's resources after the namespace's LimitRange defaults (refused above max)."""
        merged = {"requests": dict(resources.get("requests") or {}), "limits": dict(resources.get("limits") or {})}
        for limit in self.limit_ranges.get(namespace, []):
            for name, value in (limit.get("default") or {}).items():
                merged["limits"].setdefault(name, value)
            declared_limits = resources.get("limits") or {}
            for name, value in (limit.get("defaultRequest") or {}).items():
                # A missing request defaults to the container's own limit when it declares one.
                merged["requests"].setdefault(name, declared_limits.get(name, value))
            for name, value in (limit.get("max") or {}).items():
                for kind in ("requests", "limits"):
                    if name in merged[kind] and quantity(merged[kind][name]) > quantity(value):
                        raise QuotaExceeded(
                            f"pod is forbidden in {namespace}: maximum {name} usage per Container is {value}, "
                            f"but {kind[:-1]} is {merged[kind][name]}",
                            "lower the container's resources or raise the LimitRange's max",
                        )
        return merged

    def admit(self, namespace: str, pod: str, containers: list[dict[str, dict[str, str]]]) -> PodResources:
        """Records ``pod`` against its namespace's quotas, or raises QuotaExceeded naming the limit."""
        resources = PodResources.from_containers([self.container_resources(namespace, c) for c in containers])
        with self._lock:
            pods = self.usage.setdefault(namespace, {})
            for quota in self.quotas.get(namespace, []):
                used = self._used(pods)
                asked = {"pods": Decimal(1)}
                for kind, bucket in (("requests", resources.requests), ("limits", resources.limits)):
                    for name in ("cpu", "memory"):
                        key = f"{kind}.{name}"
                        if key in quota.hard:
                            if name not in bucket:
                                raise QuotaExceeded(
                                    f'pods "{pod}" is forbidden: failed quota: {quota.name}: must specify {key}',
                                    "declare the resource or add a LimitRange default",
                                )
                            asked[key] = bucket[name]
                over = [k for k, v in asked.items() if k in quota.hard and used.get(k, Decimal(0)) + v > quota.hard[k]]
                if over:

                    def fmt(values: dict[str, Decimal], keys: list[str] = over) -> str:
                        return ",".join(f"{k}={_format(k, values.get(k, Decimal(0)))}" for k in keys)

                    raise QuotaExceeded(
                        f'pods "{pod}" is forbidden: exceeded quota: {quota.name}, requested: {fmt(asked)}, '
                        f"used: {fmt(used)}, limited: {fmt(quota.hard)}",
                        f"raise ResourceQuota {namespace}/{quota.name} or run fewer replicas",
                    )
            pods[pod] = resources
        return resources

    def release(self, namespace: str, pod: str) -> None:
        with self._lock:
            self.usage.get(namespace, {}).pop(pod, None)

    @staticmethod
    def _used(pods: dict[str, PodResources]) -> dict[str, Decimal]:
        used: dict[str, Decimal] = {"pods": Decimal(len(pods))}
        for resources in pods.values():
            for kind, bucket in (("requests", resources.requests), ("limits", resources.limits)):
                for name, amount in bucket.items():
                    used[f"{kind}.{name}"] = used.get(f"{kind}.{name}", Decimal(0)) + amount
        return used

    def status(self, namespace: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """(hard, used) of the namespace's quotas, formatted like the API's status; None without quota."""
        quotas = self.quotas.get(namespace)
        if not quotas:
            return None
        with self._lock:
            used = self._used(self.usage.get(namespace, {}))
        hard: dict[str, Decimal] = {}
        for quota in quotas:
            for key, value in quota.hard.items():
                hard[key] = min(hard.get(key, value), value)
        return (
            {k: _format(k, v) for k, v in hard.items()},
            {k: _format(k, used.get(k, Decimal(0))) for k in hard},
        )
