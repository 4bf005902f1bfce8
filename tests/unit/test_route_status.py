"""Routes a cluster would report as not resolved or not attached are reported when the platform starts."""

from __future__ import annotations

from typing import Any

from inferbox.embedded.gateway_plan import plan_gateway
from inferbox.embedded.route_status import RouteProblem, route_problems, route_report
from inferbox.manifests import ManifestSet
from tests.manifest_edits import edited


def test_the_platform_as_shipped_has_no_route_problem(manifests: ManifestSet) -> None:
    assert route_problems(plan_gateway(manifests)) == []


def test_a_missing_backend_service_is_backend_not_found_naming_route_and_service(manifests: ManifestSet) -> None:
    def retarget(body: dict[str, Any]) -> None:
        body["spec"]["rules"][0]["backendRefs"] = [{"name": "jwt-server-old", "port": 8080}]

    plan = plan_gateway(edited(manifests, "HTTPRoute", "jwt-server", retarget))
    assert route_problems(plan) == [
        RouteProblem(
            "inference-system/jwt-server",
            "ResolvedRefs",
            "BackendNotFound",
            "Service inference-system/jwt-server-old not found",
        )
    ]
    [line] = route_report(plan)
    assert line == (
        "warning: HTTPRoute inference-system/jwt-server: ResolvedRefs=False, reason BackendNotFound: "
        "Service inference-system/jwt-server-old not found (its requests get 500)"
    )


def test_a_missing_reference_grant_is_ref_not_permitted(manifests: ManifestSet) -> None:
    without = ManifestSet(manifests.root, tuple(o for o in manifests if o.kind != "ReferenceGrant"))
    problems = route_problems(plan_gateway(without))
    assert {(p.route, p.reason) for p in problems} == {
        ("tenant-a/sklearn-iris", "RefNotPermitted"),
        ("tenant-c/pytorch-resnet", "RefNotPermitted"),
    }
    assert all("ReferenceGrant" in p.message for p in problems)


def test_a_route_the_listener_does_not_admit_is_reported_as_not_attached(manifests: ManifestSet) -> None:
    plan = plan_gateway(
        edited(manifests, "Namespace", "tenant-c", lambda b: b["metadata"]["labels"].pop("inferbox.io/gateway-access"))
    )
    [problem] = route_problems(plan)
    assert (problem.route, problem.condition) == ("tenant-c/pytorch-resnet", "Accepted")
    assert "not attached" in problem.line()


def test_a_model_host_without_an_inference_service_is_reported_without_a_gateway_api_reason(
    manifests: ManifestSet,
) -> None:
    plan = plan_gateway(
        edited(
            manifests,
            "HTTPRoute",
            "sklearn-iris",
            lambda b: b["spec"].update(hostnames=["nothing.tenant-a.inference.example"]),
        )
    )
    [problem] = route_problems(plan)
    assert (problem.route, problem.condition, problem.reason) == ("tenant-a/sklearn-iris", "", "")
    assert "nothing.tenant-a.inference.example" in problem.line()
