"""Shared pieces of the mesh checks: the callers, the workloads, probing many cells at once.

Target-agnostic: everything goes through the platform contract. Test modules import the fixtures
they use from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from inferbox.contract import Platform
from inferbox.mesh import MeshClient, MeshSource, SourceKind, Workload
from inferbox.topology import Model

T = TypeVar("T")
# Probes refused by the network each wait out a whole connect timeout (a dropped SYN is never
# answered); they cost no CPU, so many go out at once. The policy-engine table has a few hundred.
PARALLEL_PROBES = 64


def convergence_s(platform: Platform) -> float:
    """How long enforcement checks retry: the target's policy convergence (a cluster's policies
    propagate, the embedded target's are in force from a workload's start), or
    INFERBOX_MESH_CONVERGENCE_S."""
    override = os.environ.get("INFERBOX_MESH_CONVERGENCE_S")
    return float(override) if override else platform.policy_convergence_s


def sources(platform: Platform) -> list[MeshSource]:
    """Every caller the isolation intent speaks of: each tenant's workloads, the gateway, outside."""
    return [MeshSource.in_tenant(t.name) for t in platform.topology.tenants] + [
        MeshSource.gateway(),
        MeshSource.outside(),
    ]


@pytest.fixture(scope="session")
def mesh_clients(platform: Platform) -> Iterator[dict[str, MeshClient]]:
    clients = {source.label: platform.mesh_client(source) for source in sources(platform)}
    yield clients
    for client in clients.values():
        client.close()


def model_workloads(platform: Platform) -> list[Workload]:
    """The pods serving the manifests' models; none at all is a failure, never a vacuous pass."""
    found = [w for w in platform.workloads() if w.model is not None]
    models = {(m.tenant, m.name) for m in platform.topology.models}
    missing = models - {(w.namespace, w.model) for w in found}
    assert not missing, f"no running workload for model(s) {sorted(missing)}; the platform reports {found}"
    return found


def workloads_of(platform: Platform, model: Model) -> list[Workload]:
    found = [w for w in model_workloads(platform) if w.namespace == model.tenant and w.model == model.name]
    assert found, f"no running workload for {model.tenant}/{model.name}"
    return found


def best_token(source: MeshSource, destination_tenant: str, token_for: Callable[[str], str]) -> str:
    """The best token a caller legitimately holds: a tenant workload its own tenant's; the gateway
    (forwarding its client's) and a caller outside the mesh the destination tenant's."""
    if source.kind is SourceKind.TENANT:
        assert source.tenant is not None
        return token_for(source.tenant)
    return token_for(destination_tenant)


def in_parallel(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Runs independent probes concurrently (a dropped connection costs a whole connect timeout)."""
    with ThreadPoolExecutor(max_workers=PARALLEL_PROBES) as pool:
        return list(pool.map(lambda job: job(), jobs))
