"""What the manifests' policies imply for one request, computed without any target.

This is the oracle of the policy-engine check (Cyclonus's idea applied to Kubernetes NetworkPolicy
and Istio security): probes are sent on the target and each result is compared with the verdict
computed here. It is written apart from the embedded target's translation on purpose, so a target
that enforces the same manifests differently (a wrong filter chain, a CA check left out, a rule
translated wrongly) shows up as a difference.

The stages follow a request's path into a workload: NetworkPolicy (can it connect?), the sidecar's
PeerAuthentication mode (is the transport acceptable?), RequestAuthentication (is a presented token
valid?), AuthorizationPolicy (is the request allowed?). Tokens are judged by their claims only: the
probes send tokens signed by the platform's issuer key, so the signature is assumed valid.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from inferbox.manifests import K8sObject, ManifestSet
from inferbox.mesh import Outcome, SourcePlace, Transport, Workload

MESH_ROOT = "istio-system"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    port: int
    transport: Transport
    claims: dict[str, Any] | None = None  # the token's payload; None without a token
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    why: str


def _labels_match(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in ((selector or {}).get("matchLabels") or {}).items())


def _namespace_labels(manifests: ManifestSet, namespace: str) -> dict[str, str]:
    obj = manifests.get("Namespace", namespace)
    return {**(obj.labels if obj else {}), "kubernetes.io/metadata.name": namespace}


# -- NetworkPolicy --------------------------------------------------------------------------------
def _peer_matches(manifests: ManifestSet, policy: K8sObject, peer: dict[str, Any], source: SourcePlace) -> bool:
    if "namespaceSelector" in peer:
        if not _labels_match(peer["namespaceSelector"], _namespace_labels(manifests, source.namespace)):
            return False
    elif source.namespace != policy.namespace:
        return False
    return "podSelector" not in peer or _labels_match(peer["podSelector"], source.labels)


def network_allows(manifests: ManifestSet, source: SourcePlace, workload: Workload, port: int) -> tuple[bool, str]:
    selecting = [
        p
        for p in manifests.of_kind("NetworkPolicy")
        if p.namespace == workload.namespace
        and "Ingress" in (p.spec.get("policyTypes") or ["Ingress"])
        and _labels_match(p.spec.get("podSelector"), workload.labels)
    ]
    if not selecting:
        return True, "no NetworkPolicy selects the workload"
    for policy in selecting:
        for index, rule in enumerate(policy.spec.get("ingress") or []):
            ports = [int(p["port"]) for p in rule.get("ports") or []]
            if ports and port not in ports:
                continue
            peers = rule.get("from") or []
            if not peers or any(_peer_matches(manifests, policy, peer, source) for peer in peers):
                return True, f"NetworkPolicy {policy.namespace}/{policy.name} ingress[{index}]"
    return False, "isolated by " + ", ".join(f"{p.namespace}/{p.name}" for p in selecting)


# -- Istio ----------------------------------------------------------------------------------------
def _applies(policy: K8sObject, workload: Workload) -> bool:
    if policy.namespace == MESH_ROOT and "selector" not in policy.spec:
        return True
    return policy.namespace == workload.namespace and _labels_match(policy.spec.get("selector"), workload.labels)


def has_sidecar(manifests: ManifestSet, workload: Workload) -> bool:
    ns = manifests.get("Namespace", workload.namespace)
    return bool(ns and ns.labels.get("istio-injection") == "enabled")


def peer_mode(manifests: ManifestSet, workload: Workload) -> str:
    policies = manifests.of_kind("PeerAuthentication")
    ordered = (
        [p for p in policies if p.namespace == workload.namespace and "selector" in p.spec and _applies(p, workload)]
        + [p for p in policies if p.namespace == workload.namespace and "selector" not in p.spec]
        + [p for p in policies if p.namespace == MESH_ROOT and "selector" not in p.spec]
    )
    for policy in ordered:
        mode = str((policy.spec.get("mtls") or {}).get("mode", "UNSET"))
        if mode != "UNSET":
            return mode
    return "PERMISSIVE"


def _istio_value(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern == "*":
        return value != ""
    return fnmatch.fnmatchcase(value, pattern) if pattern.startswith("*") or pattern.endswith("*") else value == pattern


def _principal(identity: str | None) -> str | None:
    return identity.removeprefix("spiffe://") if identity else None


def _namespace_of(identity: str | None) -> str | None:
    principal = _principal(identity)
    if not principal or "/ns/" not in principal:
        return None
    return principal.split("/ns/", 1)[1].split("/", 1)[0]


def _claim(claims: dict[str, Any] | None, path: list[str]) -> list[str]:
    node: Any = claims
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    if isinstance(node, list):
        return [str(v) for v in node]
    return [str(node)]


def _field(values: list[str] | None, actual: list[str], negate: bool = False) -> bool:
    if values is None:
        return True
    hit = any(_istio_value(p, a) for p in values for a in actual)
    return not hit if negate else hit


def _source_matches(source: dict[str, Any], identity: str | None, claims: dict[str, Any] | None) -> bool:
    principal = [p for p in [_principal(identity)] if p]
    namespace = [n for n in [_namespace_of(identity)] if n]
    request_principal = (
        [f"{_claim(claims, ['iss'])[0]}/{_claim(claims, ['sub'])[0]}"]
        if claims and _claim(claims, ["iss"]) and _claim(claims, ["sub"])
        else []
    )
    return (
        _field(source.get("principals"), principal)
        and _field(source.get("notPrincipals"), principal, negate=True)
        and _field(source.get("namespaces"), namespace)
        and _field(source.get("notNamespaces"), namespace, negate=True)
        and _field(source.get("requestPrincipals"), request_principal)
        and _field(source.get("notRequestPrincipals"), request_principal, negate=True)
    )


def _operation_matches(operation: dict[str, Any], request: Request) -> bool:
    return (
        _field(operation.get("methods"), [request.method])
        and _field(operation.get("notMethods"), [request.method], negate=True)
        and _field(operation.get("paths"), [request.path])
        and _field(operation.get("notPaths"), [request.path], negate=True)
        and _field(operation.get("ports"), [str(request.port)])
        and _field(operation.get("notPorts"), [str(request.port)], negate=True)
    )


def _condition_matches(condition: dict[str, Any], identity: str | None, request: Request) -> bool:
    key = str(condition["key"])
    if key.startswith("request.auth.claims["):
        actual = _claim(request.claims, [p.rstrip("]") for p in key.removeprefix("request.auth.claims[").split("[")])
    elif key.startswith("request.headers["):
        name = key.removeprefix("request.headers[").rstrip("]").lower()
        actual = [v for k, v in request.headers.items() if k.lower() == name]
    elif key == "source.principal":
        actual = [p for p in [_principal(identity)] if p]
    elif key == "source.namespace":
        actual = [n for n in [_namespace_of(identity)] if n]
    else:
        raise ValueError(f"the evaluator does not know condition key {key!r}")
    return _field(condition.get("values"), actual) and _field(condition.get("notValues"), actual, negate=True)


def _rule_matches(rule: dict[str, Any], identity: str | None, request: Request) -> bool:
    sources = [f.get("source") or {} for f in rule.get("from") or []]
    operations = [t.get("operation") or {} for t in rule.get("to") or []]
    return (
        (not sources or any(_source_matches(s, identity, request.claims) for s in sources))
        and (not operations or any(_operation_matches(o, request) for o in operations))
        and all(_condition_matches(c, identity, request) for c in rule.get("when") or [])
    )


def _token_valid(manifests: ManifestSet, workload: Workload, claims: dict[str, Any]) -> bool:
    for policy in manifests.of_kind("RequestAuthentication"):
        if not _applies(policy, workload):
            continue
        for rule in policy.spec.get("jwtRules") or []:
            if rule.get("issuer") and claims.get("iss") != rule["issuer"]:
                continue
            audiences = rule.get("audiences") or []
            token_aud = _claim(claims, ["aud"])
            if audiences and not set(audiences) & set(token_aud):
                continue
            return True
    return False


# Complex on purpose: Istio's evaluation order in one place, to read against its docs.
def expected(manifests: ManifestSet, source: SourcePlace, workload: Workload, request: Request) -> Verdict:  # noqa: C901
    """The outcome the manifests imply for ``request`` from ``source`` to ``workload``."""
    allowed, why = network_allows(manifests, source, workload, request.port)
    if not allowed:
        return Verdict(Outcome.NETWORK_DENIED, why)
    if not has_sidecar(manifests, workload):
        if request.transport in (Transport.MESH, Transport.PLAINTEXT):
            return Verdict(Outcome.ANSWERED, "no sidecar: plaintext reaches the application")
        return Verdict(Outcome.TRANSPORT_REFUSED, "no sidecar: the application does not speak TLS")
    # What the sidecar sees of the peer: a verified identity only over mTLS with a mesh certificate.
    tls = request.transport is Transport.FOREIGN_CA or (request.transport is Transport.MESH and source.identity)
    mode = peer_mode(manifests, workload)
    if not tls and mode == "STRICT":
        return Verdict(Outcome.TRANSPORT_REFUSED, "STRICT mTLS refuses plaintext")
    if tls and mode == "DISABLE":
        return Verdict(Outcome.TRANSPORT_REFUSED, "mTLS DISABLE: the sidecar speaks plaintext only")
    if request.transport is Transport.FOREIGN_CA:
        return Verdict(Outcome.TRANSPORT_REFUSED, "the client certificate is not signed by the mesh CA")
    identity = source.identity if tls else None
    jwt_policies = [p for p in manifests.of_kind("RequestAuthentication") if _applies(p, workload)]
    if request.claims is not None and jwt_policies and not _token_valid(manifests, workload, request.claims):
        return Verdict(Outcome.AUTHN_DENIED, "the token matches no jwtRule (issuer/audience)")
    claims = request.claims if jwt_policies else None
    effective = Request(request.method, request.path, request.port, request.transport, claims, request.headers)
    authz = [p for p in manifests.of_kind("AuthorizationPolicy") if _applies(p, workload)]
    for policy in authz:
        if policy.spec.get("action") == "DENY" and any(
            _rule_matches(r, identity, effective) for r in policy.spec.get("rules") or []
        ):
            return Verdict(Outcome.AUTHZ_DENIED, f"DENY policy {policy.namespace}/{policy.name}")
    allows = [p for p in authz if p.spec.get("action", "ALLOW") == "ALLOW"]
    if not allows:
        return Verdict(Outcome.ANSWERED, "no ALLOW policy applies")
    for policy in allows:
        for index, rule in enumerate(policy.spec.get("rules") or []):
            if _rule_matches(rule, identity, effective):
                return Verdict(Outcome.ANSWERED, f"ALLOW {policy.namespace}/{policy.name} rules[{index}]")
    return Verdict(Outcome.AUTHZ_DENIED, "no ALLOW rule matches")
