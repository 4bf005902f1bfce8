"""The embedded target interprets a declared subset and names any field outside it."""

from __future__ import annotations

import copy

import pytest

from inferbox.embedded.subset import check_all_supported, check_supported, not_interpreted
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet


def _with(obj: K8sObject, edit: object) -> K8sObject:
    body = copy.deepcopy(obj.body)
    edit(body)  # type: ignore[operator]
    return K8sObject(obj.api_version, obj.kind, obj.name, obj.namespace, body, obj.source)


def test_every_shipped_manifest_is_inside_the_subset(manifests: ManifestSet) -> None:
    check_all_supported(manifests)


@pytest.mark.parametrize(
    ("kind", "name", "edit", "field"),
    [
        (
            "SecurityPolicy",
            "sklearn-iris-jwt",
            lambda b: b["spec"]["jwt"]["providers"][0].update(recomputeRoute=True),
            "spec.jwt.providers[0].recomputeRoute",
        ),
        (
            "SecurityPolicy",
            "sklearn-iris-jwt",
            lambda b: b["spec"]["authorization"]["rules"][0]["principal"].update(clientCIDRs=["0.0.0.0/0"]),
            "spec.authorization.rules[0].principal.clientCIDRs",
        ),
        (
            "BackendTrafficPolicy",
            "sklearn-iris-rate-limit",
            lambda b: b["spec"]["rateLimit"].update(type="Distributed"),
            "spec.rateLimit.type",
        ),
        (
            "HTTPRoute",
            "sklearn-iris",
            lambda b: b["spec"]["rules"][0].update(filters=[{"type": "RequestHeaderModifier"}]),
            "spec.rules[0].filters",
        ),
        (
            "InferenceService",
            "sklearn-iris",
            lambda b: b["spec"]["predictor"].update(scaleMetric="cpu"),
            "spec.predictor.scaleMetric",
        ),
    ],
)
def test_a_field_outside_the_subset_is_named(
    manifests: ManifestSet, kind: str, name: str, edit: object, field: str
) -> None:
    obj = next(o for o in manifests.of_kind(kind) if o.name == name)
    with pytest.raises(ManifestError) as caught:
        check_supported(_with(obj, edit))
    assert field in caught.value.problem
    assert kind in caught.value.problem


def test_an_unknown_kind_is_named() -> None:
    obj = K8sObject(
        "networking.istio.io/v1",
        "Sidecar",
        "default",
        "istio-system",
        {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "default"}},
        "mesh.yaml",
    )
    with pytest.raises(ManifestError, match="kind Sidecar is not supported"):
        check_supported(obj)


def test_fields_meaningful_only_on_a_cluster_are_listed(manifests: ManifestSet) -> None:
    rows = not_interpreted(manifests)
    fields = {(ref, field) for ref, field, _ in rows}
    assert ("Deployment inference-system/jwt-server", "spec.template.spec.containers[0].image") not in fields
    assert ("InferenceService tenant-c/pytorch-resnet", "spec.predictor.containers[0].imagePullPolicy") in fields
    # Resources are interpreted now: they count against ResourceQuotas.
    assert ("InferenceService tenant-a/sklearn-iris", "spec.predictor.model.resources") not in fields
    assert all(why for _, _, why in rows)
