"""NetworkPolicy on the embedded target: nftables rules inside each pod's network namespace.

Kubernetes semantics for the declared subset (ingress policies, label selectors, TCP ports):

- a pod is isolated for ingress once any NetworkPolicy of its namespace selects it; then a
  connection is allowed only if some rule of some selecting policy allows it (rules add up);
- a rule's ``from`` peers are alternatives: ``podSelector`` alone means pods of the policy's
  namespace, ``namespaceSelector`` alone every pod of matching namespaces, both together pods matching
  the pod selector in matching namespaces; no ``from`` means any source; no ``ports`` means any port;
- namespaces carry the automatic label ``kubernetes.io/metadata.name``.

Rules are computed from every known pod's address and labels and loaded with ``nft -f`` into the
pod's own namespace (a table replaced atomically), so they vanish with the namespace. Replies to
the pod's own connections and loopback traffic are always accepted; anything else not allowed is
dropped, as most CNI plugins do (the sender sees a timeout).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from inferbox.errors import PlatformError
from inferbox.manifests import K8sObject, ManifestSet

TABLE = "inferbox_netpol"
NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class NetPod:
    namespace: str
    name: str
    ip: str
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    netns: str | None = None


@dataclass(frozen=True)
class Allowance:
    sources: tuple[str, ...] | None  # addresses; None: any source
    ports: tuple[int, ...] | None  # None: any port


def namespace_labels(manifests: ManifestSet, namespace: str) -> dict[str, str]:
    ns = manifests.get("Namespace", namespace)
    labels = dict(ns.labels) if ns else {}
    labels[NAME_LABEL] = namespace
    return labels


def _matches(selector: dict[str, object] | None, labels: dict[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    assert isinstance(wanted, dict)
    return all(labels.get(k) == v for k, v in wanted.items())


def _ingress_policy(policy: K8sObject) -> bool:
    types = policy.spec.get("policyTypes")
    return types is None or "Ingress" in types


def selecting_policies(manifests: ManifestSet, pod: NetPod) -> list[K8sObject]:
    return [
        p
        for p in manifests.of_kind("NetworkPolicy")
        if p.namespace == pod.namespace and _ingress_policy(p) and _matches(p.spec.get("podSelector"), pod.labels)
    ]


def _peer_pods(
    manifests: ManifestSet, policy: K8sObject, peer: dict[str, object], pods: Iterable[NetPod]
) -> list[NetPod]:
    found = []
    for other in pods:
        if "namespaceSelector" in peer:
            if not _matches(peer["namespaceSelector"], namespace_labels(manifests, other.namespace)):  # type: ignore[arg-type]
                continue
        elif other.namespace != policy.namespace:
            continue
        if "podSelector" in peer and not _matches(peer["podSelector"], other.labels):  # type: ignore[arg-type]
            continue
        found.append(other)
    return found


def allowances(manifests: ManifestSet, pod: NetPod, pods: list[NetPod]) -> list[Allowance] | None:
    """What may reach ``pod``; None when no policy selects it (not isolated)."""
    policies = selecting_policies(manifests, pod)
    if not policies:
        return None
    allowed: list[Allowance] = []
    for policy in policies:
        for rule in policy.spec.get("ingress") or []:
            ports = tuple(int(p["port"]) for p in rule["ports"]) if rule.get("ports") else None
            if not rule.get("from"):
                allowed.append(Allowance(None, ports))
                continue
            sources = sorted({o.ip for peer in rule["from"] for o in _peer_pods(manifests, policy, peer, pods)})
            if sources:
                allowed.append(Allowance(tuple(sources), ports))
    return allowed


def ruleset(allowed: list[Allowance]) -> str:
    """The nft script that isolates one pod: replaces the table atomically."""
    lines = []
    for allowance in allowed:
        match = []
        if allowance.sources is not None:
            match.append("ip saddr { " + ", ".join(allowance.sources) + " }")
        if allowance.ports is not None:
            match.append("tcp dport { " + ", ".join(str(p) for p in allowance.ports) + " }")
        lines.append(f"    {' '.join(match) or 'meta l4proto tcp'} accept")
    body = "\n".join(lines)
    return (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        "  chain ingress {\n"
        "    type filter hook input priority 0; policy drop;\n"
        "    ct state established,related accept\n"
        '    iif "lo" accept\n'
        f"{body}\n"
        "  }\n"
        "}\n"
    )


def nft_available() -> bool:
    return shutil.which("nft") is not None or any(shutil.which(p) for p in ("/usr/sbin/nft", "/sbin/nft"))


def nft_binary() -> str:
    for candidate in ("nft", "/usr/sbin/nft", "/sbin/nft"):
        found = shutil.which(candidate)
        if found:
            return found
    raise PlatformError("the nft command is not installed", "install nftables: apt-get install -y nftables")


def apply(netns: str, script: str, what: str = "NetworkPolicy rules") -> None:
    """Loads an nftables script into the namespace ``netns``; ``what`` names it in the error."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, nft_binary(), "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PlatformError(
            f"loading {what} into {netns} failed: {done.stderr.strip()}",
            "check that nftables works in network namespaces (`nft list ruleset` as root)",
        )


def enforce(
    manifests: ManifestSet, pods: list[NetPod], loaded: dict[str, str] | None = None
) -> dict[str, list[Allowance] | None]:
    """Loads (or removes) every namespaced pod's rules; returns what each pod allows, by pod name.

    ``loaded`` (namespace -> the script last loaded there, kept by the caller) skips a pod whose rules
    are what it already has: a pod's arrival changes only the rules of the pods it is a peer of, and
    each load is a process of its own."""
    result: dict[str, list[Allowance] | None] = {}
    for pod in pods:
        if pod.netns is None:
            continue
        allowed = allowances(manifests, pod, pods)
        result[pod.name] = allowed
        script = f"table inet {TABLE}\ndelete table inet {TABLE}\n" if allowed is None else ruleset(allowed)
        if loaded is not None and loaded.get(pod.netns) == script:
            continue
        apply(pod.netns, script)
        if loaded is not None:
            loaded[pod.netns] = script
    return result
