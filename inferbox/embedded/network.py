"""Where the embedded platform's pods live: network namespaces on a private bridge, or loopback.

``NetnsNetwork`` (root): one namespace per pod, each with a veth on a bridge that lives in its own
"node" namespace; addresses come from 198.18.0.0/16 (reserved for benchmarking, RFC 2544) and are
used only inside these namespaces, which have no default route. Nothing is configured in the host's
namespace. Host-facing listeners (the gateway's public port, admin and metrics ports) are bound by
Envoy in the host namespace through ``network_namespace_filepath``.

``LoopbackNetwork`` (no root): every pod is the host's 127.0.0.1 with its own ports. Workloads are
then not isolated from each other, and the target does not claim the capabilities that need it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
from dataclasses import dataclass, field

from inferbox.errors import PlatformError

NETNS_PREFIX = "ib-"
SUBNET = ipaddress.ip_network("198.18.0.0/16")
NETNS_DIR = "/run/netns"


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PlatformError(
            f"network setup failed: `{' '.join(cmd)}`: {done.stderr.strip()}",
            "run as root with iproute2 installed, or use --network loopback",
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int, what: str, option: str) -> None:
    """Fails with the option to change when a fixed host port is taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PlatformError(
                f"port 127.0.0.1:{port} for the {what} is already in use ({exc.strerror})",
                f"stop what uses it (`ss -ltnp 'sport = :{port}'` shows it), or choose another port with {option}",
            ) from exc


@dataclass
class Pod:
    """One workload's network place."""

    name: str
    ip: str
    netns: str | None = None
    _ports: dict[int, int] = field(default_factory=dict)

    @property
    def netns_path(self) -> str | None:
        return f"{NETNS_DIR}/{self.netns}" if self.netns else None

    def exec_prefix(self) -> list[str]:
        """Command prefix that starts a process inside this pod."""
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def port(self, container_port: int) -> int:
        """The port a container port is reachable on: itself in a namespace, a free one on loopback."""
        if self.netns:
            return container_port
        if container_port not in self._ports:
            self._ports[container_port] = free_port()
        return self._ports[container_port]

    def endpoint(self, container_port: int) -> tuple[str, int]:
        return self.ip, self.port(container_port)


class Network:
    """Creates pods; ``isolated`` says whether pods are separate network places."""

    isolated = False
    kind = "loopback"

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.pods: dict[str, Pod] = {}

    def add_pod(self, name: str) -> Pod:
        pod = Pod(name=name, ip="127.0.0.1")
        self.pods[name] = pod
        return pod

    def remove_pod(self, name: str) -> None:
        self.pods.pop(name, None)

    def host_netns_path(self) -> str | None:
        return None

    def teardown(self) -> None:
        self.pods.clear()


class NetnsNetwork(Network):
    isolated = True
    kind = "netns"

    def __init__(self, instance: str) -> None:
        super().__init__(instance)
        self.node = f"{NETNS_PREFIX}{instance}-node"
        self._next_host = 2
        self._created: list[str] = []
        # Host-facing listeners bind in the namespace of the process that owns the platform.
        self._host_ns = f"/proc/{os.getpid()}/ns/net"
        _ip("netns", "add", self.node)
        self._created.append(self.node)
        _ip("link", "set", "lo", "up", netns=self.node)
        _ip("link", "add", "br0", "type", "bridge", netns=self.node)
        _ip("addr", "add", f"{SUBNET.network_address + 1}/{SUBNET.prefixlen}", "dev", "br0", netns=self.node)
        _ip("link", "set", "br0", "up", netns=self.node)

    def host_netns_path(self) -> str | None:
        return self._host_ns

    def add_pod(self, name: str) -> Pod:
        index = self._next_host
        self._next_host += 1
        address = SUBNET.network_address + index
        netns = f"{NETNS_PREFIX}{self.instance}-p{index}"
        _ip("netns", "add", netns)
        self._created.append(netns)
        veth = f"v{index}"
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns, netns=self.node)
        _ip("link", "set", veth, "master", "br0", netns=self.node)
        _ip("link", "set", veth, "up", netns=self.node)
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0", netns=netns)
        _ip("link", "set", "eth0", "up", netns=netns)
        pod = Pod(name=name, ip=str(address), netns=netns)
        self.pods[name] = pod
        return pod

    def remove_pod(self, name: str) -> None:
        pod = self.pods.pop(name, None)
        if pod and pod.netns:
            delete_netns(pod.netns)
            self._created.remove(pod.netns)

    def teardown(self) -> None:
        for netns in reversed(self._created):
            delete_netns(netns)
        self._created.clear()
        self.pods.clear()


def delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def list_netns(prefix: str = NETNS_PREFIX) -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def netns_supported() -> tuple[bool, str]:
    """Whether this machine lets us create network namespaces, and why not."""
    if os.geteuid() != 0:
        return False, "not running as root (network namespaces need CAP_SYS_ADMIN)"
    probe = f"{NETNS_PREFIX}probe-{secrets.token_hex(3)}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return False, f"`ip netns add` failed: {done.stderr.strip() or 'ip not installed'}"
    delete_netns(probe)
    return True, ""


def make_network(mode: str, instance: str) -> Network:
    """``mode``: netns, loopback, or auto (netns where the machine allows it)."""
    if mode not in {"auto", "netns", "loopback"}:
        raise PlatformError(f"unknown network mode {mode!r}", "use --network auto, netns or loopback")
    if mode == "loopback":
        return Network(instance)
    ok, why = netns_supported()
    if not ok:
        if mode == "netns":
            raise PlatformError(f"network namespaces are unavailable: {why}", "run as root, or use --network loopback")
        return Network(instance)
    return NetnsNetwork(instance)
