"""Envoy Gateway 1.4.2 policy fields that shape the listener and each route, beyond routing and
security: a ClientTrafficPolicy's path, header and buffer settings, an HTTPRoute rule's
``timeouts``, a BackendTrafficPolicy's ``requestBuffer`` and an EnvoyExtensionPolicy's Lua scripts.

Each follows Envoy Gateway's translation (internal/gatewayapi and internal/xds/translator at
v1.4.2): the defaults below are the values it emits when a field is unset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inferbox.embedded.durations import parse_go_duration
from inferbox.embedded.quota import quantity
from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet

# ClientTrafficPolicy enum values -> the Envoy enum Envoy Gateway emits.
ESCAPED_SLASHES = {
    "KeepUnchanged": "KEEP_UNCHANGED",
    "RejectRequest": "REJECT_REQUEST",
    "UnescapeAndForward": "UNESCAPE_AND_FORWARD",
    "UnescapeAndRedirect": "UNESCAPE_AND_REDIRECT",
}
UNDERSCORES = {"Allow": "ALLOW", "RejectRequest": "REJECT_REQUEST", "DropHeader": "DROP_HEADER"}
# Envoy Gateway's listener buffer (tcpListenerPerConnectionBufferLimitBytes).
DEFAULT_BUFFER_LIMIT = 32768
# What an unparseable HTTPRoute timeout falls back to (Envoy Gateway's HTTPRequestTimeout).
FALLBACK_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class LuaPlan:
    """One Lua script of an EnvoyExtensionPolicy, named as Envoy Gateway names its filter."""

    name: str  # envoyextensionpolicy/<namespace>/<policy>/lua/<index>
    code: str


@dataclass(frozen=True)
class ListenerSettings:
    """What Envoy Gateway sets on the listener and its HTTP connection manager, with a
    ClientTrafficPolicy's overrides (its defaults when none)."""

    merge_slashes: bool = True
    escaped_slashes_action: str = "UNESCAPE_AND_REDIRECT"
    headers_with_underscores_action: str = "REJECT_REQUEST"
    buffer_limit_bytes: int = DEFAULT_BUFFER_LIMIT


def parse_quantity(value: Any, where: str) -> int:
    """Bytes in a Kubernetes quantity as Envoy Gateway's buffer fields accept it (``32Ki``, ``1M``, 4096):
    the official client's parser, then a whole, positive number of bytes."""
    try:
        amount = None if isinstance(value, bool) else quantity(value)
    except ValueError:
        amount = None
    if amount is None or amount <= 0 or amount != amount.to_integral_value():
        raise ManifestError(
            f"{where}: {value!r} is not a quantity Envoy Gateway accepts here",
            "write a whole number of bytes, optionally with a suffix: 32Ki, 4Mi, 1M",
        )
    return int(amount)


def _targets(policy: K8sObject, kind: str, name: str) -> bool:
    refs = list(policy.spec.get("targetRefs") or [])
    if "targetRef" in policy.spec:
        refs.append(policy.spec["targetRef"])
    return any(t.get("kind") == kind and t.get("name") == name for t in refs)


def policies_in_force(kind: str, route: K8sObject, gateway: K8sObject, manifests: ManifestSet) -> list[K8sObject]:
    """The policies of ``kind`` that apply to a route: those targeting it, else those targeting its
    Gateway (Envoy Gateway: the more specific target wins, the other is overridden)."""
    found = manifests.of_kind(kind)
    on_route = [p for p in found if p.namespace == route.namespace and _targets(p, "HTTPRoute", route.name)]
    on_gateway = [p for p in found if p.namespace == gateway.namespace and _targets(p, "Gateway", gateway.name)]
    return on_route or on_gateway


