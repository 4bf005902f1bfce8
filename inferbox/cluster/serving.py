"""The serving contract on a cluster: KServe InferenceServices on Knative (revisions, their traffic
and pods, autoscaler settings), replica timings from pods, per-revision request counts from Istio's
metrics, and changes to bounds and canary rollouts, always restorable to the manifests.

Names follow KServe 0.15 Serverless: the Knative Service ``<isvc>-predictor`` with revisions
``<isvc>-predictor-00001``...; pods carry ``serving.kserve.io/inferenceservice`` and
``serving.knative.dev/revision``. Kubernetes records times with one-second resolution, so cold-start
breakdowns on a cluster are that coarse.

A canary rollout needs a rolled-out revision before the canary's (KServe splits between the two):
``rollout`` applies the manifest's previous predictor first (the annotation
``rollout.inferbox.io/previous-predictor``), waits until it serves all traffic, then applies the
manifest itself. The installer does that on a fresh cluster, and ``restore`` does it again after a
promotion (the promoted revision is then the rolled-out one, so the split can only come back through
two new revisions).
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inferbox.cluster.actions import Action, Cluster, Created, RunContext, apply_objects
from inferbox.cluster.commands import shell_line
from inferbox.cluster.kube import KubeApi, is_true
from inferbox.cluster.timeouts import Timeouts
from inferbox.errors import PlatformError
from inferbox.manifests import K8sObject
from inferbox.mesh import ScaleOutcome
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus
from inferbox.serving_plan import (
    KNATIVE_DEFAULTS,
    PREVIOUS_PREDICTOR,
    REVISION_ANNOTATIONS,
    previous_predictor,
    settings_for,
)
from inferbox.waiting import eventually

ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
KSVC = ("serving.knative.dev/v1", "Service")
REVISION = ("serving.knative.dev/v1", "Revision")
ISVC_LABEL = "serving.kserve.io/inferenceservice"
REVISION_LABEL = "serving.knative.dev/revision"
CONFIGURATION_LABEL = "serving.knative.dev/configuration"
MODEL_CONTAINER = "kserve-container"
KPA_PREFIX = "autoscaling.knative.dev/"
POLL_S = 2.0  # polling the API server while waiting; bounded by each wait's settle time

Query = Callable[[str], list[dict[str, Any]]]  # PromQL instant query -> result vector


def _time(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _object(body: Mapping[str, Any]) -> K8sObject:
    meta = body.get("metadata") or {}
    return K8sObject(str(body["apiVersion"]), str(body["kind"]), meta["name"], meta.get("namespace"), dict(body))


def autoscaling_settings(api: KubeApi, namespace: str, name: str) -> AutoscalingSettings:
    """The KPA settings Knative applies to the model's revisions: KServe's fields of the running
    InferenceService and Knative's config-autoscaler (over its defaults)."""
    isvc = api.get(*ISVC, name, namespace)
    if isvc is None:
        raise PlatformError(f"no InferenceService {namespace}/{name} on the cluster", "deploy the platform")
    config = api.get("v1", "ConfigMap", "config-autoscaler", "knative-serving") or {}
    data = dict(KNATIVE_DEFAULTS)
    data.update({k: str(v) for k, v in (config.get("data") or {}).items() if k in KNATIVE_DEFAULTS})
    body = copy.deepcopy(isvc)
    # What the controllers add (and keys Knative would reject anyway) is theirs: keep only ours.
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    body["metadata"]["annotations"] = {
        k: v
        for k, v in annotations.items()
        if k.startswith(KPA_PREFIX) and k[len(KPA_PREFIX) :] in REVISION_ANNOTATIONS
    }
    settings, _ = settings_for(_object(body), data)
    return settings


def revisions(api: KubeApi, namespace: str, name: str) -> list[RevisionStatus]:
    """Every revision of the model's Knative Service: traffic share, ready and existing pods."""
    ksvc = api.get(*KSVC, f"{name}-predictor", namespace) or {}
    status = ksvc.get("status") or {}
    traffic: dict[str, int] = {}
    for target in status.get("traffic") or []:
        revision = target.get("revisionName")
        if revision:
            traffic[revision] = traffic.get(revision, 0) + int(target.get("percent") or 0)
    latest = status.get("latestCreatedRevisionName")
    pods = api.list("v1", "Pod", namespace, f"{ISVC_LABEL}={name}")
    found = []
    for rev in api.list(*REVISION, namespace, f"{CONFIGURATION_LABEL}={name}-predictor"):
        rev_name = rev["metadata"]["name"]
        mine = [p for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == rev_name]
        alive = [
            p
            for p in mine
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") in ("Pending", "Running")
        ]
        ready = [p for p in alive if is_true(p, "Ready")]
        found.append(
            RevisionStatus(
                name, namespace, rev_name, traffic.get(rev_name, 0), len(ready), len(alive), rev_name == latest
            )
        )
    return sorted(found, key=lambda r: r.name)


