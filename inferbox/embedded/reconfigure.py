"""Which parts of a running embedded platform a change of manifests (and knobs) touches.

A running platform can take a new manifest set in place when every object that differs belongs to
a part that can be changed on its own, and every knob that differs is read only by such a part;
then only those parts change and everything else (model replicas, the JWT server, the mesh,
Prometheus) keeps running. Otherwise the change needs a new platform. This is what lets the mutant
run share platforms among mutants that only change, say, the gateway's routes or policies.

Pure: no process is touched here (``EmbeddedPlatform.reconfigure`` applies the answer).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from inferbox.embedded.knobs import Knobs
from inferbox.manifests import ManifestSet
from inferbox.serving_plan import CONFIG_AUTOSCALER

Key = tuple[str, str | None, str]  # kind, namespace, name
Body = dict[str, Any] | None  # None: the object does not exist on that side


@dataclass(frozen=True)
class Part:
    """A part of the platform that changes on its own: the object changes it alone reads, and the
    knobs (Knobs field names) only it reads."""

    name: str
    owns: Callable[[Key, Body, Body], bool]
    knobs: frozenset[str]


# The gateway (one Envoy process, restarted) alone reads these kinds: the serving plane renders its
# routes from the gateway plan, and its endpoint files survive a restart. EnvoyProxy and GatewayClass
# also configure telemetry (Prometheus scrapes, tracing), so they are not here.
GATEWAY_KINDS = frozenset(
    {"Gateway", "HTTPRoute", "ReferenceGrant", "SecurityPolicy", "BackendTrafficPolicy", "ClientTrafficPolicy"}
)
GATEWAY = Part(
    "gateway", lambda key, _old, _new: key[0] in GATEWAY_KINDS, frozenset({"jwt_clock_skew_s", "canary_weight_offset"})
)

# Autoscaling settings (Knative's config-autoscaler, an InferenceService's bounds, scale target and
# autoscaling annotations) are read by the autoscaler's deciders alone, and the activator's knob by
# the activator: both change in place, replicas keep running. Any other change of an
# InferenceService (its container, its canary) changes its replicas or revisions: not here.
AUTOSCALING_FIELDS = ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric")
AUTOSCALING_ANNOTATION = "autoscaling.knative.dev/"


def _without_autoscaling(body: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    predictor = (out.get("spec") or {}).get("predictor") or {}
    for name in AUTOSCALING_FIELDS:
        predictor.pop(name, None)
    annotations = (out.get("metadata") or {}).get("annotations") or {}
    for name in [a for a in annotations if a.startswith(AUTOSCALING_ANNOTATION)]:
        annotations.pop(name)
    return out


def _autoscaling_only(key: Key, old: Body, new: Body) -> bool:
    if (key[1], key[2]) == CONFIG_AUTOSCALER and key[0] == "ConfigMap":
        return old is not None and new is not None
    if key[0] != "InferenceService" or old is None or new is None:
        return False
    return _without_autoscaling(old) == _without_autoscaling(new)


AUTOSCALER = Part("autoscaler", _autoscaling_only, frozenset({"activator_drops_held_requests"}))
PARTS: tuple[Part, ...] = (GATEWAY, AUTOSCALER)


@dataclass(frozen=True)
class Change:
    objects: tuple[tuple[Key, Body, Body], ...]  # every object added, removed or changed
    knobs: frozenset[str]  # knobs whose value changed

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(key[0] for key, _, _ in self.objects)

    def _owner(self, key: Key, old: Body, new: Body) -> Part | None:
        return next((p for p in PARTS if p.owns(key, old, new)), None)

    def parts(self) -> frozenset[str] | None:
        """The parts to change; None when something changed that no part owns alone."""
        if self.unowned():
            return None
        names = {owner.name for key, old, new in self.objects if (owner := self._owner(key, old, new))}
        names |= {p.name for p in PARTS if p.knobs & self.knobs}
        return frozenset(names)

    def unowned(self) -> list[str]:
        objects = sorted(f"{k[0]} {k[1] or ''}/{k[2]}" for k, old, new in self.objects if not self._owner(k, old, new))
        owned_knobs = set().union(*(p.knobs for p in PARTS))
        return objects + [f"knob {k}" for k in sorted(self.knobs - owned_knobs)]


def change_between(old: ManifestSet, new: ManifestSet, old_knobs: Knobs, new_knobs: Knobs) -> Change:
    before = {(o.kind, o.namespace, o.name): o.body for o in old}
    after = {(o.kind, o.namespace, o.name): o.body for o in new}
    changed = tuple(
        (key, before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys(), key=str)
        if before.get(key) != after.get(key)
    )
    knobs = {f.name for f in fields(Knobs) if getattr(old_knobs, f.name) != getattr(new_knobs, f.name)}
    return Change(changed, frozenset(knobs))
