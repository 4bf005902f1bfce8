"""Conditions the installer waits on, each read from the Kubernetes API.

A wait is checked until it holds or its named timeout passes; ``check`` never blocks and says what
it saw, so a timeout can report the last state (``2/3 available``, ``Programmed=False:
AddressNotAssigned``) instead of just "timed out".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inferbox.cluster.kube import KubeApi, KubeError, condition, is_true, ref, webhook_not_ready


@dataclass(frozen=True)
class Check:
    done: bool
    detail: str


class ProbeRejected(Exception):
    """A webhook answered a probe with a refusal: the probe (ours) is wrong, waiting will not help."""


@dataclass(frozen=True)
class Subject:
    """The object a wait is about, for evidence: dumped as YAML when the wait times out."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None


class Wait:
    """Base of every wait: a named timeout, a description for the plan, a non-blocking check."""

    timeout: str = ""

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, api: KubeApi) -> Check:
        raise NotImplementedError

    def namespaces(self) -> tuple[str, ...]:
        """Namespaces whose events, pods and logs explain a failure of this wait."""
        return ()

    def subjects(self) -> tuple[Subject, ...]:
        return ()


def _as_object(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Route parents and policy ancestors carry ``conditions`` directly, objects under ``status``."""
    return {"status": {"conditions": entry.get("conditions") or []}}


def _cond_text(obj: Mapping[str, Any] | None, kind: str) -> str:
    cond = condition(obj, kind)
    if cond is None:
        return f"{kind}: not reported yet"
    reason = f" {cond.get('reason')}" if cond.get("reason") else ""
    message = f" ({str(cond.get('message'))[:200]})" if cond.get("message") else ""
    return f"{kind}={cond.get('status')}{reason}{message}"


@dataclass(frozen=True)
class CrdsEstablished(Wait):
    names: tuple[str, ...]
    timeout: str = "crds-established"

    def describe(self) -> str:
        return f"CustomResourceDefinitions Established: {', '.join(self.names)}"

    def check(self, api: KubeApi) -> Check:
        pending = []
        for name in self.names:
            crd = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
            if not is_true(crd, "Established"):
                pending.append(name if crd else f"{name} (missing)")
        if pending:
            return Check(False, f"not Established: {', '.join(pending)}")
        return Check(True, f"{len(self.names)} CRDs Established")

    def subjects(self) -> tuple[Subject, ...]:
        return tuple(Subject("apiextensions.k8s.io/v1", "CustomResourceDefinition", n) for n in self.names)


@dataclass(frozen=True)
class DeploymentAvailable(Wait):
    namespace: str
    name: str
    timeout: str = "deployment-available"

    def describe(self) -> str:
        return f"Deployment {self.namespace}/{self.name} Available with every replica updated"

    def check(self, api: KubeApi) -> Check:
        obj = api.get("apps/v1", "Deployment", self.name, self.namespace)
        if obj is None:
            return Check(False, "Deployment does not exist yet")
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        want = int(spec.get("replicas", 1))
        generation = int((obj.get("metadata") or {}).get("generation", 0))
        rolled = int(status.get("observedGeneration", 0)) >= generation
        updated, available = int(status.get("updatedReplicas", 0)), int(status.get("availableReplicas", 0))
        summary = f"{available}/{want} available, {updated}/{want} updated; {_cond_text(obj, 'Available')}"
        done = rolled and is_true(obj, "Available") and updated >= want and available >= want
        return Check(done, summary if rolled else f"rollout not observed yet; {summary}")

    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace,)

    def subjects(self) -> tuple[Subject, ...]:
        return (Subject("apps/v1", "Deployment", self.name, self.namespace),)


@dataclass(frozen=True)
class WorkloadReady(Wait):
    """A StatefulSet with every replica ready, or a DaemonSet ready on every node it targets."""

    kind: str
    namespace: str
    name: str
    timeout: str = "workload-ready"

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} ready"

    def check(self, api: KubeApi) -> Check:
        obj = api.get("apps/v1", self.kind, self.name, self.namespace)
        if obj is None:
            return Check(False, f"{self.kind} does not exist yet")
        status = obj.get("status") or {}
        if self.kind == "DaemonSet":
            want, ready = int(status.get("desiredNumberScheduled", 0)), int(status.get("numberReady", 0))
        else:
            want, ready = int((obj.get("spec") or {}).get("replicas", 1)), int(status.get("readyReplicas", 0))
        return Check(want > 0 and ready >= want, f"{ready}/{want} ready")

    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace,)

    def subjects(self) -> tuple[Subject, ...]:
        return (Subject("apps/v1", self.kind, self.name, self.namespace),)


@dataclass(frozen=True)
class NodesReady(Wait):
    count: int
    timeout: str = "nodes-ready"

    def describe(self) -> str:
        return f"{self.count} Nodes Ready"

    def check(self, api: KubeApi) -> Check:
        nodes = api.list("v1", "Node")
        ready = [n["metadata"]["name"] for n in nodes if is_true(n, "Ready")]
        return Check(len(ready) >= self.count, f"{len(ready)}/{self.count} Ready ({len(nodes)} registered)")

    def namespaces(self) -> tuple[str, ...]:
        return ("kube-system",)


@dataclass(frozen=True)
class ConditionsTrue(Wait):
    """Status conditions of one object, e.g. Gateway Accepted+Programmed, InferenceService Ready."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    conditions: tuple[str, ...]
    timeout: str = ""

    def describe(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}: {' and '.join(c + '=True' for c in self.conditions)}"

    def check(self, api: KubeApi) -> Check:
        obj = api.get(self.api_version, self.kind, self.name, self.namespace)
        if obj is None:
            return Check(False, f"{self.kind} does not exist yet")
        done = all(is_true(obj, c) for c in self.conditions)
        shown = list(self.conditions)
        if not done:
            # Say why: every condition the object reports, not only the awaited ones.
            shown += [
                str(c.get("type"))
                for c in (obj.get("status") or {}).get("conditions") or []
                if c.get("type") not in shown
            ]
        return Check(done, "; ".join(_cond_text(obj, c) for c in shown))

    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace,) if self.namespace else ()

    def subjects(self) -> tuple[Subject, ...]:
        return (Subject(self.api_version, self.kind, self.name, self.namespace),)


