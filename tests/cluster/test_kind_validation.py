"""Every object inferbox would apply validates the way the API server of the pinned releases checks
it: built-in kinds against Kubernetes' schema, custom resources against the real CRDs (fetched by
scripts/upstream-schemas into a cache outside the repository; the tests that need them take the
``pinned`` fixture and are skipped, naming how to fetch them, where they are missing). Without them
the same objects are still checked as far as the catalogue of kinds goes, and the pre-flight says
what it could not check. The validator's rule classes are proven without upstream data in
test_kind_validator_rules.py."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferbox.cluster import catalog
from inferbox.cluster.installer import PlanOptions, build_plan, rendered_objects, validate_plan
from inferbox.cluster.kindcluster import KIND_CONFIG, load_kind_config
from inferbox.cluster.upstream import UpstreamData
from inferbox.cluster.validation import check, check_kind_config, check_object, validate_objects
from inferbox.cluster.versions import load_versions
from inferbox.errors import ManifestError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, K8sObject, load_manifests
from inferbox.mutants.model import load_mutants, mutate
from tests.cluster.conftest import VALIDATION_SUMMARY

VERSIONS = load_versions(environ={})
KUBERNETES = VERSIONS.get("kubernetes")
MANIFESTS = load_manifests()


def _kind_plan(manifests: Any = MANIFESTS) -> Any:
    return build_plan(PlanOptions("kind", "kind-inference-in-a-box", manifests, VERSIONS, kind_name="x"))


def _mutated_objects(tmp: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every object a mutant changes or adds, as the mutated manifests hold it."""
    base = {(o.kind, o.namespace, o.name): o.body for o in MANIFESTS}
    out = []
    for mutant in load_mutants():
        if not mutant.patches:
            continue
        mutated = load_manifests(mutate(mutant, DEFAULT_MANIFEST_DIR, tmp / mutant.name))
        for obj in mutated:
            if base.get((obj.kind, obj.namespace, obj.name)) != obj.body:
                out.append((f"mutant {mutant.name}: {obj.source}", obj.body))
    return out


def _every_object(tmp: Path) -> list[tuple[str, Any]]:
    """The manifests, what the installer renders (probes, RBAC, dashboards, both bodies of a canary
    rollout), and every mutant's patched objects."""
    objects: list[tuple[str, Any]] = [(o.source, o.body) for o in MANIFESTS]
    objects += rendered_objects(_kind_plan())
    mutated = _mutated_objects(tmp)
    assert mutated, "the mutants change objects"
    return objects + mutated


def test_every_object_inferbox_would_apply_validates(tmp_path: Path, pinned: UpstreamData) -> None:
    """Against the pinned schemas: every field, every rule."""
    objects = _every_object(tmp_path)
    report = validate_objects(objects, KUBERNETES, pinned)
    VALIDATION_SUMMARY.append(f"Kind path, against the pinned CRDs: {report.summary()}")
    VALIDATION_SUMMARY.extend(f"  CEL rule not evaluable: {u}" for u in report.unevaluated)
    assert report.problems == []
    assert report.unevaluated == [], "a CEL rule the validator cannot evaluate is reported, never passed"
    assert (report.custom, report.catalogued) == (len([o for o in objects if _custom(o[1])]), 0)
    assert report.custom >= 40, report.summary()
    assert report.cel_evaluated > 200, report.summary()


def _custom(body: Any) -> bool:
    return catalog.crd_for(str(body["apiVersion"]).rpartition("/")[0], body["kind"]) is not None


def test_without_the_pinned_crds_every_object_is_checked_as_far_as_the_catalogue_goes(tmp_path: Path) -> None:
    """Built-in kinds fully; custom resources for kind, served apiVersion, scope and metadata; and
    the report says their schemas were not checked."""
    report = validate_objects(_every_object(tmp_path), KUBERNETES, None)
    VALIDATION_SUMMARY.append(f"Kind path, without the pinned CRDs: {report.summary().splitlines()[0]}")
    assert report.problems == []
    assert report.custom == 0
    assert report.catalogued >= 40, report.summary()
    assert report.objects - report.catalogued >= 40, "built-in kinds (Namespaces, Services, RBAC, ...)"


