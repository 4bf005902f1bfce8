"""Every manifest, and every object the installer renders, validates for the pinned versions:
built-in kinds strictly against Kubernetes' schema, our CRD kinds against field-level shapes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from inferbox.errors import ManifestError
from inferbox.kind.crd_shapes import SHAPES
from inferbox.kind.installer import PlanOptions, build_plan, rendered_objects, validate_plan
from inferbox.kind.kindcluster import KIND_CONFIG, load_kind_config
from inferbox.kind.validation import BUILTIN_GROUPS, check_kind_config, check_object
from inferbox.kind.versions import load_versions
from inferbox.manifests import K8sObject, load_manifests

KUBERNETES = load_versions(environ={}).get("kubernetes")
MANIFESTS = load_manifests()


def _kind_plan() -> Any:
    return build_plan(
        PlanOptions(
            "kind", "kind-inference-in-a-box", MANIFESTS, load_versions(environ={}), kind_name="inference-in-a-box"
        )
    )


@pytest.mark.parametrize("obj", list(MANIFESTS), ids=lambda o: f"{o.source}:{o.kind}/{o.name}")
def test_every_manifest_validates(obj: K8sObject) -> None:
    assert check_object(obj.body, KUBERNETES) == []


def test_every_object_the_installer_renders_validates() -> None:
    objects = rendered_objects(_kind_plan())
    rendered = [where for where, _ in objects if not where.startswith(str(MANIFESTS.root))]
    # Telemetry, the AI Gateway RBAC, the JWT server's Secrets are checked below; the probes here.
    assert len(rendered) >= 6, rendered
    problems = [f"{where}: {p}" for where, body in objects for p in check_object(body, KUBERNETES)]
    assert problems == []
    validate_plan(_kind_plan(), load_kind_config())  # the installer's own pre-flight agrees


def test_the_kind_cluster_config_validates() -> None:
    assert check_kind_config(yaml.safe_load(KIND_CONFIG.read_text())) == []
    broken = yaml.safe_load(KIND_CONFIG.read_text())
    broken["nodes"][0]["extraPortMapping"] = []
    assert "extraPortMapping" in check_kind_config(broken)[0]


def _custom(obj: K8sObject) -> bool:
    return obj.group not in BUILTIN_GROUPS


@pytest.mark.parametrize("obj", [o for o in MANIFESTS if _custom(o)], ids=lambda o: f"{o.kind}/{o.name}")
def test_an_unknown_field_in_a_custom_resource_fails_naming_it(obj: K8sObject) -> None:
    body = copy.deepcopy(obj.body)
    body["spec"]["inferboxBogusField"] = True
    problems = check_object(body, KUBERNETES)
    assert len(problems) == 1
    assert "spec.inferboxBogusField is not a known field" in problems[0]


@pytest.mark.parametrize("obj", [o for o in MANIFESTS if not _custom(o)], ids=lambda o: f"{o.kind}/{o.name}")
def test_an_unknown_field_in_a_builtin_kind_fails_naming_it(obj: K8sObject) -> None:
    body = copy.deepcopy(obj.body)
    body["inferboxBogusField"] = True
    problems = check_object(body, KUBERNETES)
    assert len(problems) == 1
    assert "inferboxBogusField" in problems[0]


def _body(kind: str, name: str, namespace: str) -> dict[str, Any]:
    found = MANIFESTS.get(kind, name, namespace)
    assert found is not None
    return copy.deepcopy(found.body)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # A typo deep in a security policy: EG 1.4.2 names it `audiences`.
        (
            lambda b: b["spec"]["jwt"]["providers"][0].update(audience=["x"]),
            "providers[0].audience is not a known field",
        ),
        # Header principals in EG 1.4.2 are {name, values}; a match type does not exist there.
        (
            lambda b: b["spec"]["authorization"]["rules"][0]["principal"].update(
                headers=[{"name": "x-tenant", "type": "Exact", "value": "a"}]
            ),
            "headers[0].type is not a known field",
        ),
        (lambda b: b["spec"]["authorization"].update(defaultAction="Reject"), "not one of Allow, Deny"),
    ],
)
def test_security_policy_fields_are_those_of_envoy_gateway_1_4_2(change: Any, expected: str) -> None:
    body = _body("SecurityPolicy", "sklearn-iris-jwt", "tenant-a")
    change(body)
    problems = check_object(body, KUBERNETES)
    assert len(problems) == 1
    assert expected in problems[0]


def test_containers_inside_an_inference_service_are_checked_with_the_kubernetes_schema() -> None:
    body = _body("InferenceService", "pytorch-resnet", "tenant-c")
    body["spec"]["predictor"]["containers"][0]["imagePulPolicy"] = "Never"
    assert "imagePulPolicy" in check_object(body, KUBERNETES)[0]
    body = _body("InferenceService", "sklearn-iris", "tenant-a")
    body["spec"]["predictor"]["model"]["resources"]["requests"]["cpu"] = {"bad": 1}
    assert "spec.predictor.model.resources.requests.cpu" in check_object(body, KUBERNETES)[0]
    body = _body("InferenceService", "sklearn-iris", "tenant-a")
    body["spec"]["predictor"]["model"]["protocolVersion"] = "v3"
    assert "protocolVersion" in check_object(body, KUBERNETES)[0]


def test_a_custom_kind_without_a_shape_is_an_error_not_a_pass() -> None:
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert "no field-level shape for Widget" in check_object(body, KUBERNETES)[0]
    body = {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "has no kind Widget" in check_object(body, KUBERNETES)[0]


# Mesh policy the platform's mTLS and authorization manifests use (none is in manifests/ yet).
MESH_SAMPLES: list[dict[str, Any]] = [
    {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "tenant-a"},
        "spec": {"mtls": {"mode": "STRICT"}},
    },
    {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "only-ingress", "namespace": "tenant-a"},
        "spec": {
            "action": "ALLOW",
            "rules": [{"from": [{"source": {"namespaces": ["istio-system", "knative-serving"]}}]}],
        },
    },
    {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "RequestAuthentication",
        "metadata": {"name": "jwt", "namespace": "tenant-a"},
        "spec": {
            "jwtRules": [
                {
                    "issuer": "inference-in-a-box",
                    "jwksUri": "http://jwt-server.inference-system:8080/.well-known/jwks.json",
                }
            ]
        },
    },
]


@pytest.mark.parametrize("body", MESH_SAMPLES, ids=lambda b: str(b["kind"]))
def test_istio_security_kinds_validate_and_refuse_unknown_fields(body: dict[str, Any]) -> None:
    assert check_object(body, KUBERNETES) == []
    broken = copy.deepcopy(body)
    broken["spec"]["mtlsMode"] = "STRICT"
    assert "spec.mtlsMode is not a known field" in check_object(broken, KUBERNETES)[0]


def test_an_invalid_mtls_mode_is_refused() -> None:
    body = copy.deepcopy(MESH_SAMPLES[0])
    body["spec"]["mtls"]["mode"] = "STRICTER"
    assert "not one of UNSET, DISABLE, PERMISSIVE, STRICT" in check_object(body, KUBERNETES)[0]


def test_every_shape_is_exercised() -> None:
    """A shape that no manifest, rendered object or sample uses could drift unnoticed."""
    used = {(str(b["apiVersion"]), str(b["kind"])) for _, b in rendered_objects(_kind_plan())}
    used |= {(str(b["apiVersion"]), str(b["kind"])) for b in MESH_SAMPLES}
    # Istio serves v1 and v1beta1 of its security kinds with one schema: one shape, two keys.
    exercised = {id(SHAPES[key]) for key in used if key in SHAPES}
    assert [key for key, shape in SHAPES.items() if id(shape) not in exercised] == []


def test_the_preflight_lists_every_problem_at_once() -> None:
    manifests = load_manifests()  # a private copy: its bodies are changed below
    for route in manifests.of_kind("HTTPRoute"):
        route.body["spec"]["hostname"] = "typo"
    plan = build_plan(PlanOptions("existing", "ctx", manifests, load_versions(environ={})))
    with pytest.raises(ManifestError) as caught:
        validate_plan(plan)
    assert caught.value.problem.count("spec.hostname is not a known field") == len(manifests.of_kind("HTTPRoute")) == 3
