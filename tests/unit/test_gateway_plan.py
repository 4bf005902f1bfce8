"""Gateway API / Envoy Gateway semantics of the embedded gateway, and the Envoy config it renders."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.embedded.gateway_config import GatewayPorts
from inferbox.embedded.gateway_plan import ModelBackend, ServiceBackend, Unresolved, plan_gateway
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from tests.gateway_render import gateway_hcm, render_bootstrap
from tests.manifest_edits import edited as _edited


def _without(manifests: ManifestSet, kind: str, name: str) -> ManifestSet:
    return ManifestSet(manifests.root, tuple(o for o in manifests if not (o.kind == kind and o.name == name)))


def test_model_routes_reach_their_inference_service(manifests: ManifestSet) -> None:
    plan = plan_gateway(manifests)
    backends = {r.hostnames[0]: r.backends[0].backend for r in plan.routes}
    assert backends["sklearn-iris.tenant-a.inference.example"] == ModelBackend("tenant-a", "sklearn-iris")
    assert backends["pytorch-resnet.tenant-c.inference.example"] == ModelBackend("tenant-c", "pytorch-resnet")
    assert backends["auth.inference.example"] == ServiceBackend("inference-system", "jwt-server", 8080)
    assert plan.remove_request_headers == ("x-jwt-tenant", "x-jwt-sub")
    assert not plan.detached_routes


def test_a_route_from_a_namespace_the_listener_does_not_admit_is_not_attached(manifests: ManifestSet) -> None:
    edited = _edited(
        manifests, "Namespace", "tenant-c", lambda b: b["metadata"]["labels"].pop("inferbox.io/gateway-access")
    )
    plan = plan_gateway(edited)
    assert "tenant-c/pytorch-resnet" in plan.detached_routes
    assert all(r.route != "tenant-c/pytorch-resnet" for r in plan.routes)


def test_a_cross_namespace_backend_without_a_reference_grant_is_unresolved(manifests: ManifestSet) -> None:
    plan = plan_gateway(_without(manifests, "ReferenceGrant", "tenant-routes-to-istio-ingress"))
    model_routes = [r for r in plan.routes if r.route == "tenant-a/sklearn-iris"]
    assert model_routes
    assert all(isinstance(r.backends[0].backend, Unresolved) for r in model_routes)


def test_a_host_without_an_inference_service_is_unresolved(manifests: ManifestSet) -> None:
    plan = plan_gateway(
        _edited(
            manifests,
            "HTTPRoute",
            "sklearn-iris",
            lambda b: b["spec"].update(hostnames=["nothing.tenant-a.inference.example"]),
        )
    )
    route = next(r for r in plan.routes if r.route == "tenant-a/sklearn-iris")
    assert isinstance(route.backends[0].backend, Unresolved)


def test_route_security_and_rate_limits_come_from_their_policies(manifests: ManifestSet) -> None:
    plan = plan_gateway(manifests)
    route = next(r for r in plan.routes if r.route == "tenant-a/sklearn-iris")
    assert route.security is not None
    provider = route.security.providers[0]
    assert (provider.issuer, provider.audiences) == ("inference-in-a-box", ("inference-gateway",))
    assert route.security.authorization is not None
    assert not route.security.authorization.default_allow
    [(_, allow, principal)] = route.security.authorization.rules
    assert allow
    assert principal.claims == (("tenant", ("tenant-a",)),)
    [limit] = route.rate_limits
    assert (limit.headers, limit.requests, limit.per_seconds) == ((("x-jwt-tenant", "tenant-a"),), 100, 1)
    auth_route = next(r for r in plan.routes if r.route == "inference-system/jwt-server")
    assert auth_route.security is None


def test_a_rate_limit_on_the_gateway_applies_to_each_route_unless_the_route_has_its_own(
    manifests: ManifestSet,
) -> None:
    """Envoy Gateway: a BackendTrafficPolicy on the Gateway covers every route attached to it, and one
    on an HTTPRoute takes precedence for that route."""
    gateway_wide = K8sObject(
        "gateway.envoyproxy.io/v1alpha1",
        "BackendTrafficPolicy",
        "gateway-rate-limit",
        "envoy-gateway-system",
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "BackendTrafficPolicy",
            "metadata": {"name": "gateway-rate-limit", "namespace": "envoy-gateway-system"},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "inference-gateway"}],
                "rateLimit": {"type": "Local", "local": {"rules": [{"limit": {"requests": 7, "unit": "Minute"}}]}},
            },
        },
        "gateway-rate-limit.yaml",
    )
    plan = plan_gateway(ManifestSet(manifests.root, (*manifests, gateway_wide)))
    limits = {r.route: r.rate_limits for r in plan.routes}
    [own] = limits["tenant-a/sklearn-iris"]
    assert own.requests == 100, "the route's own policy wins over the Gateway's"
    [inherited] = limits["inference-system/jwt-server"]
    assert (inherited.headers, inherited.requests, inherited.per_seconds) == ((), 7, 60)


def test_rules_with_the_default_action_are_refused(manifests: ManifestSet) -> None:
    edited = _edited(
        manifests,
        "SecurityPolicy",
        "sklearn-iris-jwt",
        lambda b: b["spec"]["authorization"].update(defaultAction="Allow"),
    )
    with pytest.raises(ManifestError, match="same action as defaultAction"):
        plan_gateway(edited)


def test_a_jwt_principal_needs_its_provider_in_the_same_policy(manifests: ManifestSet) -> None:
    edited = _edited(
        manifests,
        "SecurityPolicy",
        "sklearn-iris-jwt",
        lambda b: b["spec"]["authorization"]["rules"][0]["principal"]["jwt"].update(provider="other"),
    )
    with pytest.raises(ManifestError, match="does not define"):
        plan_gateway(edited)


def _render(manifests: ManifestSet, tmp_path: Path, host_netns: str | None) -> dict[str, Any]:
    ports = GatewayPorts(
        public=18080, admin=18081, pod_ip="198.18.0.9" if host_netns else None, pod_port=80, admin_internal=15000
    )
    return render_bootstrap(plan_gateway(manifests), ports, tmp_path / "xds", host_netns)


def test_path_prefixes_match_whole_path_elements(manifests: ManifestSet, tmp_path: Path) -> None:
    bootstrap = _render(manifests, tmp_path, None)
    routes = gateway_hcm(bootstrap)["route_config"]["virtual_hosts"]
    iris = next(v for v in routes if v["domains"] == ["sklearn-iris.tenant-a.inference.example"])
    matches = [r["match"] for r in iris["routes"]]
    assert {"path_separated_prefix": "/v1/models"} in matches
    assert matches[0] in ({"path": "/v2/health/ready"}, {"path": "/v2/health/live"}), "exact paths come first"


@pytest.mark.parametrize("host_netns", [None, "/proc/1/ns/net"], ids=["loopback", "netns"])
def test_real_envoy_accepts_the_rendered_config(manifests: ManifestSet, tmp_path: Path, host_netns: str | None) -> None:
    config = tmp_path / "envoy.yaml"
    config.write_text(yaml.safe_dump(_render(manifests, tmp_path, host_netns)))
    done = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