def test_the_installers_preflight_validates_what_it_applies(pinned: UpstreamData) -> None:
    report = validate_plan(_kind_plan(), pinned, load_kind_config())
    assert report.problems == []
    assert report.notice == ""
    assert report.objects >= 50


def test_without_the_pinned_crds_the_preflight_says_what_it_did_not_check() -> None:
    report = validate_plan(_kind_plan(), None, load_kind_config())
    assert report.problems == []
    assert report.objects >= 50
    notice = report.notice
    assert notice.startswith("notice: custom resources were NOT checked against the pinned CRDs' schemas")
    assert "nor the Helm values against the pinned charts, nor the Kind config" in notice
    assert "`scripts/upstream-schemas` (downloads the release assets and charts; needs internet)" in notice
    assert "`scripts/upstream-schemas --from-mirrors DIR`" in notice
    assert report.summary().endswith(notice), "the dry run prints it under the count"


def test_both_bodies_of_a_canary_rollout_are_validated() -> None:
    """The canary InferenceService is applied by its own step (its previous revision first): both
    bodies are among what the pre-flight validates."""
    isvcs = [(w, b) for w, b in rendered_objects(_kind_plan()) if b["kind"] == "InferenceService"]
    iris = sorted(
        b["spec"]["predictor"]["model"]["storageUri"] for _, b in isvcs if b["metadata"]["name"] == "sklearn-iris"
    )
    assert iris == [
        "gs://kfserving-examples/models/sklearn/1.0/model",
        "gs://kfserving-examples/models/sklearn/1.0/model-2",
    ]


def test_a_broken_previous_revision_of_a_canary_is_caught(pinned: UpstreamData) -> None:
    manifests = load_manifests()
    canary = manifests.get("InferenceService", "sklearn-iris", "tenant-a")
    assert canary is not None
    canary.body["metadata"]["annotations"]["rollout.inferbox.io/previous-predictor"] = '{"minReplicas": "0"}'
    with pytest.raises(ManifestError) as caught:
        validate_plan(_kind_plan(manifests), pinned)
    assert "(its previous revision, applied first): InferenceService tenant-a/sklearn-iris" in caught.value.problem
    assert "spec.predictor.minReplicas: expected integer" in caught.value.problem


def test_the_kind_cluster_config_validates_against_kinds_own_types(pinned: UpstreamData) -> None:
    assert check_kind_config(yaml.safe_load(KIND_CONFIG.read_text()), pinned) == []
    broken = yaml.safe_load(KIND_CONFIG.read_text())
    broken["nodes"][0]["extraPortMapping"] = []
    broken["nodes"][1]["role"] = "master"
    problems = check_kind_config(broken, pinned)
    assert "nodes[0].extraPortMapping: field not declared in schema" in problems[0]
    assert 'Unsupported value: "master"' in problems[1]


def _body(kind: str, name: str, namespace: str | None) -> dict[str, Any]:
    found = MANIFESTS.get(kind, name, namespace)
    assert found is not None
    return copy.deepcopy(found.body)


def _route() -> dict[str, Any]:
    return _body("HTTPRoute", "sklearn-iris", "tenant-a")


def _policy() -> dict[str, Any]:
    return _body("SecurityPolicy", "sklearn-iris-jwt", "tenant-a")


def _gateway() -> dict[str, Any]:
    return _body("Gateway", "inference-gateway", "envoy-gateway-system")


def _isvc() -> dict[str, Any]:
    return _body("InferenceService", "sklearn-iris", "tenant-a")


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node: Any = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


