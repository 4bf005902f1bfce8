"""The validator checks custom resources the way the API server does, rule class by rule class,
proven against small CRDs of our own (``tests/cluster/schemas``): no upstream data needed. Each rule
class rejects a deliberately broken object, naming the field, the rule and the API server's words;
the valid object passes with its CEL rules evaluated, not skipped."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferbox.cluster import cel_rules, structural, upstream
from inferbox.cluster.validation import check, check_catalogued, check_kind_config, validate_objects
from tests.cluster.upstream_data import OWN_SCHEMAS_DIR, own_schemas

DATA = own_schemas()
KUBERNETES = "v1.32.5"
VALID_ROUTE: dict[str, Any] = {
    "apiVersion": "test.inferbox.io/v1",
    "kind": "Route",
    "metadata": {"name": "demo", "namespace": "team-a", "labels": {"app": "demo"}},
    "spec": {
        "parents": [{"name": "gateway", "port": 8080}],
        "hostnames": ["demo.example.test", "*.demo.example.test"],
        "listeners": [{"name": "web", "protocol": "HTTP"}, {"name": "web", "port": 443, "protocol": "HTTPS"}],
        "timeout": "1m30s",
        "maxSurge": "25%",
        "labels": {"tier": "gold"},
        "config": {"anything": {"goes": [1, "two"]}},
        "address": "10.0.0.1",
        "note": None,
        "filters": [{"type": "Rewrite", "rewrite": {"prefix": "/v2"}}],
        "backend": {"url": "https://backend.example.test:8443/api"},
        "tls": {"certificate": "demo-cert"},
        "pathPrefix": "/models/demo",
    },
}


def _route(change: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(VALID_ROUTE)
    if change is not None:
        change(body["spec"])
    return body


def test_the_valid_object_passes_with_every_cel_rule_evaluated() -> None:
    checked = check(_route(), KUBERNETES, DATA)
    assert checked.problems == []
    assert checked.unevaluated == []
    # filters[0], backend, tls, pathPrefix and the spec's own rule; the transition rule is left out.
    assert checked.cel_evaluated == 5


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        node: Any = spec
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        node: Any = spec
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return change


# (rule class, how the valid route is broken, the field named, words of the API server's message)
BROKEN: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    ("unknown-field", _set("hostname", "typo.example.test"), "spec.hostname", "field not declared in schema"),
    ("unknown-field", _set("parents.0.namespace", "x"), "spec.parents[0].namespace", "field not declared in schema"),
    ("type", _set("parents.0.port", "8080"), "spec.parents[0].port", 'expected integer, got string "8080"'),
    ("type", _set("weight", 1.5), "spec.weight", "expected integer, got number"),
    ("type", _set("labels.tier", 3), "spec.labels.tier", "expected string, got integer"),
    ("type", _set("maxSurge", {"percent": 25}), "spec.maxSurge", "expected int or string, got object"),
    ("type", _set("maxSurge", True), "spec.maxSurge", "expected int or string, got boolean"),
    ("list-map-keys", _set("listeners.1.port", 80), "spec.listeners", 'duplicate entries for key [name="web",port=80]'),
    ("list-map-keys", _drop("listeners.0.name"), "spec.listeners[0]", 'omits key field "name"'),
    ("required", _drop("parents.0.name"), "spec.parents[0].name", "Required value"),
    ("required", _drop("parents"), "spec.parents", "Required value"),
    ("enum", _set("listeners.0.protocol", "TCP"), "spec.listeners[0].protocol", 'Unsupported value: "TCP"'),
    ("enum", _set("tls.mode", "Strict"), "spec.tls.mode", 'supported values: "Terminate", "Passthrough"'),
    ("pattern", _set("hostnames.0", "Demo.example.test"), "spec.hostnames[0]", "should match"),
    ("pattern", _set("timeout", "90"), "spec.timeout", "should match '^([0-9]{1,5}(h|m|s|ms)){1,4}$'"),
    ("range", _set("parents.0.port", 0), "spec.parents[0].port", "greater than or equal to 1"),
    ("range", _set("parents.0.port", 70000), "spec.parents[0].port", "less than or equal to 65535"),
    ("range", _set("weight", 1001), "spec.weight", "less than or equal to 1000"),
    ("range", _set("share", 0), "spec.share", "should be greater than 0"),
    ("range", _set("share", 0.7), "spec.share", "multiple of 0.5"),
    ("length", _set("parents.0.name", "g" * 64), "spec.parents[0].name", "may not be more than 63"),
    ("length", _set("parents.0.name", ""), "spec.parents[0].name", "at least 1 chars"),
    ("length", _set("labels.tier", "platinum+"), "spec.labels.tier", "may not be more than 8"),
    ("items", _set("hostnames", ["a.test", "b.test", "c.test", "d.test"]), "spec.hostnames", "at most 3 items"),
    ("items", _set("parents", []), "spec.parents", "at least 1 items"),
    ("properties", _set("labels", {"a": "1", "b": "2", "c": "3"}), "spec.labels", "at most 2 items"),
    ("list-set", _set("hostnames", ["a.test", "a.test"]), "spec.hostnames[1]", 'Duplicate value: "a.test"'),
    ("format", _set("address", "10.0.0.300"), "spec.address", "must be of type ipv4"),
    ("one-of/any-of/all-of/not", _set("backend", {"name": "b", "url": "http://b"}), "spec.backend", "exactly one"),
    ("one-of/any-of/all-of/not", _set("pathPrefix", "/models//demo"), "spec.pathPrefix", "must not match"),
    ("cel", _set("filters", [{"type": "Rewrite"}]), "spec.filters[0]", "rewrite must be set when"),
    ("cel", _set("backend", {"url": "ftp://files.example.test/x"}), "spec.backend", "an http or https URL"),
    ("cel", _set("backend", {"url": "not a url"}), "spec.backend", "an http or https URL"),
    ("cel", _drop("tls.certificate"), "spec.tls", "a certificate is needed to terminate TLS"),
    ("cel", _set("pathPrefix", "/Models"), "spec.pathPrefix", "absolute and lower case"),
    ("cel", _set("filters", [{"type": "Mirror"}]), "spec.timeout", "a mirrored route takes no timeout"),
]


@pytest.mark.parametrize(("rule", "change", "field", "words"), BROKEN, ids=[f"{b[0]}-{b[2]}" for b in BROKEN])
def test_a_broken_object_is_rejected_naming_the_field_and_the_rule(
    rule: str, change: Callable[[dict[str, Any]], Any], field: str, words: str
) -> None:
    problems = check(_route(change), KUBERNETES, DATA).problems
    assert any(p.rule == rule and p.path == field and words in p.message for p in problems), problems


def test_every_rule_class_of_the_validator_is_exercised() -> None:
    classes = {
        structural.UNKNOWN_FIELD,
        structural.TYPE,
        structural.LIST_MAP,
        structural.REQUIRED,
        structural.ENUM,
        structural.PATTERN,
        structural.RANGE,
        structural.LENGTH,
        structural.ITEMS,
        structural.PROPERTIES,
        structural.FORMAT,
        structural.LIST_SET,
        structural.JUNCTOR,
        structural.CEL,
    }
    assert classes <= {b[0] for b in BROKEN}


def test_a_required_field_with_a_default_is_satisfied_by_the_default() -> None:
    """``tls.mode`` is required and defaults to Terminate: the API server defaults, then validates
    (the CEL rule sees the default too: Terminate needs a certificate)."""
    assert check(_route(), KUBERNETES, DATA).problems == []
    [problem] = check(_route(_drop("tls.certificate")), KUBERNETES, DATA).problems
    assert "a certificate is needed" in problem.message
    assert check(_route(_set("tls", {"mode": "Passthrough"})), KUBERNETES, DATA).problems == []


def test_a_list_map_key_with_a_default_identifies_the_entry() -> None:
    """The first listener has no port: its key is the default, 80, which the second then repeats."""
    duplicate = check(_route(_set("listeners.1.port", 80)), KUBERNETES, DATA).problems
    assert [p.rule for p in duplicate] == ["list-map-keys"]


def test_int_or_string_takes_both() -> None:
    assert check(_route(_set("maxSurge", 2)), KUBERNETES, DATA).problems == []
    assert check(_route(_set("maxSurge", "25%")), KUBERNETES, DATA).problems == []


def test_a_null_is_dropped_and_a_nullable_null_kept() -> None:
    assert check(_route(_set("weight", None)), KUBERNETES, DATA).problems == []
    assert check(_route(_set("note", None)), KUBERNETES, DATA).problems == []


def test_preserved_unknown_fields_take_anything() -> None:
    assert check(_route(_set("config", {"deep": {"er": [{"x": None}]}})), KUBERNETES, DATA).problems == []


def test_typed_conversion_problems_are_marked_as_such() -> None:
    """A server-side apply fails before validation on these (HTTP 500), after it on the others (422)."""
    assert check(_route(_set("hostname", "x")), KUBERNETES, DATA).typed
    assert check(_route(_set("parents.0.port", "80")), KUBERNETES, DATA).typed
    assert not check(_route(_set("weight", -1)), KUBERNETES, DATA).typed


def test_problems_are_all_reported_at_once() -> None:
    def several(spec: dict[str, Any]) -> None:
        spec["hostname"] = "x"
        spec["weight"] = -1
        spec["listeners"][0]["protocol"] = "TCP"

    rules = sorted(p.rule for p in check(_route(several), KUBERNETES, DATA).problems)
    assert rules == ["enum", "range", "unknown-field"]


# -- apiVersion, scope, metadata --------------------------------------------------------------------
def test_only_served_versions_are_accepted() -> None:
    assert check({**_route(), "apiVersion": "test.inferbox.io/v1beta1"}, KUBERNETES, DATA).problems == []
    [problem] = check({**_route(), "apiVersion": "test.inferbox.io/v1alpha1"}, KUBERNETES, DATA).problems
    assert (problem.rule, problem.path) == ("api-version", "apiVersion")
    assert "routes.test.inferbox.io serves v1, v1beta1, not v1alpha1" in problem.message


def test_a_kind_no_crd_serves_is_an_error_not_a_pass() -> None:
    [problem] = check({**_route(), "kind": "Widget"}, KUBERNETES, DATA).problems
    assert "no CRD of the pinned releases serves kind Widget in group 'test.inferbox.io'" in problem.message


def test_scope_and_metadata_are_checked() -> None:
    klass: dict[str, Any] = {
        "apiVersion": "test.inferbox.io/v1",
        "kind": "Class",
        "metadata": {"name": "default"},
        "spec": {"controller": "example.test/controller"},
    }
    assert check(klass, KUBERNETES, DATA).problems == []
    namespaced = copy.deepcopy(klass)
    namespaced["metadata"]["namespace"] = "team-a"
    assert [p.rule for p in check(namespaced, KUBERNETES, DATA).problems] == ["scope"]
    unscoped = _route()
    del unscoped["metadata"]["namespace"]
    assert [p.rule for p in check(unscoped, KUBERNETES, DATA).problems] == ["scope"]
    renamed = _route()
    renamed["metadata"]["name"] = "Demo_Route"
    [problem] = check(renamed, KUBERNETES, DATA).problems
    assert (problem.rule, problem.path) == ("metadata", "metadata.name")
    assert "RFC 1123" in problem.message
    labelled = _route()
    labelled["metadata"]["labels"] = {"app": "not ok!"}
    assert [p.rule for p in check(labelled, KUBERNETES, DATA).problems] == ["metadata"]


def test_a_report_names_the_object_and_counts_what_it_checked() -> None:
    broken = _route(_set("weight", -1))
    report = validate_objects([("routes.yaml", _route()), ("routes.yaml", broken)], KUBERNETES, DATA)
    assert (report.objects, report.custom, report.catalogued) == (2, 2, 0)
    [problem] = report.problems
    assert problem.startswith("routes.yaml: Route team-a/demo: at spec.weight: Invalid value: -1")
    assert problem.endswith("[range]")
    assert report.cel_evaluated == 10
    assert "0 violation" not in report.summary()
    assert report.notice == ""


# -- without schemas: the catalogue only -----------------------------------------------------------
def test_without_schemas_a_custom_resource_is_checked_against_the_catalogue_only() -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "n"},
        "spec": {"anything": "is not looked at"},
    }
    checked = check_catalogued(route)
    assert (checked.problems, checked.schema_checked) == ([], False)
    [problem] = check_catalogued({**route, "apiVersion": "gateway.networking.k8s.io/v1alpha2"}).problems
    assert "httproutes.gateway.networking.k8s.io serves v1, v1beta1, not v1alpha2" in problem.message
    [problem] = check_catalogued({**route, "kind": "HTTPRoutes"}).problems
    assert "no CRD of the pinned releases serves kind HTTPRoutes" in problem.message
    cluster_scoped = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "c", "namespace": "n"},
    }
    assert [p.rule for p in check_catalogued(cluster_scoped).problems] == ["scope"]
    report = validate_objects([("r.yaml", route)], KUBERNETES, None)
    assert (report.custom, report.catalogued) == (0, 1)
    assert "their schemas were NOT checked" in report.summary()


# -- CEL: the Kubernetes library functions given to cel-python ----------------------------------------
CEL_CASES: list[tuple[str, Any, bool]] = [
    ("self.substring(0, 4) == 'http'", "https://x", True),
    ("self.substring(4) == 's://x'", "https://x", True),
    ("self.split('/').size() == 3", "a/b/c", True),
    ("self.split('/', 2) == ['a', 'b/c']", "a/b/c", True),
    ("self.join('-') == 'a-b'", ["a", "b"], True),
    ("self.indexOf('b') == 1", "abc", True),
    ("self.lastIndexOf('a') == 2", "aba", True),
    ("self.lowerAscii() == 'abc'", "AbC", True),
    ("self.upperAscii() == 'ABC'", "AbC", True),
    ("self.trim() == 'x'", "  x ", True),
    ("self.replace('a', 'o') == 'foo'", "faa", True),
    ("self.charAt(1) == 'b'", "abc", True),
    ("isURL(self) && url(self).getScheme() == 'https'", "https://h.test:8443/p", True),
    ("url(self).getHost() == 'h.test:8443'", "https://h.test:8443/p", True),
    ("url(self).getHostname() == 'h.test'", "https://h.test:8443/p", True),
    ("url(self).getPort() == '8443'", "https://h.test:8443/p", True),
    ("url(self).getEscapedPath() == '/p'", "https://h.test:8443/p", True),
    ("isURL(self)", "no scheme", False),
    ("isIP(self)", "10.1.2.3", True),
    ("isIP(self)", "10.1.2", False),
    ("isCIDR(self)", "10.0.0.0/8", True),
    ("isCIDR(self)", "10.0.0.0", False),
    ("self.isSorted()", [1, 2, 2, 5], True),
    ("self.isSorted()", [2, 1], False),
    ("self.sum() == 6", [1, 2, 3], True),
    ("self.find('[0-9]+') == '42'", "abc42def", True),
    ("self.all(x, x > 0) && self.exists(x, x == 2) && self.exists_one(x, x == 3)", [1, 2, 3], True),
    ("has(self.a) && !has(self.b) && self.a.matches('^[a-z]+$')", {"a": "abc"}, True),
    ("self.map(x, x * 2).filter(x, x > 2).size() == 2", [1, 2, 3], True),
]


@pytest.mark.parametrize(("rule", "value", "passes"), CEL_CASES, ids=[c[0] for c in CEL_CASES])
def test_kubernetes_cel_functions_are_evaluated(rule: str, value: Any, passes: bool) -> None:
    outcome = cel_rules.evaluate(rule, value)
    assert outcome.unevaluated == "", outcome
    assert outcome.passed is passes, outcome


def test_an_evaluation_error_fails_the_rule_naming_the_error() -> None:
    outcome = cel_rules.evaluate("self.substring(0, 10) == 'x'", "short")
    assert (outcome.passed, outcome.unevaluated) == (False, "")
    assert "out of range" in outcome.error


def _schema_with_rule(rule: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-validations": [{"rule": rule}],
            }
        },
    }


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("self.frobnicate()", "frobnicate"),
        ("self.a +", "cannot parse"),
        ("self.a", "not a bool"),
    ],
    ids=["unknown-function", "syntax", "not-a-bool"],
)
def test_a_cel_rule_that_cannot_be_evaluated_is_reported_never_passed(rule: str, why: str) -> None:
    result = structural.validate({"spec": {"a": 1}}, _schema_with_rule(rule))
    assert (result.violations, result.cel_evaluated) == ([], 0)
    [unevaluated] = result.unevaluated
    assert why in unevaluated
    assert unevaluated.startswith("spec: ")


def test_an_unevaluable_rule_reaches_the_report_not_the_passes(tmp_path: Path) -> None:
    crd = copy.deepcopy(yaml.safe_load((OWN_SCHEMAS_DIR / "crds" / "classes.test.inferbox.io.yaml").read_text()))
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.controller.frobnicate()"}
    ]
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "classes.yaml").write_text(yaml.safe_dump(crd))
    (tmp_path / "SOURCES.yaml").write_text("read-from: this test\n")
    klass = {
        "apiVersion": "test.inferbox.io/v1",
        "kind": "Class",
        "metadata": {"name": "c"},
        "spec": {"controller": "example.test/c"},
    }
    report = validate_objects([("class.yaml", klass)], KUBERNETES, upstream.read(tmp_path))
    assert (report.problems, report.cel_evaluated) == ([], 0)
    [unevaluated] = report.unevaluated
    assert unevaluated.startswith("class.yaml: Class c: spec: 'self.controller.frobnicate()'")
    assert "1 CEL rule(s) not evaluable" in report.summary()


def test_transition_rules_are_left_to_updates() -> None:
    result = structural.validate({"spec": {"a": 1}}, _schema_with_rule("self == oldSelf"))
    assert (result.violations, result.unevaluated, result.cel_evaluated) == ([], [], 0)


# -- kind's cluster config ------------------------------------------------------------------------
def test_the_kind_config_is_checked_against_kinds_types() -> None:
    config: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [{"role": "control-plane", "extraPortMappings": [{"containerPort": 30080, "hostPort": 8080}]}],
    }
    assert check_kind_config(config, DATA) == []
    config["nodes"][0]["extraPortMapping"] = []
    config["nodes"].append({"role": "master"})
    problems = check_kind_config(config, DATA)
    assert "nodes[0].extraPortMapping: field not declared in schema" in problems[0]
    assert 'Unsupported value: "master"' in problems[1]
