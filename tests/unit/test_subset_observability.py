"""The observability kinds the embedded target interprets, and fields outside them named as errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from inferbox.embedded.subset import check_supported
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.shapes import MapOf, check_shape


def _one(manifests: ManifestSet, kind: str, name: str, edit: Any) -> K8sObject:
    obj = next(o for o in manifests if o.kind == kind and o.name == name)
    body = copy.deepcopy(obj.body)
    edit(body)
    return K8sObject(obj.api_version, obj.kind, obj.name, obj.namespace, body, obj.source)


@pytest.mark.parametrize(
    ("kind", "name", "edit", "field"),
    [
        ("PodMonitor", "sklearn-iris", lambda b: b["spec"].update(sampleLimit=10), "spec.sampleLimit"),
        (
            "PodMonitor",
            "sklearn-iris",
            lambda b: b["spec"]["podMetricsEndpoints"][0].update(tlsConfig={}),
            "spec.podMetricsEndpoints[0].tlsConfig",
        ),
        (
            "ServiceMonitor",
            "jwt-server",
            lambda b: b["spec"]["endpoints"][0].update(bearerTokenSecret={"name": "x"}),
            "spec.endpoints[0].bearerTokenSecret",
        ),
        (
            "Telemetry",
            "mesh-default",
            lambda b: b["spec"].update(selector={"matchLabels": {"app": "x"}}),
            "spec.selector",
        ),
        (
            "EnvoyProxy",
            "inference-gateway-proxy",
            lambda b: b["spec"]["telemetry"].update(accessLog={}),
            "spec.telemetry.accessLog",
        ),
        (
            "EnvoyProxy",
            "inference-gateway-proxy",
            lambda b: b["spec"]["telemetry"]["tracing"]["customTags"]["tenant"].update(metadata={}),
            "spec.telemetry.tracing.customTags.tenant.metadata",
        ),
    ],
)
def test_fields_outside_the_subset_are_named(
    manifests: ManifestSet, kind: str, name: str, edit: Any, field: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        check_supported(_one(manifests, kind, name, edit))
    assert f"field {field} " in caught.value.problem


def test_relabel_actions_are_checked(manifests: ManifestSet) -> None:
    def bad(body: dict[str, Any]) -> None:
        body["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rewrite"

    with pytest.raises(ManifestError, match=r"relabelings\[0\].action value 'rewrite'"):
        check_supported(_one(manifests, "PodMonitor", "sklearn-iris", bad))


def test_numbers_and_maps_of_shapes() -> None:
    assert check_shape(0.5, float) is None
    assert check_shape(100, float) is None
    problem = check_shape(True, float)
    assert problem is not None
    assert "number" in problem.message
    assert check_shape({"a": {"x": "1"}}, MapOf({"x": str})) is None
    problem = check_shape({"a": {"y": "1"}}, MapOf({"x": str}))
    assert problem is not None
    assert problem.path == "a.y"
