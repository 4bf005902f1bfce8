"""PodMonitors/ServiceMonitors become the Prometheus config the operator and Kubernetes discovery
would produce; the embedded target's pods look to them as they would on a cluster."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferbox.embedded.monitors import (
    Container,
    ContainerPort,
    PodView,
    endpoint_targets,
    pod_targets,
    prometheus_config,
    sanitize,
)
from inferbox.manifests import K8sObject, ManifestSet


def _pods(loopback: bool) -> list[PodView]:
    def ports(mapping: dict[int, int]) -> dict[int, int]:
        return mapping if loopback else {}

    ip = "127.0.0.1" if loopback else "198.18.0.{}"
    return [
        PodView(
            "envoy-gateway-system",
            "envoy-gw-0",
            ip.format(5),
            {
                "app.kubernetes.io/name": "envoy",
                "app.kubernetes.io/component": "proxy",
                "gateway.envoyproxy.io/owning-gateway-name": "inference-gateway",
            },
            {},
            (Container("envoy", (ContainerPort("metrics", 19001),)),),
            ports({19001: 40001}),
        ),
        PodView(
            "inference-system",
            "jwt-server-0",
            ip.format(3),
            {"app.kubernetes.io/name": "jwt-server"},
            {},
            (Container("jwt-server", (ContainerPort("http", 8080),)),),
            ports({8080: 40002}),
        ),
        PodView(
            "tenant-a",
            "sklearn-iris-predictor-00001-deployment-0",
            ip.format(4),
            {"serving.kserve.io/inferenceservice": "sklearn-iris"},
            {"prometheus.io/port": "8080"},
            (
                Container("kserve-container", (ContainerPort("user-port", 8080),)),
                Container("istio-proxy", (ContainerPort("http-envoy-prom", 15090),)),
            ),
            ports({8080: 40003, 15090: 40004, 15020: 40005}),
        ),
    ]


def _jobs(config: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [j for j in config["scrape_configs"] if j["job_name"].startswith(prefix)]


def test_discovery_labels_match_kubernetes() -> None:
    pod = _pods(loopback=False)[2]
    groups = pod_targets(pod)
    assert [g["targets"] for g in groups] == [["198.18.0.4:8080"], ["198.18.0.4:15090"]]
    labels = groups[1]["labels"]
    assert labels["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"] == "sklearn-iris"
    assert labels["__meta_kubernetes_pod_labelpresent_serving_kserve_io_inferenceservice"] == "true"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_port"] == "8080"
    assert labels["__meta_kubernetes_pod_container_port_name"] == "http-envoy-prom"
    assert sanitize("app.kubernetes.io/name") == "app_kubernetes_io_name"


def test_a_pod_monitor_selects_its_pods_and_port(manifests: ManifestSet) -> None:
    config = prometheus_config(manifests, _pods(loopback=False))
    jobs = _jobs(config, "podMonitor/tenant-a/sklearn-iris/0")
    assert len(jobs) == 1, "one scrape pool per monitor endpoint"
    rules = jobs[0]["relabel_configs"]
    assert {
        "action": "keep",
        "source_labels": [
            "__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice",
            "__meta_kubernetes_pod_labelpresent_serving_kserve_io_inferenceservice",
        ],
        "regex": "(sklearn-iris);true",
    } in rules
    assert {
        "action": "keep",
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "http-envoy-prom",
    } in rules
    assert {"target_label": "job", "replacement": "tenant-a/sklearn-iris"} in rules
    # The monitor's own relabelings come after the operator's, in order.
    assert rules[-3:] == [
        {
            "source_labels": ["__meta_kubernetes_pod_ip"],
            "regex": "(.+)",
            "target_label": "__address__",
            "replacement": "${1}:15020",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "tenant"},
        {"source_labels": ["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"], "target_label": "model"},
    ]
    gateway = _jobs(config, "podMonitor/envoy-gateway-system/inference-gateway/0")[0]
    assert gateway["metrics_path"] == "/stats/prometheus"
    assert [r["target_label"] for r in gateway["metric_relabel_configs"]] == ["tenant", "model"]


def test_a_service_monitor_scrapes_the_service_endpoints(manifests: ManifestSet) -> None:
    service = manifests.get("Service", "jwt-server", "inference-system")
    assert service is not None
    groups = endpoint_targets(service, _pods(loopback=False))
    assert [g["targets"] for g in groups] == [["198.18.0.3:8080"]]
    assert groups[0]["labels"]["__meta_kubernetes_endpoint_port_name"] == "http"
    assert groups[0]["labels"]["__meta_kubernetes_service_label_app_kubernetes_io_name"] == "jwt-server"
    jobs = _jobs(prometheus_config(manifests, _pods(loopback=False)), "serviceMonitor/inference-system/jwt-server/")
    assert len(jobs) == 1
    assert {"target_label": "endpoint", "replacement": "http"} in jobs[0]["relabel_configs"]


def test_loopback_pods_map_the_chosen_port_last(manifests: ManifestSet) -> None:
    config = prometheus_config(manifests, _pods(loopback=True))
    job = _jobs(config, "podMonitor/tenant-a/sklearn-iris/0")[0]
    pod = "sklearn\\-iris\\-predictor\\-00001\\-deployment\\-0"
    assert job["relabel_configs"][-1] == {
        "source_labels": ["__meta_kubernetes_pod_name", "__address__"],
        "separator": ";",
        "regex": f"{pod};127\\.0\\.0\\.1:15090",
        "target_label": "__address__",
        "replacement": "127.0.0.1:40004",
    }
    assert {
        "source_labels": ["__meta_kubernetes_pod_name", "__address__"],
        "separator": ";",
        "regex": f"{pod};127\\.0\\.0\\.1:15020",
        "target_label": "__address__",
        "replacement": "127.0.0.1:40005",
    } in job["relabel_configs"]


def test_replicas_of_one_model_share_a_scrape_pool(manifests: ManifestSet) -> None:
    """A replica that goes away is then a dropped target, whose series Prometheus marks stale at once."""
    pods = _pods(loopback=False)
    second = PodView(
        "tenant-a",
        "sklearn-iris-predictor-00001-deployment-1",
        "198.18.0.6",
        pods[2].labels,
        pods[2].annotations,
        pods[2].containers,
        {},
    )
    jobs = _jobs(prometheus_config(manifests, [*pods, second]), "podMonitor/tenant-a/sklearn-iris/0")
    assert len(jobs) == 1
    addresses = {t for group in jobs[0]["static_configs"] for t in group["targets"]}
    assert {"198.18.0.4:8080", "198.18.0.6:8080"} <= addresses


def test_namespace_selector_limits_the_pods(manifests: ManifestSet) -> None:
    objects = []
    for obj in manifests:
        if obj.kind == "PodMonitor" and obj.name == "sklearn-iris":
            body = copy.deepcopy(obj.body)
            body["spec"]["namespaceSelector"] = {"matchNames": ["tenant-c"]}
            obj = K8sObject(obj.api_version, obj.kind, obj.name, obj.namespace, body, obj.source)
        objects.append(obj)
    config = prometheus_config(ManifestSet(manifests.root, tuple(objects)), _pods(loopback=False))
    [job] = _jobs(config, "podMonitor/tenant-a/sklearn-iris/0")
    assert job["static_configs"] == [], "the pool stays, with none of tenant-a's pods in it"


def test_a_model_scaled_to_zero_keeps_an_empty_scrape_pool(manifests: ManifestSet) -> None:
    """Its last replica then leaves a pool that remains, and Prometheus marks that replica's series stale."""
    without_model = [pod for pod in _pods(loopback=False) if pod.namespace != "tenant-a"]
    [job] = _jobs(prometheus_config(manifests, without_model), "podMonitor/tenant-a/sklearn-iris/0")
    assert job["static_configs"] == []


@pytest.mark.parametrize("loopback", [False, True], ids=["netns", "loopback"])
def test_promtool_accepts_the_config(manifests: ManifestSet, tmp_path: Path, loopback: bool) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (it comes with the prometheus package: scripts/system-deps)")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(prometheus_config(manifests, _pods(loopback))))
    done = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
