"""EnvoyPatchPolicy as Envoy Gateway 1.4.2 applies it: JSONPath to pointers, RFC 6902 with add
creating parents, priority order, per-patch failures reported on the status, the enablement gate,
and what the embedded target refuses by name."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from inferbox.embedded.envoy_patch import (
    LISTENER_TYPE,
    JsonPatch,
    PatchError,
    PatchPolicy,
    apply_operation,
    apply_patch_policies,
    json_path_pointers,
    plan_patch_policies,
)
from inferbox.embedded.gateway_plan import plan_gateway
from inferbox.errors import ManifestError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, load_manifests
from tests.manifest_edits import edited

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)
DOC: dict[str, Any] = {
    "default_filter_chain": {
        "filters": [
            {"name": "other", "typed_config": {}},
            {
                "name": "hcm",
                "typed_config": {
                    "http_filters": [{"name": "jwt", "typed_config": {"providers": {"a/b": {}, "c": {}}}}]
                },
            },
        ]
    }
}


def _patch(op: str, path: str | None = None, json_path: str | None = None, value: Any = None) -> JsonPatch:
    return JsonPatch(LISTENER_TYPE, "l", op, path, json_path, None, value)


def test_a_filter_and_a_wildcard_select_every_provider_with_escaped_pointers() -> None:
    pointers = json_path_pointers(
        DOC, "$.default_filter_chain.filters[?(@.name=='hcm')].typed_config.http_filters[0].typed_config.providers.*"
    )
    assert pointers == [
        "/default_filter_chain/filters/1/typed_config/http_filters/0/typed_config/providers/a~1b",
        "/default_filter_chain/filters/1/typed_config/http_filters/0/typed_config/providers/c",
    ]


def test_a_json_path_selecting_nothing_is_an_error() -> None:
    with pytest.raises(PatchError, match="selects nothing"):
        json_path_pointers(DOC, "$.default_filter_chain.filters[?(@.name=='absent')]")


def test_a_construct_outside_the_subset_is_named() -> None:
    with pytest.raises(PatchError, match="outside the JSONPath subset"):
        json_path_pointers(DOC, "$..providers")


def test_add_creates_missing_parents_and_replace_needs_an_existing_value() -> None:
    doc = copy.deepcopy(DOC)
    apply_operation(doc, _patch("add", value=5), "/new/deeper/field")
    assert doc["new"] == {"deeper": {"field": 5}}
    with pytest.raises(PatchError):
        apply_operation(doc, _patch("replace", value=1), "/absent")
    apply_operation(doc, _patch("remove"), "/new")
    assert "new" not in doc


def _policy(ref: str, priority: int, *patches: JsonPatch) -> PatchPolicy:
    return PatchPolicy(ref, "test", priority, patches)


def test_policies_apply_in_priority_order_and_report_failures_per_patch() -> None:
    listener = copy.deepcopy(DOC)
    resources = {(LISTENER_TYPE, "l"): listener}
    later = _policy("ns/later", 1, _patch("replace", "/x", value="second"))
    first = _policy("ns/first", 0, _patch("add", "/x", value="first"), _patch("remove", "/absent"))
    missing = _policy("ns/missing", 2, JsonPatch(LISTENER_TYPE, "nope", "add", "/y", None, None, 1))
    statuses = apply_patch_policies(resources, sorted([later, first, missing], key=lambda p: p.priority))
    assert listener["x"] == "second"
    by_ref = {s.policy: s for s in statuses}
    assert (by_ref["ns/first"].status, by_ref["ns/first"].reason) == (False, "Invalid")
    assert by_ref["ns/later"].status
    assert (by_ref["ns/missing"].status, by_ref["ns/missing"].reason) == (False, "ResourceNotFound")


def test_the_platforms_policy_needs_envoy_patch_policy_enabled() -> None:
    gateway = MANIFESTS.get("Gateway", "inference-gateway", "envoy-gateway-system")
    assert gateway is not None
    applied, statuses = plan_patch_policies(MANIFESTS, gateway, enabled=False)
    assert not applied
    assert [(s.condition, s.reason) for s in statuses] == [("Accepted", "Disabled")]
    applied, statuses = plan_patch_policies(MANIFESTS, gateway, enabled=True)
    assert [p.ref for p in applied] == ["envoy-gateway-system/jwt-token-lifetime"]
    assert not statuses


def test_patching_another_resource_type_is_refused_by_name() -> None:
    other = edited(
        MANIFESTS,
        "EnvoyPatchPolicy",
        "jwt-token-lifetime",
        lambda b: b["spec"]["jsonPatches"][0].update(type="type.googleapis.com/envoy.config.cluster.v3.Cluster"),
    )
    with pytest.raises(ManifestError, match=r"jsonPatches\[0\]: type .*Cluster is not interpreted"):
        plan_gateway(other)