def listener_settings(gateway: K8sObject, manifests: ManifestSet) -> ListenerSettings:
    """A ClientTrafficPolicy's path, underscore and buffer settings, on Envoy Gateway's defaults."""
    ctps = [
        p
        for p in manifests.of_kind("ClientTrafficPolicy")
        if p.namespace == gateway.namespace and _targets(p, "Gateway", gateway.name)
    ]
    set_fields = [
        p for p in ctps if {"path", "connection"} & set(p.spec) or "withUnderscoresAction" in p.spec.get("headers", {})
    ]
    if len(set_fields) > 1:
        raise ManifestError(
            f"{gateway.ref} is targeted by {len(set_fields)} ClientTrafficPolicies that set listener options "
            f"({', '.join(p.name for p in set_fields)})",
            "Envoy Gateway applies one ClientTrafficPolicy per Gateway (the others are Conflicted); merge them",
        )
    if not set_fields:
        return ListenerSettings()
    policy = set_fields[0]
    path = policy.spec.get("path") or {}
    headers = policy.spec.get("headers") or {}
    limit = (policy.spec.get("connection") or {}).get("bufferLimit")
    return ListenerSettings(
        merge_slashes=not bool(path.get("disableMergeSlashes", False)),
        escaped_slashes_action=ESCAPED_SLASHES[path.get("escapedSlashesAction", "UnescapeAndRedirect")],
        headers_with_underscores_action=UNDERSCORES[headers.get("withUnderscoresAction", "RejectRequest")],
        buffer_limit_bytes=(
            DEFAULT_BUFFER_LIMIT
            if limit is None
            else parse_quantity(limit, f"{policy.source}: {policy.ref}: connection.bufferLimit")
        ),
    )


def route_timeout(rule: dict[str, Any]) -> float | None:
    """An HTTPRoute rule's effective timeout as Envoy Gateway 1.4.2 sets it: ``request``, overwritten
    by ``backendRequest`` (the rule has no retry in the declared subset); an unparseable value
    falls back to 15 s; none at all leaves Envoy's own route default."""
    timeouts = rule.get("timeouts")
    if not timeouts:
        return None
    timeout = None
    for key in ("request", "backendRequest"):
        if key in timeouts:
            try:
                timeout = parse_go_duration(str(timeouts[key]))
            except ValueError:
                timeout = FALLBACK_TIMEOUT_S
    return timeout


def request_buffer_for(route: K8sObject, gateway: K8sObject, manifests: ManifestSet) -> int | None:
    """The requestBuffer.limit of the BackendTrafficPolicy in force on the route, in bytes."""
    for policy in policies_in_force("BackendTrafficPolicy", route, gateway, manifests):
        buffer = policy.spec.get("requestBuffer")
        if buffer is not None:
            if "limit" not in buffer:
                raise ManifestError(f"{policy.source}: {policy.ref}: requestBuffer needs a limit", "add limit")
            return parse_quantity(buffer["limit"], f"{policy.source}: {policy.ref}: requestBuffer.limit")
    return None


def _check_lua(policy: K8sObject, index: int, code: str) -> None:
    # Envoy Gateway refuses a script that defines neither entry point (its Lua validator's first
    # check); Envoy itself compiles the script when the embedded gateway starts.
    if "envoy_on_request" not in code and "envoy_on_response" not in code:
        raise ManifestError(
            f"{policy.source}: {policy.ref}: lua[{index}] defines neither envoy_on_request nor envoy_on_response",
            "define envoy_on_request(request_handle) (and/or envoy_on_response)",
        )


def luas_for(route: K8sObject, gateway: K8sObject, manifests: ManifestSet) -> tuple[LuaPlan, ...]:
    """The Lua scripts of the EnvoyExtensionPolicy in force on the route, in Envoy Gateway's names."""
    found: list[LuaPlan] = []
    for policy in policies_in_force("EnvoyExtensionPolicy", route, gateway, manifests):
        for index, lua in enumerate(policy.spec.get("lua") or ()):
            code = str(lua.get("inline", ""))
            _check_lua(policy, index, code)
            found.append(LuaPlan(f"envoyextensionpolicy/{policy.namespace}/{policy.name}/lua/{index}", code))
    return tuple(found)
