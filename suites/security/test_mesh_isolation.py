"""The tenant-isolation truth table: every caller x every model workload x port.

Callers are each tenant's workloads, the gateway's hop into tenants and a pod outside the mesh;
each sends a request straight to a model's pod (no gateway in front), carrying the best token it
legitimately holds. The expected verdict of every cell comes from the isolation intent of the
conformance profile (who may connect, whose request is answered), never from the manifests under
test: a mutant that opens a NetworkPolicy would otherwise be expected to be open. Both matrices and
their differences are printed on failure and saved in the run's report folder.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from inferbox.contract import Capability, Feature, Platform
from inferbox.evidence import Evidence
from inferbox.mesh import MeshClient, MeshSource, ProbeResult, Workload
from inferbox.policy.matrix import Cell, as_json, report
from inferbox.waiting import eventually

from ._mesh import (
    best_token,
    convergence_s,
    in_parallel,
    mesh_clients,
    model_workloads,
    sources,
)

pytestmark = [
    pytest.mark.usefixtures("models_held_warm"),
    pytest.mark.conformance,
    pytest.mark.security,
    pytest.mark.features(Feature.NETWORK_ISOLATION, Feature.MESH_AUTHORIZATION, Feature.MESH_MTLS),
    pytest.mark.capability(Capability.MESH_PROBES, Capability.NETWORK_POLICY),
]
__all__ = ["mesh_clients"]

LEGEND = (
    "A: the model answered   C: connected, but the workload's sidecar refused (mTLS, token or policy)   "
    "-: no connection (network policy)"
)


def symbol(connect: bool, answered: bool) -> str:
    if answered:
        return "A"
    return "C" if connect else "-"


def destination(workload: Workload, port_name: str, port: int) -> str:
    return f"{workload.namespace}/{workload.name}:{port_name}/{port}"


def test_isolation_truth_table(
    platform: Platform,
    mesh_clients: dict[str, MeshClient],
    token_for: Callable[[str], str],
    evidence: Evidence,
) -> None:
    intent = platform.profile.require_mesh().callers
    workloads = model_workloads(platform)
    callers = sources(platform)
    cases = [(s, w, name, port) for s in callers for w in workloads for name, port in w.ports]
    tokens = {(s.label, w.namespace): best_token(s, w.namespace, token_for) for s in callers for w in workloads}
    last: dict[str, list[Cell]] = {}
    attempts = {"n": 0}

    def probe(source: MeshSource, workload: Workload, port: int) -> ProbeResult:
        token = tokens[(source.label, workload.namespace)]
        return mesh_clients[source.label].request(workload, port, "GET", f"/v1/models/{workload.model}", token=token)

    def table() -> None:
        attempts["n"] += 1
        results = in_parallel([lambda s=s, w=w, p=p: probe(s, w, p) for s, w, _, p in cases])  # type: ignore[misc]
        cells = []
        for (source, workload, name, port), result in zip(cases, results, strict=True):
            promise = intent[source.caller_kind(workload.namespace)]
            cells.append(
                Cell(
                    source.label,
                    destination(workload, name, port),
                    symbol(promise.connect, promise.connect and promise.answered),
                    symbol(result.connected, result.answered),
                    f"{source.caller_kind(workload.namespace)}: {result.describe()}",
                )
            )
        last["cells"] = cells
        assert not any(c.differs for c in cells), "the platform's isolation differs from the profile:\n" + report(
            cells, LEGEND
        )

    try:
        eventually(table, timeout_s=convergence_s(platform), interval_s=0.5)
    finally:
        cells = last.get("cells", [])
        evidence.artifact("isolation-matrix.txt", report(cells, LEGEND) + "\n")
        evidence.artifact("isolation-matrix.json", as_json(cells))
        evidence.figure("isolation_cells", len(cells))
        evidence.figure("isolation_differences", sum(c.differs for c in cells))
        evidence.retries(max(0, attempts["n"] - 1))
    # Vacuity guard: the intent has both open and closed cells, and both were observed.
    observed = {c.observed for c in cells}
    assert "A" in observed, f"nothing was answered; a one-sided table proves nothing: {sorted(observed)}"
    assert "-" in observed, f"nothing was isolated; a one-sided table proves nothing: {sorted(observed)}"
