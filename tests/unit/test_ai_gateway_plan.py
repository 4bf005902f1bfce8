"""The embedded AI Gateway: what the manifests' AI Gateway objects become, and what is refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inferbox.data import data_path
from inferbox.embedded.ai_gateway_config import (
    AIGatewayInputs,
    processor_config,
    ratelimit_config,
    render_ai_gateway,
)
from inferbox.embedded.ai_gateway_plan import plan_ai_gateway
from inferbox.embedded.gateway_plan import ModelBackend, plan_gateway
from inferbox.embedded.subset import check_all_supported
from inferbox.errors import ManifestError
from inferbox.manifests import ManifestSet, load_manifests

MANIFESTS = data_path("manifests")


def _manifests() -> ManifestSet:
    return load_manifests(MANIFESTS)


def _edit(kind: str, name: str, change: Callable[[dict[str, Any]], None]) -> ManifestSet:
    manifests = _manifests()
    obj = next(o for o in manifests.of_kind(kind) if o.name == name)
    body = copy.deepcopy(obj.body)
    change(body)
    obj.body.clear()
    obj.body.update(body)
    return manifests


def test_the_ai_gateway_is_planned_apart_from_the_inference_gateway() -> None:
    manifests = _manifests()
    check_all_supported(manifests)
    assert plan_gateway(manifests).gateway == "envoy-gateway-system/inference-gateway"
    plan = plan_ai_gateway(manifests)
    assert plan is not None
    assert plan.gateway == "envoy-gateway-system/ai-gateway"
    assert {r.name: r.models() for r in plan.rules} == {
        "pydoc-ngram-rule-0": ("pydoc-ngram",),
        "sklearn-ngram-rule-0": ("sklearn-ngram",),
    }
    assert plan.rules[0].backends == ((ModelBackend("tenant-b", "pydoc-ngram"), 1),)
    assert {c.metadata_key for c in plan.costs} == {"llm_input_token", "llm_output_token", "llm_total_token"}
    assert "x-ai-eg-model" in plan.remove_request_headers


def _revisions(backend: ModelBackend) -> list[tuple[ModelBackend, int]]:
    return [(ModelBackend(backend.namespace, backend.name, "00001"), 100)]


def _render(manifests: ManifestSet) -> dict[str, Any]:
    plan = plan_ai_gateway(manifests)
    assert plan is not None
    config = render_ai_gateway(
        AIGatewayInputs(plan, 9999, None, Path("/xds"), Path("/p.sock"), Path("/r.sock"), _revisions)
    )
    hcm: dict[str, Any] = config.listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def test_the_filter_chain_is_envoy_gateways() -> None:
    hcm = _render(_manifests())
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == [
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.ext_proc",
        "envoy.filters.http.rbac",
        "envoy.filters.http.ratelimit/envoy-gateway-system/ai-gateway-token-budget",
        "envoy.filters.http.router",
    ]
    ext_proc = hcm["http_filters"][1]["typed_config"]
    assert ext_proc["failure_mode_allow"] is False
    assert ext_proc["metadata_options"]["receiving_namespaces"]["untyped"] == ["io.envoy.ai_gateway"]


def test_routes_select_by_rule_and_charge_the_answers_tokens() -> None:
    routes = _render(_manifests())["route_config"]["virtual_hosts"][0]["routes"]
    first = routes[0]
    assert first["match"]["headers"][0] == {
        "name": "x-ai-eg-selected-route",
        "string_match": {"exact": "pydoc-ngram-rule-0"},
    }
    assert first["route"]["cluster"] == "isvc__tenant-b__pydoc-ngram__00001"
    assert first["route"]["timeout"] == "60s"
    limits = first["typed_per_filter_config"][
        "envoy.filters.http.ratelimit/envoy-gateway-system/ai-gateway-token-budget"
    ]
    request, response = limits["rate_limits"]
    assert request["hits_addend"] == {"number": 0}
    assert response["apply_on_stream_done"] is True
    assert response["hits_addend"] == {"format": "%DYNAMIC_METADATA(io.envoy.ai_gateway:llm_total_token)%"}
    assert response["actions"][1] == {
        "request_headers": {"header_name": "x-jwt-tenant", "descriptor_key": "rule-0-match-0"}
    }
    assert routes[-1]["match"] == {"prefix": "/"}
    assert routes[-1]["direct_response"] == {"status": 500}


def test_services_get_envoy_gateways_configuration() -> None:
    plan = plan_ai_gateway(_manifests())
    assert plan is not None
    (domain,) = ratelimit_config(plan)
    assert domain["domain"] == "envoy-gateway-system/ai-gateway-token-budget"
    inner = domain["descriptors"][0]["descriptors"][0]
    assert inner == {"key": "rule-0-match-0", "rate_limit": {"unit": "MINUTE", "requests_per_unit": 20000}}
    rules = processor_config(plan)["rules"]
    assert rules[0]["headers"] == [{"name": "x-ai-eg-model", "value": "pydoc-ngram"}]


def _route(change: Callable[[dict[str, Any]], None]) -> ManifestSet:
    return _edit("AIGatewayRoute", "pydoc-ngram", change)


@pytest.mark.parametrize(
    ("manifests", "named"),
    [
        (
            lambda: _route(
                lambda b: b["spec"]["rules"][0]["matches"][0]["headers"].append({"name": "x", "value": "y"})
            ),
            "2 headers",
        ),
        (lambda: _route(lambda b: b["spec"]["rules"][0]["backendRefs"][0].update(priority=1)), "priority"),
        (lambda: _route(lambda b: b["spec"].update(schema={"name": "AWSBedrock"})), "schema"),
        (
            lambda: _edit(
                "AIServiceBackend",
                "tenant-b-pydoc-ngram",
                lambda b: b["spec"].update(backendRef={"group": "", "kind": "Service", "name": "x", "port": 80}),
            ),
            "Service",
        ),
        (
            lambda: _edit(
                "BackendTrafficPolicy",
                "ai-gateway-token-budget",
                lambda b: b["spec"]["rateLimit"].update(type="Local"),
            ),
            "local rate limit",
        ),
        (
            lambda: _edit(
                "BackendTrafficPolicy",
                "sklearn-iris-rate-limit",
                lambda b: b["spec"]["rateLimit"].update(type="Global"),
            ),
            "global rate limit on HTTPRoute",
        ),
    ],
)
def test_what_is_not_interpreted_is_refused(manifests: Callable[[], ManifestSet], named: str) -> None:
    with pytest.raises(ManifestError) as refused:
        plan_ai_gateway(manifests())
    assert named in str(refused.value)
