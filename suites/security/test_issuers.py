"""Only the profile's issuer is trusted, at the gateway and at every model's sidecar.

The issuers tried are every issuer the manifests configure (SecurityPolicy providers,
RequestAuthentication rules) and one nobody configures, less the profile's own. Each token is
signed with the platform's own key and is otherwise valid for the model's tenant, the best an
intruder could hold if another issuer's keys were trusted by mistake: the gateway's authentication
must refuse it (401), and a model's sidecar, reached from the gateway's hop (which the network
lets through), must not answer it.
"""

from __future__ import annotations

import pytest

from inferbox.client import GatewayClient
from inferbox.contract import Capability, Feature, Platform
from inferbox.manifests import load_manifests
from inferbox.mesh import MeshClient, MeshSource
from inferbox.topology import Model
from inferbox.verdicts import Source, describe, source_of
from inferbox.waiting import eventually

from ._mesh import convergence_s, mesh_clients, workloads_of

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.JWT_AUTHENTICATION),
    pytest.mark.capability(Capability.TOKEN_SIGNING_KEY),
]
__all__ = ["mesh_clients"]

UNCONFIGURED_ISSUER = "https://issuer.invalid/"


def other_issuers(platform: Platform, manifests_dir: str) -> list[str]:
    manifests = load_manifests(manifests_dir)
    configured = {
        str(p.get("issuer", ""))
        for policy in manifests.of_kind("SecurityPolicy")
        for p in (policy.spec.get("jwt") or {}).get("providers") or []
    } | {
        str(rule.get("issuer", ""))
        for policy in manifests.of_kind("RequestAuthentication")
        for rule in policy.spec.get("jwtRules") or []
    }
    return sorted((configured | {UNCONFIGURED_ISSUER}) - {platform.profile.auth.issuer, ""})


def test_other_issuers_are_refused_by_the_gateway(
    platform: Platform, gateway: GatewayClient, model: Model, request: pytest.FixtureRequest
) -> None:
    failures = []
    for issuer in other_issuers(platform, request.config.getoption("inferbox_manifests")):
        response = gateway.metadata_v1(model, platform.tokens().valid(model.tenant, iss=issuer))
        if response.status_code != 401 or source_of(response) is not Source.GATEWAY_AUTHENTICATION:
            failures.append(f"issuer {issuer!r}: {describe(response)}")
    assert not failures, "tokens of other issuers were not refused by the gateway's authentication:\n" + "\n".join(
        failures
    )


@pytest.mark.usefixtures("models_held_warm")
@pytest.mark.features(Feature.MESH_AUTHORIZATION)
@pytest.mark.capability(Capability.MESH_PROBES)
def test_other_issuers_are_not_answered_by_a_models_sidecar(
    platform: Platform, mesh_clients: dict[str, MeshClient], model: Model, request: pytest.FixtureRequest
) -> None:
    issuers = other_issuers(platform, request.config.getoption("inferbox_manifests"))
    client = mesh_clients[MeshSource.gateway().label]
    path = f"/v1/models/{model.name}"

    def check() -> None:
        failures = []
        for workload in workloads_of(platform, model):
            for _, port in workload.ports:
                twin = client.request(workload, port, "GET", path, token=platform.tokens().valid(model.tenant))
                assert twin.answered, f"the platform's own token was not answered: {twin.describe()}"
                for issuer in issuers:
                    token = platform.tokens().valid(model.tenant, iss=issuer)
                    result = client.request(workload, port, "GET", path, token=token)
                    if result.answered or not result.connected:
                        failures.append(f"issuer {issuer!r} -> {workload.name}:{port}: {result.describe()}")
        assert not failures, "a model's sidecar did not refuse another issuer:\n" + "\n".join(failures)

    eventually(check, timeout_s=convergence_s(platform), interval_s=0.5)