def _del(body: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return body


def _extra_listener(b: dict[str, Any]) -> dict[str, Any]:
    b["spec"]["listeners"].append(copy.deepcopy(b["spec"]["listeners"][0]))
    return b


# (rule class, how the object is broken, the field named, words of the API server's message)
BROKEN: list[tuple[str, Callable[[], dict[str, Any]], str, str]] = [
    ("unknown-field", lambda: _set(_route(), "spec.hostname", "typo"), "spec.hostname", "field not declared in schema"),
    (
        "type",
        lambda: _set(_route(), "spec.rules.0.backendRefs.0.port", "80"),
        "spec.rules[0].backendRefs[0].port",
        "expected integer",
    ),
    (
        "type",
        lambda: _set(_isvc(), "spec.predictor.canaryTrafficPercent", "20"),
        "spec.predictor.canaryTrafficPercent",
        "expected integer",
    ),
    (
        "type",
        lambda: _set(_isvc(), "spec.predictor.minReplicas", "0"),
        "spec.predictor.minReplicas",
        "expected integer",
    ),
    (
        "type",
        lambda: _set(_isvc(), "spec.predictor.model.resources.requests.cpu", {"m": 1}),
        "spec.predictor.model.resources.requests.cpu",
        "expected int or string",
    ),
    ("list-map-keys", lambda: _extra_listener(_gateway()), "spec.listeners", "duplicate entries for key [name="),
    ("required", lambda: _del(_route(), "spec.parentRefs.0.name"), "spec.parentRefs[0].name", "Required value"),
    (
        "required",
        lambda: _del(_policy(), "spec.jwt.providers.0.remoteJWKS.uri"),
        "spec.jwt.providers[0].remoteJWKS.uri",
        "Required value",
    ),
    (
        "enum",
        lambda: _set(_route(), "spec.rules.0.matches.0.path.type", "Prefix"),
        "spec.rules[0].matches[0].path.type",
        'Unsupported value: "Prefix"',
    ),
    (
        "enum",
        lambda: _set(_policy(), "spec.authorization.defaultAction", "Reject"),
        "spec.authorization.defaultAction",
        "supported values",
    ),
    ("pattern", lambda: _set(_route(), "spec.hostnames.0", "Sklearn.example"), "spec.hostnames[0]", "should match"),
    (
        "range",
        lambda: _set(_route(), "spec.rules.0.backendRefs.0.weight", -1),
        "spec.rules[0].backendRefs[0].weight",
        "greater than or equal to 0",
    ),
    (
        "range",
        lambda: _set(_route(), "spec.rules.0.backendRefs.0.port", 70000),
        "spec.rules[0].backendRefs[0].port",
        "less than or equal to 65535",
    ),
    ("length", lambda: _set(_route(), "spec.parentRefs.0.name", "g" * 254), "spec.parentRefs[0].name", "Too long"),
    (
        "items",
        lambda: _set(_route(), "spec.hostnames", [f"h{i}.example" for i in range(17)]),
        "spec.hostnames",
        "must have at most 16 items",
    ),
    (
        "cel",
        lambda: _set(_route(), "spec.rules.0.filters", [{"type": "URLRewrite"}]),
        "spec.rules[0].filters[0]",
        "filter.urlRewrite must be specified",
    ),
    (
        "cel",
        lambda: _set(_policy(), "spec.targetRefs.0.group", "example.com"),
        "spec",
        "targetRefs[*].group of gateway.networking.k8s.io",
    ),
    (
        "api-version",
        lambda: _set(_route(), "apiVersion", "gateway.networking.k8s.io/v1alpha1"),
        "apiVersion",
        "serves v1, v1beta1, not v1alpha1",
    ),
    (
        "scope",
        lambda: _set(_body("GatewayClass", "inference-gateway", None), "metadata.namespace", "default"),
        "metadata.namespace",
        "cluster-scoped",
    ),
    ("metadata", lambda: _set(_route(), "metadata.name", "Sklearn_Iris"), "metadata.name", "RFC 1123"),
]


@pytest.mark.parametrize(("rule", "broken", "field", "words"), BROKEN, ids=[f"{b[0]}-{b[2]}" for b in BROKEN])
def test_a_broken_object_is_rejected_naming_the_field_and_the_rule(
    rule: str, broken: Callable[[], dict[str, Any]], field: str, words: str, pinned: UpstreamData
) -> None:
    """Our own objects, broken the ways a manifest edit could break them, against the real schemas."""
    problems = check(broken(), KUBERNETES, pinned).problems
    assert any(p.rule == rule and p.path == field and words in p.message for p in problems), problems


def test_a_required_field_with_a_default_is_satisfied_by_the_default(pinned: UpstreamData) -> None:
    """``localJWKS.type`` is required and defaults to Inline: the API server defaults, then validates."""
    body = _policy()
    provider = body["spec"]["jwt"]["providers"][0]
    provider.pop("remoteJWKS")
    provider["localJWKS"] = {"inline": '{"keys": []}'}
    assert check_object(body, KUBERNETES, pinned) == []
    provider["localJWKS"] = {"type": "ValueRef"}
    assert any("valueRef" in p for p in check_object(body, KUBERNETES, pinned))


def test_int_or_string_takes_both_and_nothing_else(pinned: UpstreamData) -> None:
    body = _isvc()
    body["spec"]["predictor"]["model"]["resources"]["requests"]["cpu"] = 1
    assert check_object(body, KUBERNETES, pinned) == []


def test_typed_conversion_problems_are_marked_as_such(pinned: UpstreamData) -> None:
    """A server-side apply fails before validation on these (HTTP 500), after it on the others (422)."""
    assert check(_set(_route(), "spec.hostname", "x"), KUBERNETES, pinned).typed
    assert not check(_set(_route(), "spec.rules.0.backendRefs.0.weight", -1), KUBERNETES, pinned).typed


@pytest.mark.parametrize("schemas", ["catalogue", "pinned"])
def test_a_kind_no_pinned_crd_serves_is_an_error_not_a_pass(schemas: str, request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue("pinned") if schemas == "pinned" else None
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert "no CRD of the pinned releases serves kind Widget" in check_object(body, KUBERNETES, data)[0]
    body = {"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "has no kind Widget" in check_object(body, KUBERNETES, data)[0]
    route = _set(_route(), "apiVersion", "gateway.networking.k8s.io/v1alpha1")
    assert "serves v1, v1beta1, not v1alpha1" in check_object(route, KUBERNETES, data)[0]


def test_an_unknown_field_in_a_builtin_kind_fails_naming_it() -> None:
    body = _body("Namespace", "tenant-a", None)
    body["inferboxBogusField"] = True
    [problem] = check_object(body, KUBERNETES, None)
    assert "inferboxBogusField" in problem


@pytest.mark.parametrize(
    "obj",
    [o for o in MANIFESTS if o.group not in ("", "networking.k8s.io", "apps")],
    ids=lambda o: f"{o.kind}/{o.name}",
)
def test_an_unknown_field_in_any_custom_resource_is_named(obj: K8sObject, pinned: UpstreamData) -> None:
    body = copy.deepcopy(obj.body)
    body.setdefault("spec", {})["inferboxBogusField"] = True
    assert any(
        "spec.inferboxBogusField: field not declared in schema" in p for p in check_object(body, KUBERNETES, pinned)
    )


def test_the_catalogue_is_the_pinned_crds_kinds_served_versions_and_scopes(pinned: UpstreamData) -> None:
    """The catalogue (what the installer waits for, and what is checked without the CRDs) names
    exactly the pinned CRDs, with the versions they serve and their scope."""
    assert sorted(pinned.crds) == sorted(catalog.crd_names(catalog.ALL))
    for kind in catalog.ALL:
        crd = pinned.crds[kind.crd_name]
        assert (crd.group, crd.kind, crd.plural) == (kind.group, kind.kind, kind.plural)
        assert (sorted(crd.served()), crd.namespaced) == (sorted(kind.served), kind.namespaced), kind.crd_name


def test_the_preflight_lists_every_problem_at_once() -> None:
    manifests = load_manifests()  # a private copy: its bodies are changed below
    for route in manifests.of_kind("HTTPRoute"):
        route.body["apiVersion"] = "gateway.networking.k8s.io/v1alpha2"
    plan = build_plan(PlanOptions("existing", "ctx", manifests, VERSIONS))
    with pytest.raises(ManifestError) as caught:
        validate_plan(plan, None)
    assert caught.value.problem.count("at apiVersion: httproutes.gateway.networking.k8s.io serves v1, v1beta1") == 3
    assert "HTTPRoute tenant-a/sklearn-iris" in caught.value.problem


def test_the_preflight_names_field_and_rule_against_the_pinned_crds(pinned: UpstreamData) -> None:
    manifests = load_manifests()
    for route in manifests.of_kind("HTTPRoute"):
        route.body["spec"]["hostname"] = "typo"
    plan = build_plan(PlanOptions("existing", "ctx", manifests, VERSIONS))
    with pytest.raises(ManifestError) as caught:
        validate_plan(plan, pinned)
    assert caught.value.problem.count("spec.hostname: field not declared in schema [unknown-field]") == 3