@dataclass(frozen=True)
class RouteAccepted(Wait):
    """Every parent of a Gateway API route reports Accepted and ResolvedRefs."""

    api_version: str
    kind: str
    name: str
    namespace: str
    timeout: str = "route-accepted"

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}: every parent Accepted=True and ResolvedRefs=True"

    def check(self, api: KubeApi) -> Check:
        obj = api.get(self.api_version, self.kind, self.name, self.namespace)
        if obj is None:
            return Check(False, f"{self.kind} does not exist yet")
        wanted = [p.get("name") for p in (obj.get("spec") or {}).get("parentRefs") or []]
        parents = (obj.get("status") or {}).get("parents") or []
        problems = []
        for parent_name in wanted:
            entry = next((p for p in parents if (p.get("parentRef") or {}).get("name") == parent_name), None)
            if entry is None:
                problems.append(f"parent {parent_name}: no status yet")
                continue
            for kind in ("Accepted", "ResolvedRefs"):
                if not is_true(_as_object(entry), kind):
                    problems.append(f"parent {parent_name}: {_cond_text(_as_object(entry), kind)}")
        return Check(not problems, "; ".join(problems) or f"accepted by {', '.join(map(str, wanted))}")

    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace, "envoy-gateway-system")

    def subjects(self) -> tuple[Subject, ...]:
        return (Subject(self.api_version, self.kind, self.name, self.namespace),)


@dataclass(frozen=True)
class PolicyAccepted(Wait):
    """An Envoy Gateway policy is Accepted by every ancestor it attached to (and attached at all)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    timeout: str = "policy-accepted"

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}: attached, Accepted=True on every ancestor"

    def check(self, api: KubeApi) -> Check:
        obj = api.get(self.api_version, self.kind, self.name, self.namespace)
        if obj is None:
            return Check(False, f"{self.kind} does not exist yet")
        ancestors = (obj.get("status") or {}).get("ancestors") or []
        if not ancestors:
            return Check(False, "not attached to any target yet (no status.ancestors)")
        problems = [
            f"{(a.get('ancestorRef') or {}).get('name')}: {_cond_text(_as_object(a), 'Accepted')}"
            for a in ancestors
            if not is_true(_as_object(a), "Accepted")
        ]
        return Check(not problems, "; ".join(problems) or f"Accepted by {len(ancestors)} ancestor(s)")

    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace, "envoy-gateway-system")

    def subjects(self) -> tuple[Subject, ...]:
        return (Subject(self.api_version, self.kind, self.name, self.namespace),)


@dataclass(frozen=True)
class ObjectsExist(Wait):
    api_version: str
    kind: str
    names: tuple[str, ...]
    namespace: str | None = None
    timeout: str = "deployment-available"

    def describe(self) -> str:
        return f"{self.kind} present: {', '.join(self.names)}"

    def check(self, api: KubeApi) -> Check:
        missing = [n for n in self.names if api.get(self.api_version, self.kind, n, self.namespace) is None]
        return Check(not missing, f"missing: {', '.join(missing)}" if missing else "all present")


@dataclass(frozen=True)
class WebhookAnswers(Wait):
    """Admission webhooks answer: a server-side dry run of ``probe`` is admitted. Nothing is stored."""

    webhook: str
    probe: Mapping[str, Any] = field(hash=False, compare=False)
    namespace: str = ""
    # What this webhook admits, as (API group, kind or "*", namespace or None for any): objects
    # matching must not be applied before this wait holds (checked on the plan by the tests).
    admits: tuple[tuple[str, str, str | None], ...] = ()
    timeout: str = "webhook-answering"

    def describe(self) -> str:
        return f"webhook {self.webhook} answering: server-side dry run of {ref(self.probe)} admitted"

    def check(self, api: KubeApi) -> Check:
        try:
            api.apply(self.probe, dry_run=True)
        except KubeError as exc:
            if exc.status == 404 or webhook_not_ready(exc):
                return Check(False, str(exc)[:300])
            raise ProbeRejected(f"{self.webhook} refused the probe {ref(self.probe)}: {exc}") from exc
        return Check(True, "admitted")

    def namespaces(self) -> tuple[str, ...]:
        return (self.namespace,) if self.namespace else ()
