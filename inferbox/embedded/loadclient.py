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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inferbox.contract import LoadClientPlace
from inferbox.embedded.network import NETNS_PREFIX, SUBNET, delete_netns
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


def replica_urls(state: dict[str, Any], scheme: str = "http") -> dict[str, tuple[str, ...]]:
    """'<tenant>/<model>' -> the base URLs of its ready replicas (InferenceService workloads only)."""
    urls: dict[str, list[str]] = {}
    for _, info in sorted(state.get("components", {}).items()):
        workload = info.get("workload", "")
        if not info.get("ready") or "port" not in info or workload.startswith("inference-system."):
            continue
        tenant, _, model = workload.partition(".")
        urls.setdefault(f"{tenant}/{model}", []).append(f"{scheme}://{info['pod_ip']}:{info['port']}")
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
def load_client(state: dict[str, Any], tenant: str | None = None) -> Iterator[LoadClientPlace]:
    mesh = state.get("mesh") or {}
    probe = (mesh.get("probes") or {}).get(tenant) if tenant else None
    if probe and probe.get("cert"):
        gateway = state["gateway_pod"]
        netns = probe.get("netns_path")
        yield LoadClientPlace(
            ("ip", "netns", "exec", Path(netns).name) if netns else (),
            f"http://{gateway['ip']}:{gateway['port']}" if netns else str(state["gateway_url"]),
            replica_urls(state, "https"),
            (str(probe["cert"]), str(probe["key"]), str(mesh["trust_bundle"])),
        )
        return
    if state.get("network") != "netns":
        yield LoadClientPlace((), str(state["gateway_url"]), replica_urls(state))
        return
    pod = state["gateway_pod"]
    with client_namespace(str(state["instance"])) as netns:
        yield LoadClientPlace(("ip", "netns", "exec", netns), f"http://{pod['ip']}:{pod['port']}", replica_urls(state))