def replica_timings(api: KubeApi, namespace: str, name: str, since: float) -> list[ReplicaTiming]:
    """Pods of the model created at or after ``since`` (one second of slack: Kubernetes' resolution)."""
    out = []
    for pod in api.list("v1", "Pod", namespace, f"{ISVC_LABEL}={name}"):
        meta = pod["metadata"]
        created = _time(meta.get("creationTimestamp"))
        if created is None or created < since - 1.0:
            continue
        status = pod.get("status") or {}
        started = None
        for container in status.get("containerStatuses") or []:
            if container.get("name") == MODEL_CONTAINER:
                started = _time(((container.get("state") or {}).get("running") or {}).get("startedAt"))
        ready = None
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready = _time(cond.get("lastTransitionTime"))
        revision = (meta.get("labels") or {}).get(REVISION_LABEL, "")
        out.append(ReplicaTiming(revision, meta["name"], created, started, ready))
    return sorted(out, key=lambda t: t.requested_at)


# Longer than any test session: a replica that stopped within it still counts (see served_requests).
SERVED_WINDOW = "1d"


def served_requests(query: Query, namespace: str, name: str) -> dict[str, int]:
    """Requests each revision's pods answered, from Istio's destination-side counter (the revision's
    Deployment is ``<revision>-deployment``). Prometheus scrapes it, so it lags the requests.

    Each pod keeps its own counter, and a pod that stops takes its series out of an instant query:
    a plain sum drops the requests of every replica scaled in since the last reading. Each pod's
    highest value within the window counts instead, so a stopped replica's requests stay counted."""
    promql = (
        "sum by (destination_workload) (max_over_time(istio_requests_total{"
        f'reporter="destination", destination_workload_namespace="{namespace}", '
        f'destination_workload=~"{name}-predictor-.*"}}[{SERVED_WINDOW}]))'
    )
    counts: dict[str, int] = {}
    for sample in query(promql):
        workload = str(sample.get("metric", {}).get("destination_workload", ""))
        revision = workload.removesuffix("-deployment")
        counts[revision] = counts.get(revision, 0) + int(float(sample["value"][1]))
    return counts


def _bounded(body: Mapping[str, Any], low: int | None, high: int | None) -> dict[str, Any]:
    out = copy.deepcopy(dict(body))
    predictor = out["spec"]["predictor"]
    if low is not None:
        predictor["minReplicas"] = low
    if high is not None:
        predictor["maxReplicas"] = high
    return out


def _wait(check: Callable[[], bool], settle_s: float) -> bool:
    """Polls the API server until ``check`` holds or ``settle_s`` passes; returns whether it held."""

    def holds() -> None:
        assert check(), "not yet"

    try:
        eventually(holds, settle_s, POLL_S)
    except AssertionError:
        return False
    return True


