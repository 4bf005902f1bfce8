"""Authorization inside the mesh: a workload's sidecar decides from the verified token's tenant
claim and the caller's mesh identity, never from headers a caller can set.

Requests go straight to a model's pod. The gateway's hop is the caller the network lets through and
whose identity the policy trusts, so only the sidecar's authorization stands between a wrong token
and the model; each refusal must come from it (403 "RBAC: access denied"), and beside each refusal
the same caller with the right token is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from inferbox.contract import Capability, Feature, Platform
from inferbox.mesh import MeshClient, MeshSource, Outcome
from inferbox.topology import Model
from inferbox.waiting import eventually

from ._mesh import convergence_s, in_parallel, mesh_clients, workloads_of

pytestmark = [
    pytest.mark.usefixtures("models_held_warm"),
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.MESH_AUTHORIZATION),
    pytest.mark.capability(Capability.MESH_PROBES),
]
__all__ = ["mesh_clients"]


def _others(platform: Platform, model: Model) -> list[str]:
    others = [t.name for t in platform.topology.tenants if t.name != model.tenant]
    assert others, "the platform defines a single tenant; isolation cannot be checked"
    return others


def _check(
    platform: Platform,
    clients: dict[str, MeshClient],
    model: Model,
    token_for: Callable[[str], str],
    spoof_headers: bool,
) -> None:
    path = f"/v1/models/{model.name}"
    headers = {h: model.tenant for h in platform.profile.isolation.identity_headers} if spoof_headers else {}
    gateway = MeshSource.gateway()
    twins = [(w, port) for w in workloads_of(platform, model) for _, port in w.ports]
    # Other tenants' own workloads are refused by the network, each probe waiting out a connect
    # timeout: the probes go out at once.
    wrong = [
        (source, tenant, workload, port)
        for workload, port in twins
        for tenant in _others(platform, model)
        for source in [gateway] + ([MeshSource.in_tenant(tenant)] if spoof_headers else [])
    ]
    own_token = token_for(model.tenant)
    results = in_parallel(
        [partial(clients[gateway.label].request, w, p, "GET", path, token=own_token) for w, p in twins]
        + [
            partial(clients[s.label].request, w, p, "GET", path, token=token_for(t), headers=headers)
            for s, t, w, p in wrong
        ]
    )
    failures = [
        f"gateway with {model.tenant}'s token was not answered: {twin.describe()}"
        for twin in results[: len(twins)]
        if not twin.answered
    ]
    decided_by_sidecar = 0
    for (source, tenant, workload, port), result in zip(wrong, results[len(twins) :], strict=True):
        what = f"{source.label} with {tenant}'s token{' and ' + str(sorted(headers)) if headers else ''}"
        if result.outcome is Outcome.AUTHZ_DENIED:
            decided_by_sidecar += 1
        elif result.connected or result.outcome is Outcome.ERROR:
            # A connected caller must be refused by the sidecar's authorization itself.
            failures.append(f"{what} -> {workload.name}:{port}: {result.describe()}")
    assert not failures, "\n".join(failures)
    assert decided_by_sidecar, "no request reached the sidecar's authorization; the check proved nothing"


def test_another_tenants_token_is_refused_by_the_sidecar(
    platform: Platform, mesh_clients: dict[str, MeshClient], model: Model, token_for: Callable[[str], str]
) -> None:
    """A token valid for another tenant, presented straight to this model's sidecar: 403."""
    eventually(
        lambda: _check(platform, mesh_clients, model, token_for, spoof_headers=False),
        timeout_s=convergence_s(platform),
        interval_s=0.5,
    )


def test_identity_headers_cannot_cross_tenants_inside_the_mesh(
    platform: Platform, mesh_clients: dict[str, MeshClient], model: Model, token_for: Callable[[str], str]
) -> None:
    """Another tenant's token plus every identity header naming this model's tenant, from the gateway's
    hop and from the other tenants' own workloads: never answered."""
    eventually(
        lambda: _check(platform, mesh_clients, model, token_for, spoof_headers=True),
        timeout_s=convergence_s(platform),
        interval_s=0.5,
    )


@pytest.mark.capability(Capability.BORROWED_MESH_IDENTITY)
def test_mesh_authorization_alone_refuses_other_tenants_identities(
    platform: Platform, mesh_clients: dict[str, MeshClient], model: Model, token_for: Callable[[str], str]
) -> None:
    """Mesh authorization proven on its own: from the gateway's hop (which the network lets
    through), presenting another tenant's workload identity (a certificate of the platform's own
    CA) and the model's tenant's token (which satisfies any claim condition), the request is refused
    by the sidecar's authorization, as the profile says other tenants' workloads are not answered.
    Beside it, the same place, token and request with the gateway's own identity is answered."""
    intent = platform.profile.require_mesh().callers
    refused = not intent["otherTenant"].answered  # the verdict for another tenant's identity
    accounts = {(w.namespace, w.service_account) for w in platform.workloads()} | {
        (t.name, "default") for t in platform.topology.tenants
    }
    borrowed = sorted((ns, sa) for ns, sa in accounts if ns != model.tenant)
    assert borrowed, "no other tenant's identity to borrow; the check would prove nothing"
    clients = [platform.mesh_client_with_identity(MeshSource.gateway(), ns, sa) for ns, sa in borrowed]
    path, token = f"/v1/models/{model.name}", token_for(model.tenant)

    def check() -> None:
        failures = []
        for workload in workloads_of(platform, model):
            for _, port in workload.ports:
                twin = mesh_clients[MeshSource.gateway().label].request(workload, port, "GET", path, token=token)
                assert twin.answered == intent["gateway"].answered, f"the gateway's own identity: {twin.describe()}"
                for (namespace, account), client in zip(borrowed, clients, strict=True):
                    result = client.request(workload, port, "GET", path, token=token)
                    if (result.outcome is Outcome.AUTHZ_DENIED) != refused or result.answered == refused:
                        failures.append(
                            f"identity {namespace}/{account} -> {workload.name}:{port}: {result.describe()}"
                        )
        assert not failures, "mesh authorization let another tenant's identity through:\n" + "\n".join(failures)

    try:
        eventually(check, timeout_s=convergence_s(platform), interval_s=0.5)
    finally:
        for client in clients:
            client.close()
