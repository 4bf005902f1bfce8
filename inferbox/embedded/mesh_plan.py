"""What a workload's sidecar must enforce, derived from Istio's security objects (no Envoy yet).

Istio semantics for the declared subset:

- sidecars are injected into pods of namespaces labelled ``istio-injection: enabled``;
- ``PeerAuthentication``: a policy with a matching selector in the workload's namespace wins over
  one without a selector in that namespace, which wins over one without a selector in the root
  namespace (``istio-system``); ``UNSET`` inherits; nothing at all means PERMISSIVE;
- ``RequestAuthentication``: every matching policy's ``jwtRules`` apply; a request with an invalid
  token is refused (401), a request without one passes without a request identity;
- ``AuthorizationPolicy``: policies in the root namespace apply to every workload, policies in the
  workload's namespace when their selector matches (or they have none). DENY policies are checked
  first; then, if any ALLOW policy applies, a request must match one of its rules (403 otherwise).
  Within a rule ``from``, ``to`` and ``when`` must all match; sources, operations and condition
  values are alternatives; every field set inside one source or operation must match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from inferbox.embedded.gateway_plan import TokenLocations
from inferbox.embedded.knative_defaults import RevisionTimeouts, revision_timeouts
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet

ROOT_NAMESPACE = "istio-system"
ISVC_LABEL = "serving.kserve.io/inferenceservice"  # KServe labels a model's pods with it
INJECTION_LABEL = "istio-injection"
DEFAULT_MTLS = "PERMISSIVE"
CLAIM_KEY = re.compile(r"^request\.auth\.claims\[([^\]]+)\](?:\[([^\]]+)\])*$")
HEADER_KEY = re.compile(r"^request\.headers\[([^\]]+)\]$")
SOURCE_KEYS = {"source.principal": "principals", "source.namespace": "namespaces"}


@dataclass(frozen=True)
class PodMeta:
    """What Istio and Kubernetes policies know about a pod."""

    namespace: str
    name: str
    service_account: str
    labels: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class JwtRule:
    key: str  # <namespace>/<policy>/<index>
    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str
    forward: bool
    claim_to_headers: tuple[tuple[str, str], ...]  # (header, claim)
    # fromHeaders / fromParams / fromCookies (None: none set, so Envoy's default locations apply).
    locations: TokenLocations | None = None


@dataclass(frozen=True)
class Condition:
    """A ``when`` condition: kind is claim (path into the token payload), header, principals or namespaces."""

    kind: str
    name: tuple[str, ...]
    values: tuple[str, ...]
    negated: bool


@dataclass(frozen=True)
class Source:
    principals: tuple[str, ...] | None = None
    not_principals: tuple[str, ...] | None = None
    namespaces: tuple[str, ...] | None = None
    not_namespaces: tuple[str, ...] | None = None
    request_principals: tuple[str, ...] | None = None
    not_request_principals: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Operation:
    methods: tuple[str, ...] | None = None
    not_methods: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    not_paths: tuple[str, ...] | None = None
    ports: tuple[int, ...] | None = None
    not_ports: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Rule:
    sources: tuple[Source, ...]  # empty: any source
    operations: tuple[Operation, ...]  # empty: any operation
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Policy:
    name: str  # namespace/name
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class SidecarPlan:
    mtls_mode: str  # STRICT, PERMISSIVE or DISABLE
    jwt_rules: tuple[JwtRule, ...]
    deny: tuple[Policy, ...]
    allow: tuple[Policy, ...] | None  # None: no ALLOW policy applies, so nothing is denied by default
    # A model pod's request limits as Knative's queue-proxy applies them (None: not a model pod).
    revision_timeouts: RevisionTimeouts | None = None


def _selects(policy: K8sObject, pod: PodMeta) -> bool:
    selector = (policy.spec.get("selector") or {}).get("matchLabels")
    if selector is None:
        return True
    return all(pod.labels.get(k) == v for k, v in selector.items())


def injected(manifests: ManifestSet, namespace: str) -> bool:
    ns = manifests.get("Namespace", namespace)
    return bool(ns and ns.labels.get(INJECTION_LABEL) == "enabled")


def mtls_mode(manifests: ManifestSet, pod: PodMeta) -> str:
    peer = manifests.of_kind("PeerAuthentication")
    layers = [
        [p for p in peer if p.namespace == pod.namespace and "selector" in p.spec and _selects(p, pod)],
        [p for p in peer if p.namespace == pod.namespace and "selector" not in p.spec],
        [p for p in peer if p.namespace == ROOT_NAMESPACE and "selector" not in p.spec],
    ]
    for layer in layers:
        for policy in sorted(layer, key=lambda p: p.name):  # Istio takes the oldest; names keep it stable here
            mode = (policy.spec.get("mtls") or {}).get("mode", "UNSET")
            if mode != "UNSET":
                return str(mode)
    return DEFAULT_MTLS


def _strings(raw: dict[str, Any], key: str) -> tuple[str, ...] | None:
    return tuple(str(v) for v in raw[key]) if key in raw else None


def _ports(raw: dict[str, Any], key: str, where: str) -> tuple[int, ...] | None:
    if key not in raw:
        return None
    try:
        return tuple(int(v) for v in raw[key])
    except ValueError as exc:
        raise ManifestError(f"{where}: {key} must be port numbers", "write ports as numbers in quotes") from exc


def _condition(raw: dict[str, Any], where: str) -> list[Condition]:
    key = str(raw["key"])
    claim, header = CLAIM_KEY.match(key), HEADER_KEY.match(key)
    if claim:
        kind, name = "claim", tuple(re.findall(r"\[([^\]]+)\]", key))
    elif header:
        kind, name = "header", (header.group(1).lower(),)
    elif key in SOURCE_KEYS:
        kind, name = SOURCE_KEYS[key], ()
    else:
        raise ManifestError(
            f"{where}: condition key {key!r} is not interpreted by the embedded target",
            "use request.auth.claims[...], request.headers[...], source.principal or source.namespace",
        )
    found = []
    if "values" in raw:
        found.append(Condition(kind, name, tuple(str(v) for v in raw["values"]), False))
    if "notValues" in raw:
        found.append(Condition(kind, name, tuple(str(v) for v in raw["notValues"]), True))
    if not found:
        raise ManifestError(f"{where}: condition {key!r} has neither values nor notValues", "add values")
    return found


def parse_policy(policy: K8sObject) -> Policy:
    where = f"{policy.source}: {policy.ref}"
    rules = []
    for index, raw in enumerate(policy.spec.get("rules") or []):
        rule_where = f"{where} rules[{index}]"
        sources = tuple(
            Source(
                principals=_strings(s.get("source") or {}, "principals"),
                not_principals=_strings(s.get("source") or {}, "notPrincipals"),
                namespaces=_strings(s.get("source") or {}, "namespaces"),
                not_namespaces=_strings(s.get("source") or {}, "notNamespaces"),
                request_principals=_strings(s.get("source") or {}, "requestPrincipals"),
                not_request_principals=_strings(s.get("source") or {}, "notRequestPrincipals"),
            )
            for s in raw.get("from") or []
        )
        operations = tuple(
            Operation(
                methods=_strings(o.get("operation") or {}, "methods"),
                not_methods=_strings(o.get("operation") or {}, "notMethods"),
                paths=_strings(o.get("operation") or {}, "paths"),
                not_paths=_strings(o.get("operation") or {}, "notPaths"),
                ports=_ports(o.get("operation") or {}, "ports", rule_where),
                not_ports=_ports(o.get("operation") or {}, "notPorts", rule_where),
            )
            for o in raw.get("to") or []
        )
        conditions = tuple(c for w in raw.get("when") or [] for c in _condition(w, rule_where))
        rules.append(Rule(sources, operations, conditions))
    return Policy(f"{policy.namespace}/{policy.name}", tuple(rules))


def _applies(policy: K8sObject, pod: PodMeta) -> bool:
    if policy.namespace == ROOT_NAMESPACE and "selector" not in policy.spec:
        return True
    return policy.namespace == pod.namespace and _selects(policy, pod)


def _locations(raw: dict[str, Any]) -> TokenLocations | None:
    """Istio copies only the token locations a rule sets into the provider."""
    if not {"fromHeaders", "fromParams", "fromCookies"} & set(raw):
        return None
    return TokenLocations(
        headers=tuple((h["name"], h.get("prefix", "")) for h in raw.get("fromHeaders") or ()),
        cookies=tuple(raw.get("fromCookies") or ()),
        params=tuple(raw.get("fromParams") or ()),
    )


def jwt_rules(manifests: ManifestSet, pod: PodMeta) -> tuple[JwtRule, ...]:
    rules = []
    for policy in manifests.of_kind("RequestAuthentication"):
        if not _applies(policy, pod):
            continue
        for index, raw in enumerate(policy.spec.get("jwtRules") or []):
            if "jwksUri" not in raw:
                raise ManifestError(
                    f"{policy.source}: {policy.ref}: jwtRules[{index}] has no jwksUri",
                    "the embedded target fetches keys from jwksUri (OpenID discovery is not supported)",
                )
            rules.append(
                JwtRule(
                    key=f"{policy.namespace}/{policy.name}/{index}",
                    issuer=str(raw.get("issuer", "")),
                    audiences=tuple(raw.get("audiences") or ()),
                    jwks_uri=str(raw["jwksUri"]),
                    forward=bool(raw.get("forwardOriginalToken", False)),
                    claim_to_headers=tuple((c["header"], c["claim"]) for c in raw.get("outputClaimToHeaders") or ()),
                    locations=_locations(raw),
                )
            )
    return tuple(rules)


def plan_sidecar(manifests: ManifestSet, pod: PodMeta) -> SidecarPlan:
    policies = [p for p in manifests.of_kind("AuthorizationPolicy") if _applies(p, pod)]
    deny = tuple(parse_policy(p) for p in policies if p.spec.get("action", "ALLOW") == "DENY")
    allows = [parse_policy(p) for p in policies if p.spec.get("action", "ALLOW") == "ALLOW"]
    return SidecarPlan(
        mtls_mode=mtls_mode(manifests, pod),
        jwt_rules=jwt_rules(manifests, pod),
        deny=deny,
        allow=tuple(allows) if allows else None,
        revision_timeouts=revision_timeouts(manifests) if ISVC_LABEL in pod.labels else None,
    )


def check_mesh_policies(manifests: ManifestSet) -> None:
    """Parses every Istio policy once, so an uninterpretable condition fails before anything starts."""
    for policy in manifests.of_kind("AuthorizationPolicy"):
        parse_policy(policy)
    for policy in manifests.of_kind("RequestAuthentication"):
        for index, raw in enumerate(policy.spec.get("jwtRules") or []):
            if "jwksUri" not in raw:
                raise ManifestError(
                    f"{policy.source}: {policy.ref}: jwtRules[{index}] has no jwksUri",
                    "the embedded target fetches keys from jwksUri (OpenID discovery is not supported)",
                )
