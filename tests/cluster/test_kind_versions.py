"""The pinned set, and the overrides a version-bump run uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferbox.cluster.timeouts import DEFAULTS, load_timeouts
from inferbox.cluster.versions import VersionsError, load_versions
from inferbox.errors import InferboxError

PINNED = {
    "kubernetes": "v1.32.5",
    "cert-manager": "v1.18.1",
    "istio": "1.26.2",
    "knative-serving": "knative-v1.18.1",
    "net-istio": "knative-v1.18.0",
    "kserve": "v0.15.2",
    "envoy-gateway": "v1.4.2",
    "envoy-ai-gateway": "v0.2.1",
    "kube-prometheus-stack": "75.6.0",
    "gateway-api": "v1.3.0",
    "jaeger": "1.53.0",
    "kiali": "2.11.0",
}


def test_the_pinned_set_is_read_from_the_versions_file() -> None:
    versions = load_versions(environ={})
    for component, version in PINNED.items():
        assert versions.get(component) == version, component
    assert versions.get("kubernetes", "kind") == "v0.29.0"
    assert versions.get("kubernetes", "nodeImage").startswith("kindest/node:v1.32.5@sha256:")
    assert versions.get("jaeger", "chart") == "3.4.1"
    assert versions.overrides == ()


def test_environment_overrides_a_version_and_named_fields() -> None:
    env = {
        "INFERBOX_VERSION_ISTIO": "1.26.3",
        "INFERBOX_VERSION_GATEWAY_API_CHANNEL": "standard",
        "INFERBOX_VERSION_JAEGER_CHART": "3.4.2",
        "INFERBOX_VERSION_KUBERNETES_NODE_IMAGE": "kindest/node:v1.33.1",
        "UNRELATED": "x",
    }
    versions = load_versions(environ=env)
    assert versions.get("istio") == "1.26.3"
    assert versions.get("gateway-api", "channel") == "standard"
    assert versions.get("gateway-api") == "v1.3.0"
    assert versions.get("jaeger", "chart") == "3.4.2"
    assert versions.get("jaeger") == "1.53.0"
    assert versions.get("kubernetes", "nodeImage") == "kindest/node:v1.33.1"
    assert "INFERBOX_VERSION_ISTIO=1.26.3" in versions.overrides


def test_a_versions_file_changes_only_what_it_names_and_the_environment_wins(tmp_path: Path) -> None:
    bump = tmp_path / "bump.yaml"
    bump.write_text("components:\n  kserve: {version: v0.15.3}\n  istio: {version: 1.26.4}\n")
    versions = load_versions(bump, environ={"INFERBOX_VERSION_ISTIO": "1.26.5"})
    assert versions.get("kserve") == "v0.15.3"
    assert versions.get("istio") == "1.26.5"
    assert versions.get("cert-manager") == "v1.18.1"
    assert versions.overrides[0] == f"--versions {bump}"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"INFERBOX_VERSION_ISTTIO": "1"}, "INFERBOX_VERSION_ISTTIO"),
        ({"INFERBOX_VERSION_JAEGER_CHARTS": "1"}, "INFERBOX_VERSION_JAEGER_CHARTS"),
    ],
)
def test_an_unknown_override_is_refused_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(VersionsError) as caught:
        load_versions(environ=env)
    assert named in caught.value.problem
    assert "INFERBOX_VERSION_ISTIO" in caught.value.fix or "INFERBOX_VERSION_JAEGER_CHART" in caught.value.fix


def test_a_versions_file_with_an_unknown_component_or_field_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("components:\n  kserv: {version: v0.16.0}\n")
    with pytest.raises(VersionsError, match="unknown component 'kserv'"):
        load_versions(bad, environ={})
    bad.write_text("components:\n  kserve: {chart: v0.16.0}\n")
    with pytest.raises(VersionsError, match="has no field 'chart'"):
        load_versions(bad, environ={})
    with pytest.raises(VersionsError, match="does not exist"):
        load_versions(tmp_path / "missing.yaml", environ={})


def test_timeouts_have_defaults_and_named_overrides() -> None:
    timeouts = load_timeouts(["helm=60"], environ={"INFERBOX_TIMEOUT_INFERENCE_SERVICE_READY": "1800"})
    assert timeouts["helm"] == 60
    assert timeouts["inference-service-ready"] == 1800
    assert timeouts["crds-established"] == DEFAULTS["crds-established"]
    with pytest.raises(InferboxError, match="NAME=SECONDS"):
        load_timeouts(["helmet=60"], environ={})
    with pytest.raises(InferboxError, match="names no timeout"):
        load_timeouts([], environ={"INFERBOX_TIMEOUT_HELMET": "5"})
    with pytest.raises(InferboxError, match="positive"):
        load_timeouts(["helm=0"], environ={})
