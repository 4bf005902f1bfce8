"""prometheus-operator ``PodMonitor``/``ServiceMonitor`` objects turned into a Prometheus config.

The embedded target does what the operator and Prometheus's Kubernetes service discovery do
together on a cluster, for the declared subset of fields (see subset.py):

- service discovery is emulated: every pod the platform runs is offered to every monitor as the
  targets Kubernetes discovery would produce (one per declared container port, or per Service
  endpoint port), each carrying the same ``__meta_kubernetes_*`` labels;
- the operator's relabelings are generated the same way: keep the selected pods and the named
  port, set ``namespace``, ``pod``, ``container``, ``service``, ``job`` and ``endpoint``; then the
  monitor's own ``relabelings``; its ``metricRelabelings`` become ``metric_relabel_configs``.

Prometheus itself then applies the relabelings, so a monitor that relabels wrongly breaks the
embedded platform exactly as it would break a cluster. One scrape job is written per monitor
endpoint and pod: on the loopback network every pod is 127.0.0.1 with its ports remapped, and a
final per-pod rule maps the container port the relabelings chose to the port really used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
RELABEL_KEYS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


def sanitize(name: str) -> str:
    """Kubernetes label or annotation name as a Prometheus label name suffix (as discovery does)."""
    return _INVALID_LABEL_CHARS.sub("_", name)


@dataclass(frozen=True)
class ContainerPort:
    name: str
    number: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Container:
    name: str
    ports: tuple[ContainerPort, ...] = ()


@dataclass
class PodView:
    """A pod as Kubernetes service discovery would describe it."""

    namespace: str
    name: str
    ip: str
    labels: dict[str, str]
    annotations: dict[str, str]
    containers: tuple[Container, ...]
    # Loopback network only: container port -> the host port really used (pods share 127.0.0.1).
    port_map: dict[int, int] = field(default_factory=dict)
    phase: str = "Running"

    def meta(self) -> dict[str, str]:
        labels = {
            "__meta_kubernetes_namespace": self.namespace,
            "__meta_kubernetes_pod_name": self.name,
            "__meta_kubernetes_pod_ip": self.ip,
            "__meta_kubernetes_pod_ready": "true",
            "__meta_kubernetes_pod_phase": self.phase,
            "__meta_kubernetes_pod_node_name": "embedded",
        }
        for key, value in self.labels.items():
            labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
            labels[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
        for key, value in self.annotations.items():
            labels[f"__meta_kubernetes_pod_annotation_{sanitize(key)}"] = value
            labels[f"__meta_kubernetes_pod_annotationpresent_{sanitize(key)}"] = "true"
        return labels

    def container_port(self, name_or_number: str | int) -> tuple[Container, ContainerPort] | None:
        for container in self.containers:
            for port in container.ports:
                if name_or_number in (port.name, port.number):
                    return container, port
        return None


def _container_meta(container: Container, port: ContainerPort | None) -> dict[str, str]:
    labels = {"__meta_kubernetes_pod_container_name": container.name, "__meta_kubernetes_pod_container_init": "false"}
    if port is not None:
        labels["__meta_kubernetes_pod_container_port_name"] = port.name
        labels["__meta_kubernetes_pod_container_port_number"] = str(port.number)
        labels["__meta_kubernetes_pod_container_port_protocol"] = port.protocol
    return labels


def pod_targets(pod: PodView) -> list[dict[str, Any]]:
    """Pod-role discovery: one target per declared container port; a container without ports gives
    one port-less target (Prometheus documents this so relabelings can add a port)."""
    groups = []
    for container in pod.containers:
        for port in container.ports or (None,):
            address = f"{pod.ip}:{port.number}" if port else pod.ip
            groups.append(
                {"targets": [address], "labels": {**pod.meta(), **_container_meta(container, port)}},
            )
    return groups


def endpoint_targets(service: K8sObject, pods: list[PodView]) -> list[dict[str, Any]]:
    """Endpoints-role discovery: one target per ready pod the Service selects and per Service port."""
    selector = service.spec.get("selector") or {}
    groups = []
    for pod in pods:
        if pod.namespace != service.namespace or not selector:
            continue
        if any(pod.labels.get(k) != v for k, v in selector.items()):
            continue
        for port in service.spec.get("ports") or []:
            target = port.get("targetPort", port["port"])
            found = pod.container_port(target)
            if found is None:
                continue
            container, container_port = found
            labels = {
                **pod.meta(),
                **_container_meta(container, container_port),
                "__meta_kubernetes_endpoints_name": service.name,
                "__meta_kubernetes_service_name": service.name,
                "__meta_kubernetes_endpoint_port_name": str(port.get("name", "")),
                "__meta_kubernetes_endpoint_port_protocol": str(port.get("protocol", "TCP")),
                "__meta_kubernetes_endpoint_ready": "true",
                "__meta_kubernetes_endpoint_address_target_kind": "Pod",
                "__meta_kubernetes_endpoint_address_target_name": pod.name,
            }
            for key, value in service.labels.items():
                labels[f"__meta_kubernetes_service_label_{sanitize(key)}"] = value
                labels[f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"] = "true"
            groups.append({"targets": [f"{pod.ip}:{container_port.number}"], "labels": labels})
    return groups


_RUNNING_ONLY = {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"}


def _keep(label: str, regex: str) -> dict[str, Any]:
    return {"action": "keep", "source_labels": [label], "regex": regex}


def _to(label: str) -> dict[str, str]:
    return {"target_label": label}


def _selector_relabelings(selector: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The operator's keep/drop rules for a label selector (``kind``: pod or service)."""
    rules: list[dict[str, Any]] = []
    for key in sorted(selector.get("matchLabels") or {}):
        rules.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_{kind}_label_{sanitize(key)}",
                    f"__meta_kubernetes_{kind}_labelpresent_{sanitize(key)}",
                ],
                "regex": f"({selector['matchLabels'][key]});true",
            }
        )
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        value_and_present = [
            f"__meta_kubernetes_{kind}_label_{sanitize(key)}",
            f"__meta_kubernetes_{kind}_labelpresent_{sanitize(key)}",
        ]
        present = [f"__meta_kubernetes_{kind}_labelpresent_{sanitize(key)}"]
        if operator in ("In", "NotIn"):
            action = "keep" if operator == "In" else "drop"
            rules.append({"action": action, "source_labels": value_and_present, "regex": f"({'|'.join(values)});true"})
        else:
            action = "keep" if operator == "Exists" else "drop"
            rules.append({"action": action, "source_labels": present, "regex": "true"})
    return rules


