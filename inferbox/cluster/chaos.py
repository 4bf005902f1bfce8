"""Chaos on a cluster (Kind or existing), through the Kubernetes API, exec-free where possible.

- a replica is killed by deleting its pod with grace 0 (its ReplicaSet replaces it);
- a replica is stalled by one exec into its model container that stops the server (``kill -STOP 1``)
  and leaves a background ``sleep N; kill -CONT 1`` in the container, so the stall ends at its
  bound inside the cluster even if this process dies;
- the gateway is killed by deleting Envoy Gateway's proxy pods with grace 0 (its Deployment
  restarts them);
- the token issuer is scaled to zero and back; the telemetry stack (the Jaeger Deployment and the
  Prometheus resource of kube-prometheus-stack) likewise;
- a partition re-applies the tenant's NetworkPolicies without the rules that admit the gateway's
  hops (Istio's ingress gateway, Knative's activator), and the manifests' policies on heal.

Bounded faults are rolled back by a timer of this process at their bound, and on ``heal``.
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from inferbox.cluster.kube import KubeApi, is_true
from inferbox.contract_types import STOPPABLE_COMPONENTS, Fault, FaultKind
from inferbox.errors import PlatformError
from inferbox.manifests import ManifestSet
from inferbox.topology import Model

GATEWAY_NAMESPACE = "envoy-gateway-system"
GATEWAY_POD_SELECTOR = "gateway.envoyproxy.io/owning-gateway-name=inference-gateway"
MODEL_LABEL = "serving.kserve.io/inferenceservice"
MODEL_CONTAINER = "kserve-container"
ISSUER = ("inference-system", "jwt-server")
JAEGER = ("monitoring", "jaeger")
PROMETHEUS = ("monitoring", "prometheus-kube-prometheus-prometheus")
GATEWAY_HOPS = ("istio-system", "knative-serving")
MAX_FAULT_S = 120.0

Exec = Callable[[str, str, str, list[str]], str]


@dataclass
class _Active:
    fault: Fault
    undo: Callable[[], None]
    timer: threading.Timer


def _ready(pod: dict[str, Any]) -> bool:
    return is_true(pod, "Ready") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def without_gateway_hops(policy: dict[str, Any]) -> dict[str, Any]:
    """The NetworkPolicy with every ``from`` peer that admits the gateway's hops removed (a rule left
    without peers is dropped: an empty ``from`` would admit everyone)."""
    body = copy.deepcopy(policy)
    rules = []
    for rule in (body.get("spec") or {}).get("ingress") or []:
        peers = rule.get("from")
        if peers is None:
            rules.append(rule)
            continue
        kept = [
            p
            for p in peers
            if ((p.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name")
            not in GATEWAY_HOPS
        ]
        if kept:
            rules.append({**rule, "from": kept})
    body.setdefault("spec", {})["ingress"] = rules
    return body


class KubeChaos:
    def __init__(self, api: KubeApi, manifests: ManifestSet | None, exec_in: Exec | None) -> None:
        self.api = api
        self.manifests = manifests
        self.exec_in = exec_in
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}

    # -- bookkeeping -----------------------------------------------------------------------------
    def _record(self, kind: FaultKind, target: str, seconds: float, undo: Callable[[], None], detail: str) -> Fault:
        if not 0 < seconds <= MAX_FAULT_S:
            raise PlatformError(f"a fault of {seconds}s is outside (0, {MAX_FAULT_S:g}] s", "choose a shorter fault")
        fault = Fault(f"{kind.value}-{secrets.token_hex(3)}", kind.value, target, time.time(), seconds, None, detail)
        timer = threading.Timer(seconds, lambda: self._expire(fault.id))
        timer.daemon = True
        with self._lock:
            self._active[fault.id] = _Active(fault, undo, timer)
        timer.start()
        return fault

    def _expire(self, fault_id: str) -> None:
        with contextlib.suppress(PlatformError):
            self.heal(fault_id)

    def heal(self, fault_id: str) -> Fault | None:
        with self._lock:
            active = self._active.pop(fault_id, None)
        if active is None:
            return None
        active.timer.cancel()
        active.undo()
        return replace(active.fault, healed=time.time())

    def active(self) -> list[Fault]:
        with self._lock:
            return [a.fault for a in self._active.values()]

    def heal_all(self) -> None:
        for fault in self.active():
            with contextlib.suppress(Exception):
                self.heal(fault.id)

    # -- replicas --------------------------------------------------------------------------------
    def _model_pods(self, model: Model, starting: bool) -> list[dict[str, Any]]:
        pods = self.api.list("v1", "Pod", model.tenant, f"{MODEL_LABEL}={model.name}")
        live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        chosen = [p for p in live if _ready(p) != starting]
        return sorted(chosen, key=lambda p: str(p["metadata"]["name"]))

    def _pod(self, model: Model, replica: int, starting: bool = False) -> dict[str, Any]:
        pods = self._model_pods(model, starting)
        if not 0 <= replica < len(pods):
            state = "starting" if starting else "ready"
            raise PlatformError(
                f"{model.tenant}/{model.name} has {len(pods)} {state} pod(s); there is no replica {replica}",
                "scale the model first, or pick an existing replica",
            )
        return pods[replica]

    def kill_replica(self, model: Model, replica: int, starting: bool) -> Fault:
        pod = self._pod(model, replica, starting)
        name = pod["metadata"]["name"]
        self.api.delete("v1", "Pod", name, model.tenant, grace_s=0)
        return Fault(
            f"{FaultKind.REPLICA_KILL.value}-{secrets.token_hex(3)}",
            FaultKind.REPLICA_KILL.value,
            f"{model.tenant}/{model.name} replica {name}",
            time.time(),
            0.0,
            None,
            "pod deleted with grace period 0",
        )

    def stall_replica(self, model: Model, seconds: float, replica: int) -> Fault:
        if self.exec_in is None:
            raise PlatformError("stalling a pod needs the exec API", "run with a kubeconfig that allows pods/exec")
        pod = self._pod(model, replica)
        name = pod["metadata"]["name"]
        bound = int(seconds) + 1
        # The resume is left running inside the container: the stall ends at its bound in the cluster.
        script = f"kill -STOP 1; (sleep {bound}; kill -CONT 1) >/dev/null 2>&1 &"
        exec_in = self.exec_in
        exec_in(model.tenant, name, MODEL_CONTAINER, ["sh", "-c", script])

        def undo() -> None:
            with contextlib.suppress(Exception):  # the pod may be gone: then nothing is stopped
                exec_in(model.tenant, name, MODEL_CONTAINER, ["sh", "-c", "kill -CONT 1"])

        return self._record(
            FaultKind.REPLICA_PAUSE, f"{model.tenant}/{model.name} replica {name}", seconds, undo, "SIGSTOP to PID 1"
        )

    # -- the gateway -----------------------------------------------------------------------------
    def kill_gateway(self) -> Fault:
        pods = self.api.list("v1", "Pod", GATEWAY_NAMESPACE, GATEWAY_POD_SELECTOR)
        if not pods:
            raise PlatformError(f"no gateway pod labelled {GATEWAY_POD_SELECTOR}", "is the Gateway programmed?")
        for pod in pods:
            self.api.delete("v1", "Pod", pod["metadata"]["name"], GATEWAY_NAMESPACE, grace_s=0)
        return Fault(
            f"{FaultKind.GATEWAY_KILL.value}-{secrets.token_hex(3)}",
            FaultKind.GATEWAY_KILL.value,
            "gateway",
            time.time(),
            0.0,
            None,
            f"{len(pods)} Envoy pod(s) deleted with grace period 0",
        )

    # -- components ------------------------------------------------------------------------------
    def _scale(self, api_version: str, kind: str, namespace: str, name: str, replicas: int) -> None:
        self.api.apply(
            {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": replicas},
            },
            field_manager="inferbox-chaos",
        )

    def stop_component(self, component: str, seconds: float) -> Fault:
        if component not in STOPPABLE_COMPONENTS:
            raise PlatformError(f"no stoppable component {component!r}", f"use one of {STOPPABLE_COMPONENTS}")
        targets = (
            [("apps/v1", "Deployment", *ISSUER)]
            if component == "token-issuer"
            else [("apps/v1", "Deployment", *JAEGER), ("monitoring.coreos.com/v1", "Prometheus", *PROMETHEUS)]
        )
        for api_version, kind, namespace, name in targets:
            self._scale(api_version, kind, namespace, name, 0)

        def undo() -> None:
            for api_version, kind, namespace, name in targets:
                self._scale(api_version, kind, namespace, name, 1)

        detail = ", ".join(f"{kind} {ns}/{name}" for _, kind, ns, name in targets) + " scaled to 0"
        return self._record(FaultKind.COMPONENT_STOP, component, seconds, undo, detail)

    # -- partitions ------------------------------------------------------------------------------
    def partition(self, tenant: str, seconds: float) -> Fault:
        if self.manifests is None:
            raise PlatformError("a partition needs the manifests the platform was deployed from", "pass --manifests")
        policies = [p.body for p in self.manifests.of_kind("NetworkPolicy") if p.namespace == tenant]
        if not policies:
            raise PlatformError(
                f"tenant {tenant} has no NetworkPolicy to narrow", "a partition narrows the tenant's own policies"
            )
        for body in policies:
            self.api.apply(without_gateway_hops(body))

        def undo() -> None:
            for body in policies:
                self.api.apply(body)

        return self._record(
            FaultKind.PARTITION,
            tenant,
            seconds,
            undo,
            "NetworkPolicies without the gateway's hops (ingress, activator)",
        )
