"""Places for load generators on the embedded target, next to the workloads.

With network namespaces, a load client gets its own namespace on the platform's bridge (like a pod
of its own), so it reaches the gateway at the gateway pod's address and model replicas directly at
theirs, and its traffic never leaves through the host's namespace. When model pods have mesh
sidecars (their service port then only speaks mutual TLS), a client that calls a tenant's replicas
directly runs in that tenant's probe pod and presents its mesh identity, as a workload of the
tenant would: the direct path then includes the sidecar, like the gateway's path does. Client namespaces are numbered
from the top of the platform's address range (the platform numbers its pods from the bottom) and
carry the platform's ``ib-<instance>-`` prefix, so the platform's reaper removes them too. On
loopback, everything is reached on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from inferbox.contract import LoadClientPlace
from inferbox.embedded.network import NETNS_PREFIX, SUBNET, delete_netns
from inferbox.embedded.state import ComponentStatus, PlatformState
from inferbox.errors import PlatformError

CLIENT_BLOCK = 255  # client pods use 198.18.255.0/24


def _ip(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _must(done: subprocess.CompletedProcess[str]) -> None:
    if done.returncode != 0:
        raise PlatformError(
            f"could not set up a load client namespace: `{' '.join(map(str, done.args))}`: {done.stderr.strip()}",
            "run as root with iproute2, or use --network loopback",
        )


def replica_urls(components: Mapping[str, ComponentStatus], scheme: str = "http") -> dict[str, tuple[str, ...]]:
    """'<tenant>/<model>' -> the base URLs of its ready replicas (InferenceService workloads only)."""
    urls: dict[str, list[str]] = {}
    for name in sorted(components):
        info = components[name]
        workload = info.workload or ""
        if not info.ready or info.port is None or not workload or workload.startswith("inference-system."):
            continue
        tenant, _, model = workload.partition(".")
        urls.setdefault(f"{tenant}/{model}", []).append(f"{scheme}://{info.pod_ip}:{info.port}")
    return {key: tuple(value) for key, value in urls.items()}


@contextlib.contextmanager
def client_namespace(instance: str) -> Iterator[str]:
    """A fresh namespace on the instance's bridge; yields its name."""
    node = f"{NETNS_PREFIX}{instance}-node"
    for _ in range(20):
        index = 2 + secrets.randbelow(250)
        netns = f"{NETNS_PREFIX}{instance}-c{index}"
        if _ip("netns", "add", netns).returncode == 0:  # fails when another client holds this number
            break
    else:
        raise PlatformError("no free load client address in 198.18.255.0/24", "stop other load runs first")
    try:
        veth = f"c{index}"
        address = SUBNET.network_address + CLIENT_BLOCK * 256 + index
        _must(_ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns, netns=node))
        _must(_ip("link", "set", veth, "master", "br0", netns=node))
        _must(_ip("link", "set", veth, "up", netns=node))
        _must(_ip("link", "set", "lo", "up", netns=netns))
        _must(_ip("addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0", netns=netns))
        _must(_ip("link", "set", "eth0", "up", netns=netns))
        yield netns
    finally:
        delete_netns(netns)  # its veth pair goes with it


@contextlib.contextmanager
def load_client(
    state: PlatformState, components: Mapping[str, ComponentStatus], tenant: str | None = None
) -> Iterator[LoadClientPlace]:
    """A place for a load generator: a tenant's probe pod (its mesh identity) with ``tenant``, else a
    namespace of its own on the platform's bridge (or this machine on loopback)."""
    mesh = state.mesh
    probe = mesh.probes.get(tenant) if mesh is not None and tenant else None
    gateway = state.gateway_pod
    if mesh is not None and probe is not None and probe.cert and probe.key:
        netns = probe.netns_path
        yield LoadClientPlace(
            ("ip", "netns", "exec", Path(netns).name) if netns else (),
            f"http://{gateway.ip}:{gateway.port}" if netns else state.gateway_url,
            replica_urls(components, "https"),
            (probe.cert, probe.key, mesh.trust_bundle),
        )
        return
    if state.network != "netns":
        yield LoadClientPlace((), state.gateway_url, replica_urls(components))
        return
    with client_namespace(state.instance) as netns:
        yield LoadClientPlace(
            ("ip", "netns", "exec", netns), f"http://{gateway.ip}:{gateway.port}", replica_urls(components)
        )