def set_bounds(
    api: KubeApi, body: Mapping[str, Any], low: int | None, high: int | None, settle_s: float
) -> ScaleOutcome:
    """Applies the manifest's InferenceService with its replica bounds changed (a new revision on
    Knative), waits until the routed revisions have their replicas, and collects quota refusals."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    since = time.time()
    api.apply(_bounded(body, low, high))

    def settled() -> bool:
        routed = [r for r in revisions(api, namespace, name) if r.traffic_percent > 0]
        return bool(routed) and all(
            (low is None or r.ready >= low) and (high is None or r.total <= high) for r in routed
        )

    _wait(settled, settle_s)
    events = api.list("v1", "Event", namespace)
    refusals = tuple(
        str(e.get("message", ""))
        for e in events
        if e.get("reason") == "FailedCreate"
        and "exceeded quota" in str(e.get("message", ""))
        and (_time(e.get("lastTimestamp")) or since) >= since - 1
    )
    running = sum(r.total for r in revisions(api, namespace, name) if r.traffic_percent > 0)
    return ScaleOutcome(low if low is not None else (high or 0), running, refusals)


def _traffic_is(api: KubeApi, namespace: str, name: str, want: Callable[[list[RevisionStatus]], bool]) -> bool:
    found = revisions(api, namespace, name)
    return bool(found) and want(found)


def promote(api: KubeApi, body: Mapping[str, Any], settle_s: float) -> None:
    """Removes canaryTrafficPercent (KServe's promotion) and waits until the latest revision has 100 %."""
    promoted = copy.deepcopy(dict(body))
    promoted["spec"]["predictor"].pop("canaryTrafficPercent", None)
    meta = body["metadata"]
    api.apply(promoted)
    if not _wait(
        lambda: _traffic_is(
            api, meta["namespace"], meta["name"], lambda rs: any(r.latest and r.traffic_percent == 100 for r in rs)
        ),
        settle_s,
    ):
        raise PlatformError(
            f"{meta['namespace']}/{meta['name']}: the latest revision did not get all traffic", "see the ksvc"
        )


def previous_body(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The InferenceService as it was before its canary: the manifest with the previous predictor."""
    previous = previous_predictor(_object(body))
    if previous is None:
        return None
    base = copy.deepcopy(dict(body))
    base["spec"]["predictor"] = previous
    return base


def rollout(api: KubeApi, body: Mapping[str, Any], settle_s: float) -> None:
    """Applies an InferenceService; with a previous predictor declared, that one first (rolled out to
    100 % and Ready), so that KServe has a rolled-out revision to split the canary against."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    base = previous_body(body)
    if base is not None:
        api.apply(base)
        if not _wait(lambda: _ready_latest(api, namespace, name), settle_s):
            raise PlatformError(
                f"{namespace}/{name}: the previous revision did not become Ready and rolled out within {settle_s:.0f}s",
                "see the InferenceService's status and its revision's pods",
            )
    api.apply(dict(body))


def _ready_latest(api: KubeApi, namespace: str, name: str) -> bool:
    isvc = api.get(*ISVC, name, namespace)
    if not is_true(isvc, "Ready"):
        return False
    predictor = (((isvc or {}).get("status") or {}).get("components") or {}).get("predictor") or {}
    return bool(predictor.get("latestRolledoutRevision")) and predictor.get("latestRolledoutRevision") == predictor.get(
        "latestReadyRevision"
    )


def needs_rollout(api: KubeApi, body: Mapping[str, Any]) -> bool:
    """A canary manifest whose InferenceService has no rolled-out revision yet (a fresh install)."""
    if previous_predictor(_object(body)) is None:
        return False
    meta = body["metadata"]
    isvc = api.get(*ISVC, meta["name"], meta["namespace"])
    predictor = (((isvc or {}).get("status") or {}).get("components") or {}).get("predictor") or {}
    return not predictor.get("latestRolledoutRevision")


@dataclass(frozen=True)
class RolloutInferenceService(Action):
    """The installer's step for an InferenceService with a canary rollout: on a cluster where it has
    no rolled-out revision yet, its previous predictor first, then the manifest; otherwise just the
    manifest (re-applying an unchanged spec creates no revision)."""

    body: Mapping[str, Any] = field(hash=False)
    source: str = ""

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        meta = self.body["metadata"]
        seconds = int(timeouts["inference-service-ready"])
        return [
            f"# canary rollout of {meta['namespace']}/{meta['name']}: when it has no rolled-out revision yet, apply it "
            f"first with the predictor of its {PREVIOUS_PREDICTOR} annotation and wait (up to {seconds}s) until that "
            "revision is Ready and serves all traffic; then:",
            shell_line(
                [
                    "kubectl",
                    "--context",
                    cluster.context,
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager=inferbox",
                    "-f",
                    self.source or "-",
                ]
            ),
        ]

    def run(self, ctx: RunContext) -> None:
        api = ctx.api()
        if needs_rollout(api, self.body):
            rollout(api, self.body, ctx.timeouts["inference-service-ready"])
        else:
            apply_objects(ctx, [self.body])

    def applies(self) -> tuple[Created, ...]:
        return (("serving.kserve.io", "InferenceService", str(self.body["metadata"]["namespace"])),)

    def objects(self) -> tuple[tuple[str, Mapping[str, Any]], ...]:
        """Both bodies the rollout applies: the previous revision's, then the manifest's."""
        base = previous_body(self.body)
        first = ((f"{self.source} (its previous revision, applied first)", base),) if base is not None else ()
        return (*first, (self.source, self.body))
