"""Tracing and gateway metrics from EnvoyProxy and Istio Telemetry, and the Envoy config they become
(checked by real Envoy)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.embedded.gateway_config import GatewayPorts
from inferbox.embedded.gateway_plan import plan_gateway
from inferbox.embedded.tracing import (
    add_gateway_metrics,
    add_gateway_tracing,
    add_merged_metrics,
    gateway_metrics_enabled,
    gateway_tracing,
    mesh_tracing,
)
from inferbox.errors import ManifestError
from inferbox.manifests import ManifestSet
from tests.gateway_render import gateway_hcm, render_bootstrap
from tests.manifest_edits import edited as _edited


def test_gateway_tracing_follows_envoy_gateway(manifests: ManifestSet) -> None:
    tracing = gateway_tracing(manifests, "envoy-gateway-system/inference-gateway")
    assert tracing is not None
    assert tracing.sampling_percent == 100
    assert tracing.service_name == "inference-gateway.envoy-gateway-system"
    assert [(t.tag, t.kind, t.name_or_value) for t in tracing.custom_tags] == [
        ("tenant", "RequestHeader", "x-jwt-tenant")
    ]
    assert gateway_metrics_enabled(manifests)


def test_traces_go_only_to_the_known_collector(manifests: ManifestSet) -> None:
    def elsewhere(body: dict[str, Any]) -> None:
        body["spec"]["telemetry"]["tracing"]["provider"]["backendRefs"][0]["name"] = "otel-collector"

    broken = _edited(manifests, "EnvoyProxy", "inference-gateway-proxy", elsewhere)
    with pytest.raises(ManifestError, match="monitoring/jaeger-collector"):
        gateway_tracing(broken, "envoy-gateway-system/inference-gateway")


def test_mesh_tracing_from_telemetry(manifests: ManifestSet) -> None:
    mesh = mesh_tracing(manifests, "tenant-a")
    assert mesh is not None
    assert (mesh.sampling_percent, mesh.reporting) == (100.0, True)
    off = _edited(
        manifests, "Telemetry", "mesh-default", lambda b: b["spec"]["tracing"][0].update(disableSpanReporting=True)
    )
    assert mesh_tracing(off, "tenant-a").reporting is False  # type: ignore[union-attr]
    unknown = _edited(
        manifests, "Telemetry", "mesh-default", lambda b: b["spec"]["tracing"][0].update(providers=[{"name": "zipkin"}])
    )
    with pytest.raises(ManifestError, match="tracing provider 'zipkin'"):
        mesh_tracing(unknown, "tenant-a")


@pytest.mark.parametrize("host_netns", [None, "/proc/1/ns/net"], ids=["loopback", "netns"])
def test_real_envoy_accepts_tracing_and_metrics(manifests: ManifestSet, tmp_path: Path, host_netns: str | None) -> None:
    ports = GatewayPorts(
        public=18080, admin=18081, pod_ip="127.0.0.1" if host_netns else None, pod_port=80, admin_internal=15000
    )
    bootstrap = render_bootstrap(plan_gateway(manifests), ports, tmp_path / "xds", host_netns)
    tracing = gateway_tracing(manifests, "envoy-gateway-system/inference-gateway")
    assert tracing is not None
    add_gateway_tracing(bootstrap, tracing, ("127.0.0.1", 14318), 1000)
    add_gateway_metrics(bootstrap, ("127.0.0.1", 19001))
    add_merged_metrics(bootstrap, ("127.0.0.1", 15020), ("127.0.0.1", 18099), "/metrics")
    hcm = gateway_hcm(bootstrap)
    assert hcm["tracing"]["random_sampling"] == {"value": 100.0}
    assert hcm["tracing"]["spawn_upstream_span"] is True
    assert hcm["tracing"]["custom_tags"] == [
        {"tag": "tenant", "request_header": {"name": "x-jwt-tenant", "default_value": ""}}
    ]
    assert bootstrap["stats_flush_on_admin"] is True
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(bootstrap))
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