def _user_relabelings(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{RELABEL_KEYS[k]: v for k, v in rule.items()} for rule in raw]


def _namespaces(monitor: K8sObject) -> tuple[bool, set[str]]:
    selector = monitor.spec.get("namespaceSelector") or {}
    if selector.get("any"):
        return True, set()
    return False, set(selector.get("matchNames") or [monitor.namespace or "default"])


def _port_map_rules(pod: PodView) -> list[dict[str, Any]]:
    """On the loopback network a container port is reached on a host port of its own. The rules key
    on the pod's name as well as the address, since every pod there has the address 127.0.0.1."""
    return [
        {
            "source_labels": ["__meta_kubernetes_pod_name", "__address__"],
            "separator": ";",
            "regex": f"{re.escape(pod.name)};{re.escape(pod.ip)}:{container_port}",
            "target_label": "__address__",
            "replacement": f"{pod.ip}:{host_port}",
        }
        for container_port, host_port in sorted(pod.port_map.items())
    ]


def _job_basics(endpoint: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = {"metrics_path": endpoint.get("path", "/metrics"), "scheme": endpoint.get("scheme", "http")}
    if "interval" in endpoint:
        job["scrape_interval"] = endpoint["interval"]
    if "scrapeTimeout" in endpoint:
        job["scrape_timeout"] = endpoint["scrapeTimeout"]
    if endpoint.get("honorLabels"):
        job["honor_labels"] = True
    if endpoint.get("metricRelabelings"):
        job["metric_relabel_configs"] = _user_relabelings(endpoint["metricRelabelings"])
    return job


def pod_monitor_jobs(monitor: K8sObject, pods: list[PodView]) -> list[dict[str, Any]]:
    any_ns, namespaces = _namespaces(monitor)
    jobs = []
    for index, endpoint in enumerate(monitor.spec.get("podMetricsEndpoints") or []):
        rules: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
        rules.append(
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"}
        )
        rules += _selector_relabelings(monitor.spec.get("selector") or {}, "pod")
        if endpoint.get("port"):
            rules.append(
                {
                    "action": "keep",
                    "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                    "regex": endpoint["port"],
                }
            )
        elif endpoint.get("portNumber"):
            rules.append(
                {
                    "action": "keep",
                    "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                    "regex": str(endpoint["portNumber"]),
                }
            )
        rules += [
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]
        for label in monitor.spec.get("podTargetLabels") or []:
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                    "target_label": sanitize(label),
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        rules.append({"target_label": "job", "replacement": f"{monitor.namespace}/{monitor.name}"})
        if monitor.spec.get("jobLabel"):
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(monitor.spec['jobLabel'])}"],
                    "target_label": "job",
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        if endpoint.get("port"):
            rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
        rules += _user_relabelings(endpoint.get("relabelings") or [])
        # One scrape pool per monitor endpoint, as prometheus-operator generates: a pod that goes
        # away is then a dropped target, whose series Prometheus marks stale at once (a removed
        # pool's series would instead linger as down for the whole lookback window). The pool stays
        # when it has no pods at all, so that the last replica of a model scaled to zero goes stale too.
        selected = [pod for pod in pods if any_ns or pod.namespace in namespaces]
        jobs.append(
            {
                "job_name": f"podMonitor/{monitor.namespace}/{monitor.name}/{index}",
                **_job_basics(endpoint),
                "static_configs": [group for pod in selected for group in pod_targets(pod)],
                "relabel_configs": rules + [rule for pod in selected for rule in _port_map_rules(pod)],
            }
        )
    return jobs


