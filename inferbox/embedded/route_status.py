"""What a cluster would say about the HTTPRoutes: the status Envoy Gateway writes, from the plan.

On a cluster, a route whose backend Service does not exist is accepted but its parent status says
``ResolvedRefs=False`` with reason ``BackendNotFound`` (``RefNotPermitted`` when a ReferenceGrant is
missing), and its requests get a 500. The embedded gateway answers such a route the same way; this
module puts those conditions into words, so ``inferbox up`` and a test session report them when the
platform starts instead of leaving them to be found through a 500 later. Routes that do not attach
to the Gateway at all (``Accepted=False``) are reported too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inferbox.embedded.gateway_config import patch_policy_statuses
from inferbox.embedded.gateway_plan import GatewayPlan, Unresolved, plan_gateway
from inferbox.manifests import load_manifests


@dataclass(frozen=True)
class RouteProblem:
    route: str  # namespace/name
    condition: str  # ResolvedRefs, Accepted, or "" for what Gateway API does not report
    reason: str  # the condition's reason, e.g. BackendNotFound ("" when Gateway API has none)
    message: str

    def line(self) -> str:
        if self.condition == "ResolvedRefs":
            what = f"ResolvedRefs=False, reason {self.reason}: {self.message} (its requests get 500)"
        elif self.condition == "Accepted":
            what = f"Accepted=False, not attached to the Gateway: {self.message} (its hosts are not served)"
        else:
            what = f"{self.message} (its requests get 500)"
        return f"HTTPRoute {self.route}: {what}"


def route_problems(plan: GatewayPlan) -> list[RouteProblem]:
    """Every route that is not attached, or has a backend reference that does not resolve, once each."""
    found: dict[RouteProblem, None] = {}
    for route, why in plan.detached_routes.items():
        found[RouteProblem(route, "Accepted", "", why)] = None
    for planned in plan.routes:
        for weighted in planned.backends:
            backend = weighted.backend
            if isinstance(backend, Unresolved):
                condition = "ResolvedRefs" if backend.condition else ""
                found[RouteProblem(planned.route, condition, backend.condition, backend.reason)] = None
    return list(found)


def route_report(plan: GatewayPlan) -> list[str]:
    """One warning line per route problem, and per EnvoyPatchPolicy not (fully) applied, for the console."""
    lines = [f"warning: {problem.line()}" for problem in route_problems(plan)]
    lines += [f"warning: {status.line()}" for status in patch_policy_statuses(plan) if not status.status]
    return lines


def route_report_for(manifests_dir: Path) -> list[str]:
    """The same, read from a manifests folder (for a platform started in another process)."""
    return route_report(plan_gateway(load_manifests(manifests_dir)))
