"""Which parts of a running embedded platform a change of manifests (and knobs) touches.

A running platform can take a new manifest set in place when every object that differs belongs to
a part that can be restarted on its own, and every knob that differs is read only by such a part;
then only those parts restart and everything else (model replicas, the JWT server, the mesh,
Prometheus) keeps running. Otherwise the change needs a new platform. This is what lets the mutant
run share one platform among mutants that only change, say, the gateway's routes or policies.

Pure: no process is touched here (``EmbeddedPlatform.reconfigure`` applies the answer).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from inferbox.embedded.knobs import Knobs
from inferbox.manifests import ManifestSet


@dataclass(frozen=True)
class Part:
    """A part of the platform that restarts on its own, and what only it reads."""

    name: str
    kinds: frozenset[str]
    knobs: frozenset[str]  # Knobs field names


# The gateway (one Envoy process) is the only reader of these kinds and knobs: the serving plane
# renders its routes from the gateway plan, and its endpoint files survive a restart. EnvoyProxy and
# GatewayClass also configure telemetry (Prometheus scrapes, tracing), so they are not here.
GATEWAY = Part(
    "gateway",
    frozenset(
        {"Gateway", "HTTPRoute", "ReferenceGrant", "SecurityPolicy", "BackendTrafficPolicy", "ClientTrafficPolicy"}
    ),
    frozenset({"jwt_clock_skew_s", "canary_weight_offset"}),
)
PARTS: tuple[Part, ...] = (GATEWAY,)


@dataclass(frozen=True)
class Change:
    kinds: frozenset[str]  # kinds of the objects added, removed or changed
    knobs: frozenset[str]  # knobs whose value changed

    def parts(self) -> frozenset[str] | None:
        """The parts to restart; None when something changed that no part owns alone."""
        owned_kinds = set().union(*(p.kinds for p in PARTS))
        owned_knobs = set().union(*(p.knobs for p in PARTS))
        if self.kinds - owned_kinds or self.knobs - owned_knobs:
            return None
        return frozenset(p.name for p in PARTS if p.kinds & self.kinds or p.knobs & self.knobs)

    def unowned(self) -> list[str]:
        owned_kinds = set().union(*(p.kinds for p in PARTS))
        owned_knobs = set().union(*(p.knobs for p in PARTS))
        return sorted(self.kinds - owned_kinds) + [f"knob {k}" for k in sorted(self.knobs - owned_knobs)]


def _by_key(manifests: ManifestSet) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    return {(o.kind, o.namespace, o.name): o.body for o in manifests}


def change_between(old: ManifestSet, new: ManifestSet, old_knobs: Knobs, new_knobs: Knobs) -> Change:
    before, after = _by_key(old), _by_key(new)
    kinds = {key[0] for key in before.keys() ^ after.keys()}
    kinds |= {key[0] for key in before.keys() & after.keys() if before[key] != after[key]}
    knobs = {f.name for f in fields(Knobs) if getattr(old_knobs, f.name) != getattr(new_knobs, f.name)}
    return Change(frozenset(kinds), frozenset(knobs))