def service_monitor_jobs(monitor: K8sObject, manifests: ManifestSet, pods: list[PodView]) -> list[dict[str, Any]]:
    any_ns, namespaces = _namespaces(monitor)
    services = [s for s in manifests.of_kind("Service") if any_ns or s.namespace in namespaces]
    jobs = []
    for index, endpoint in enumerate(monitor.spec.get("endpoints") or []):
        rules: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
        rules += _selector_relabelings(monitor.spec.get("selector") or {}, "service")
        if endpoint.get("port"):
            rules.append(_keep("__meta_kubernetes_endpoint_port_name", endpoint["port"]))
        target = ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"]
        rules += [
            {
                "source_labels": target,
                "separator": ";",
                "regex": "Node;(.*)",
                "replacement": "${1}",
                "target_label": "node",
            },
            {
                "source_labels": target,
                "separator": ";",
                "regex": "Pod;(.*)",
                "replacement": "${1}",
                "target_label": "pod",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            _RUNNING_ONLY,
        ]
        for label in monitor.spec.get("targetLabels") or []:
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_service_label_{sanitize(label)}"],
                    "target_label": sanitize(label),
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        for label in monitor.spec.get("podTargetLabels") or []:
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                    "target_label": sanitize(label),
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        rules.append(
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"}
        )
        if monitor.spec.get("jobLabel"):
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_service_label_{sanitize(monitor.spec['jobLabel'])}"],
                    "target_label": "job",
                    "regex": "(.+)",
                    "replacement": "${1}",
                }
            )
        if endpoint.get("port"):
            rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
        rules += _user_relabelings(endpoint.get("relabelings") or [])
        groups, port_rules = [], []
        for service in services:
            for pod in pods:
                found = endpoint_targets(service, [pod])
                if found:
                    groups += found
                    port_rules += _port_map_rules(pod)
        jobs.append(  # kept when empty, as for pod monitors
            {
                "job_name": f"serviceMonitor/{monitor.namespace}/{monitor.name}/{index}",
                **_job_basics(endpoint),
                "static_configs": groups,
                "relabel_configs": rules + port_rules,
            }
        )
    return jobs


@dataclass(frozen=True)
class ScrapeSettings:
    interval: str = "1s"
    timeout: str = "1s"
    evaluation_interval: str = "1s"


def prometheus_config(
    manifests: ManifestSet, pods: list[PodView], settings: ScrapeSettings = ScrapeSettings()
) -> dict[str, Any]:
    """The whole Prometheus configuration for the monitors in ``manifests`` and the running ``pods``."""
    jobs: list[dict[str, Any]] = []
    for monitor in manifests.of_kind("PodMonitor"):
        jobs += pod_monitor_jobs(monitor, pods)
    for monitor in manifests.of_kind("ServiceMonitor"):
        jobs += service_monitor_jobs(monitor, manifests, pods)
    names = [job["job_name"] for job in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ManifestError(f"two monitors produce the same scrape job: {duplicates}", "give each monitor its own name")
    return {
        "global": {
            "scrape_interval": settings.interval,
            "scrape_timeout": settings.timeout,
            "evaluation_interval": settings.evaluation_interval,
        },
        "scrape_configs": jobs,
    }


def has_monitors(manifests: ManifestSet) -> bool:
    return bool(manifests.of_kind("PodMonitor") or manifests.of_kind("ServiceMonitor"))
