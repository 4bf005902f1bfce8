"""Waiting, retrying, failing and dumping evidence, against the fake Kubernetes API."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from inferbox.cluster import catalog
from inferbox.cluster.actions import ApplyFailed, ApplyObjects, Chart, Cluster, HelmRelease, RunContext, apply_objects
from inferbox.cluster.kube import KubeApi
from inferbox.cluster.plan import Plan, Step
from inferbox.cluster.runner import Runner, StepFailed, WaitTimeout
from inferbox.cluster.state import ClusterState
from inferbox.cluster.timeouts import Timeouts
from inferbox.cluster.versions import load_versions
from inferbox.cluster.waits import ConditionsTrue, DeploymentAvailable, WebhookAnswers
from tests.cluster.fakekube import FakeCluster, Webhook, crd_object, namespace
from tests.cluster.fakes import FakeTools, _workload
from tests.cluster.upstream_data import own_schemas

VERSIONS = load_versions(environ={})


OWN_SCHEMAS = own_schemas()


def context(cluster: FakeCluster, timeouts: Timeouts, tmp_path: Path, tools: FakeTools | None = None) -> RunContext:
    return RunContext(
        cluster=Cluster("fake"),
        state=ClusterState(tmp_path / "state"),
        commands=tools or FakeTools(cluster),
        timeouts=timeouts,
        api_factory=cluster.api,
        fetch=lambda url, t: "",
        repo_root=tmp_path,
        poll_interval_s=0.01,
    )


def run(plan_steps: list[Step], ctx: RunContext, tmp_path: Path) -> None:
    ctx.state.create()
    try:
        Runner(Plan(ctx.cluster, VERSIONS, tuple(plan_steps), ctx.timeouts), ctx, tmp_path / "report").run()
    finally:
        ctx.close()


def test_a_wait_holds_once_the_resource_is_ready(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    fake_cluster.put(_workload("Deployment", "ns", "slow"))
    fake_cluster.ready_after["Deployment ns/slow"] = 5
    run(
        [Step("s", "t", (), (DeploymentAvailable("ns", "slow"),))],
        context(fake_cluster, fast_timeouts, tmp_path),
        tmp_path,
    )
    assert fake_cluster.reads[("apps/v1", "Deployment", "ns", "slow")] == 6  # polled until the sixth read


def test_a_resource_that_never_becomes_ready_times_out_naming_it_and_leaves_evidence(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    fake_cluster.put(_workload("Deployment", "kserve", "kserve-controller-manager"))
    fake_cluster.never_ready.add("Deployment kserve/kserve-controller-manager")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kserve-controller-manager-abc", "namespace": "kserve"},
        "spec": {"containers": [{"name": "manager", "image": "kserve/kserve-controller:v0.15.2"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "manager", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ],
        },
    }
    fake_cluster.put(pod)
    fake_cluster.put({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "kserve"},
        "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container",
        "involvedObject": {"kind": "Pod", "name": "kserve-controller-manager-abc"},
    })  # fmt: skip
    fake_cluster.logs[("kserve", "kserve-controller-manager-abc", "manager")] = "panic: no webhook cert\n"
    step = Step("kserve", "KServe", (), (DeploymentAvailable("kserve", "kserve-controller-manager"),), ("kserve",))
    started = time.monotonic()
    with pytest.raises(StepFailed) as caught:
        run([step], context(fake_cluster, fast_timeouts, tmp_path), tmp_path)
    assert time.monotonic() - started < 10
    error = caught.value
    assert isinstance(error.cause, WaitTimeout)
    assert "Deployment kserve/kserve-controller-manager" in error.problem
    assert "timeout 'deployment-available'" in error.problem
    assert "0/1 available" in error.problem  # the last state seen
    assert "--kube-timeout deployment-available=SECONDS" in error.fix
    evidence = tmp_path / "report" / "evidence" / "kserve"
    assert error.evidence == evidence
    assert "BackOff" in (evidence / "kserve" / "events.txt").read_text()
    assert "CrashLoopBackOff" in (evidence / "kserve" / "pods.txt").read_text()
    assert (
        "panic: no webhook cert"
        in (evidence / "kserve" / "logs" / "kserve-controller-manager-abc.manager.log").read_text()
    )
    assert (evidence / "kserve" / "logs" / "kserve-controller-manager-abc.manager.previous.log").exists()
    dumped = (evidence / "objects" / "Deployment-kserve-kserve-controller-manager.yaml").read_text()
    assert "MinimumReplicasUnavailable" in dumped


def test_apply_rides_out_a_webhook_that_starts_late(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    fake_cluster.webhooks.append(Webhook("cert-manager.io", failures=3))
    fake_cluster.put(crd_object(catalog.crd_for("cert-manager.io", "Issuer")))  # type: ignore[arg-type]
    fake_cluster.put(namespace("ns"))
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Issuer",
        "metadata": {"name": "i", "namespace": "ns"},
        "spec": {"selfSigned": {}},
    }
    ctx = context(fake_cluster, fast_timeouts, tmp_path)
    apply_objects(ctx, [issuer])
    assert fake_cluster.get("cert-manager.io/v1", "Issuer", "i", "ns") is not None
    assert fake_cluster.webhooks[0].failures == 0


def test_apply_gives_up_when_the_webhook_never_answers(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    fake_cluster.webhooks.append(Webhook("", failures=-1))
    fake_cluster.put(namespace("n"))
    with pytest.raises(ApplyFailed, match="failed calling webhook") as caught:
        apply_objects(
            context(fake_cluster, fast_timeouts, tmp_path),
            [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}],
        )
    assert "ConfigMap n/c" in caught.value.problem
    assert "webhook-answering" in caught.value.fix


def test_a_webhook_probe_waits_until_admitted_and_stores_nothing(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    fake_cluster.webhooks.append(Webhook("", failures=4))
    fake_cluster.put(namespace("n"))
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": "n"}}
    run(
        [Step("s", "t", (), (WebhookAnswers("w", probe, "n"),))],
        context(fake_cluster, fast_timeouts, tmp_path),
        tmp_path,
    )
    assert fake_cluster.get("v1", "ConfigMap", "probe", "n") is None  # a dry run


def test_a_webhook_that_rejects_the_probe_fails_at_once(fake_cluster: FakeCluster, tmp_path: Path) -> None:
    fake_cluster.webhooks.append(Webhook("", failures=0, rejects=True))
    fake_cluster.put(namespace("n"))
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": "n"}}
    started = time.monotonic()
    with pytest.raises(StepFailed, match="refused the probe"):
        run(
            [Step("s", "t", (), (WebhookAnswers("w", probe, "n"),))],
            context(fake_cluster, Timeouts(), tmp_path),
            tmp_path,
        )
    assert time.monotonic() - started < 5  # not the 300 s webhook timeout


# What a real API server answers that waiting cannot fix: each must fail the apply at once, with the
# server's own message, instead of being retried for the webhook timeout. The fake validates against
# a small CRD of our own (tests/cluster/schemas), so this needs no upstream data.
REFUSALS = [
    # Server-side apply's conversion: a field the CRD does not declare (HTTP 500, no reason).
    (
        {"hostname": "typo"},
        None,
        "500: failed to create typed patch object (ns/r; test.inferbox.io/v1, Kind=Route): .spec.hostname",
    ),
    # The same for a value of the wrong type.
    ({"parents": [{"name": "g", "port": "80"}]}, None, 'expected integer, got string "80"'),
    # Validation of the schema: 422 Invalid with the causes.
    ({"weight": -1}, None, '422 Invalid: Route.test.inferbox.io "r" is invalid: [spec.weight: Invalid value: -1'),
    # A CEL rule of the schema: 422 too.
    ({"tls": {"mode": "Terminate"}}, None, "a certificate is needed to terminate TLS"),
    # A webhook that answered and denied, with 500 (controller-runtime's admission.Errored).
    ({}, Webhook("test.inferbox.io", 0, rejects=True, code=500), "denied the request"),
    # ... and with the API server's default, 403.
    ({}, Webhook("test.inferbox.io", 0, rejects=True), "403 Forbidden"),
]


@pytest.mark.parametrize(
    ("spec", "hook", "message"), REFUSALS, ids=["unknown-field", "type", "invalid", "cel", "deny-500", "deny-403"]
)
def test_a_refusal_fails_the_apply_at_once_with_the_servers_message(
    fake_cluster: FakeCluster, tmp_path: Path, spec: dict[str, Any], hook: Webhook | None, message: str
) -> None:
    fake_cluster.data = OWN_SCHEMAS
    fake_cluster.put(OWN_SCHEMAS.crds["routes.test.inferbox.io"].as_object())
    fake_cluster.put(namespace("ns"))
    if hook is not None:
        fake_cluster.webhooks.append(hook)
    route = {
        "apiVersion": "test.inferbox.io/v1",
        "kind": "Route",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"parents": [{"name": "g"}], **spec},
    }
    started = time.monotonic()
    with pytest.raises(ApplyFailed) as caught:
        apply_objects(context(fake_cluster, Timeouts(), tmp_path), [route])
    assert time.monotonic() - started < 5, "not retried for the 300 s webhook timeout"
    assert message in caught.value.problem
    assert "nothing was retried" in caught.value.fix
    assert "webhook-answering" not in caught.value.fix


def test_a_valid_object_is_applied_and_an_unserved_version_is_not_found(
    fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    fake_cluster.data = OWN_SCHEMAS
    fake_cluster.put(OWN_SCHEMAS.crds["routes.test.inferbox.io"].as_object())
    fake_cluster.put(namespace("ns"))
    route = {
        "apiVersion": "test.inferbox.io/v1",
        "kind": "Route",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"parents": [{"name": "g"}]},
    }
    apply_objects(context(fake_cluster, Timeouts(), tmp_path), [route])
    assert fake_cluster.get("test.inferbox.io/v1", "Route", "r", "ns") is not None
    # v1alpha1 is defined by the CRD but not served: discovery does not list it there.
    assert fake_cluster.resources("test.inferbox.io/v1") == {"Route": ("routes", True)}
    assert fake_cluster.resources("test.inferbox.io/v1alpha1") == {}


def test_a_missing_namespace_is_waited_for_as_a_controller_may_still_create_it(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "later"}}
    with pytest.raises(ApplyFailed, match='namespaces "later" not found'):
        apply_objects(context(fake_cluster, fast_timeouts, tmp_path), [config])
    fake_cluster.put(namespace("later"))
    apply_objects(context(fake_cluster, fast_timeouts, tmp_path), [config])
    assert fake_cluster.get("v1", "ConfigMap", "c", "later") is not None


def _helm(release: str, retry: bool) -> HelmRelease:
    return HelmRelease(release, Chart("oci://example/chart", "v1"), "ns", retry_webhook_race=retry)


def test_a_release_whose_own_webhook_starts_with_it_is_retried(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    tools = FakeTools(fake_cluster)
    race = 'Error: failed calling webhook "clusterservingruntime.serving.kserve.io": connection refused'
    tools.failures["upgrade --install kserve"] = [race, race]
    run(
        [Step("kserve", "t", (), (_helm("kserve", retry=True),))],
        context(fake_cluster, fast_timeouts, tmp_path, tools),
        tmp_path,
    )
    assert sum("upgrade --install kserve" in line for line in tools.lines()) == 3


def test_any_other_helm_failure_is_not_retried(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    tools = FakeTools(fake_cluster)
    tools.failures["upgrade --install kserve"] = ["Error: chart not found", "never reached"]
    with pytest.raises(StepFailed, match="chart not found"):
        run(
            [Step("kserve", "t", (), (_helm("kserve", retry=True),))],
            context(fake_cluster, fast_timeouts, tmp_path, tools),
            tmp_path,
        )
    assert sum("upgrade --install kserve" in line for line in tools.lines()) == 1


def test_a_failure_stops_dependants_and_independent_steps_finish(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    fake_cluster.put(_workload("Deployment", "ns", "slow"))
    fake_cluster.ready_after["Deployment ns/slow"] = 20
    tools = FakeTools(fake_cluster)
    tools.failures["upgrade --install broken"] = ["Error: boom"]
    steps = [
        Step("broken", "t", (), (_helm("broken", retry=False),)),
        Step("after-broken", "t", ("broken",), (_helm("never", retry=False),)),
        Step("independent", "t", (), (DeploymentAvailable("ns", "slow"), _helm("independent", retry=False))),
    ]
    with pytest.raises(StepFailed, match="install step 'broken' failed"):
        run(steps, context(fake_cluster, fast_timeouts, tmp_path, tools), tmp_path)
    lines = tools.lines()
    assert not any("never" in line for line in lines)
    # The independent step noticed the failure between its items and stopped early.
    assert not any("upgrade --install independent" in line for line in lines)


def test_independent_steps_run_at_the_same_time(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    inside = threading.Barrier(2, timeout=5)

    class Meet(ApplyObjects):
        def run(self, ctx: RunContext) -> None:
            inside.wait()  # both steps must be inside at once, or this raises

    steps = [Step(name, "t", (), (Meet(name, ()),)) for name in ("a", "b")]
    run(steps, context(fake_cluster, fast_timeouts, tmp_path), tmp_path)


def test_a_condition_wait_reports_every_condition_the_object_has(fake_api: KubeApi, fake_cluster: FakeCluster) -> None:
    fake_cluster.put(crd_object(catalog.crd_for("serving.kserve.io", "InferenceService")))  # type: ignore[arg-type]
    fake_cluster.put(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "m", "namespace": "t"},
            "spec": {},
        }
    )
    fake_cluster.never_ready.add("InferenceService t/m")
    check = ConditionsTrue(
        "serving.kserve.io/v1beta1", "InferenceService", "m", "t", ("Ready",), "inference-service-ready"
    ).check(fake_api)
    assert not check.done
    assert check.detail == "Ready=False RevisionMissing"
