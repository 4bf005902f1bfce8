"""The policy-engine table (Cyclonus's approach): does the target enforce what its manifests say?

For every caller x model workload x transport (the mesh's mutual TLS, plaintext, a client
certificate from a foreign CA) x token (none, the destination tenant's, another tenant's, one for
another audience, another tenant's with identity headers naming the destination), a small evaluator
of ours (``inferbox.policy.evaluator``) computes the verdict the manifests' NetworkPolicies,
PeerAuthentications, RequestAuthentications and AuthorizationPolicies imply, and the probe's actual
verdict must be the same. This checks the target's enforcement, not the platform's promises (the
truth table does that): a manifest that opens a hole is followed by the evaluator, a target that
enforces the same manifest differently is not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from inferbox.contract import Capability, Feature, Platform
from inferbox.evidence import Evidence
from inferbox.manifests import load_manifests
from inferbox.mesh import MeshClient, MeshSource, ProbeResult, Transport, Workload
from inferbox.policy.evaluator import Request, expected
from inferbox.policy.matrix import Cell, as_json, report
from inferbox.tokens import decode_unverified
from inferbox.waiting import eventually

from ._mesh import convergence_s, in_parallel, mesh_clients, model_workloads, sources

pytestmark = [
    pytest.mark.usefixtures("models_held_warm"),
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.NETWORK_ISOLATION, Feature.MESH_AUTHORIZATION, Feature.MESH_MTLS),
    pytest.mark.capability(Capability.MESH_PROBES, Capability.NETWORK_POLICY, Capability.TOKEN_SIGNING_KEY),
]
__all__ = ["mesh_clients"]


@dataclass(frozen=True)
class Variant:
    name: str
    token: str | None
    headers: dict[str, str]


def variants(platform: Platform, workload: Workload, token_for: Callable[[str], str]) -> list[Variant]:
    tenant = workload.namespace
    other = next(t.name for t in platform.topology.tenants if t.name != tenant)
    spoofed = {h: tenant for h in platform.profile.isolation.identity_headers}
    return [
        Variant("no-token", None, {}),
        Variant("own-token", token_for(tenant), {}),
        Variant("other-tenant-token", token_for(other), {}),
        Variant("other-audience", platform.tokens().valid(tenant, aud="another-service"), {}),
        Variant("other-tenant-token+identity-headers", token_for(other), spoofed),
    ]


def test_enforcement_matches_the_manifests_policies(
    platform: Platform,
    mesh_clients: dict[str, MeshClient],
    token_for: Callable[[str], str],
    evidence: Evidence,
    request: pytest.FixtureRequest,
) -> None:
    manifests = load_manifests(request.config.getoption("inferbox_manifests"))
    workloads = model_workloads(platform)
    cases: list[tuple[MeshSource, Workload, int, Transport, Variant]] = [
        (source, workload, port, transport, variant)
        for source in sources(platform)
        for workload in workloads
        for _, port in workload.ports
        for transport in Transport
        for variant in variants(platform, workload, token_for)
    ]
    last: dict[str, list[Cell]] = {}

    def probe(source: MeshSource, workload: Workload, port: int, transport: Transport, variant: Variant) -> ProbeResult:
        client = mesh_clients[source.label]
        path = f"/v1/models/{workload.model}"
        return client.request(
            workload, port, "GET", path, token=variant.token, headers=variant.headers, transport=transport
        )

    def table() -> None:
        results = in_parallel([lambda c=c: probe(*c) for c in cases])  # type: ignore[misc]
        cells = []
        for (source, workload, port, transport, variant), result in zip(cases, results, strict=True):
            claims = decode_unverified(variant.token)[1] if variant.token else None
            place = mesh_clients[source.label].place
            facts = Request("GET", f"/v1/models/{workload.model}", port, transport, claims, variant.headers)
            verdict = expected(manifests, place, workload, facts)
            observed = result.outcome.value if result.outcome.value != "answered" or result.answered else "error"
            cells.append(
                Cell(
                    f"{source.label} {transport.value} {variant.name}",
                    f"{workload.namespace}/{workload.name}:{port}",
                    verdict.outcome.value,
                    observed,
                    f"manifests: {verdict.why}; probe: {result.describe()}",
                )
            )
        last["cells"] = cells
        assert not any(c.differs for c in cells), "the target enforces differently from its manifests:\n" + report(
            cells, "verdicts: the stage that decided (network, transport, token, authorization) or answered"
        )

    try:
        eventually(table, timeout_s=convergence_s(platform), interval_s=0.5)
    finally:
        cells = last.get("cells", [])
        evidence.artifact("policy-engine.json", as_json(cells))
        evidence.figure("policy_engine_cells", len(cells))
        evidence.figure("policy_engine_differences", sum(c.differs for c in cells))
    kinds = {c.observed for c in cells}
    assert len(kinds) >= 4, f"the table exercised too few stages to mean anything: {sorted(kinds)}"
