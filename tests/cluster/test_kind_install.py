"""The whole Kind plan, run against the fake API and fake tools: order, convergence, re-runs."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferbox.cluster.installer import PlanOptions, build_plan, run_plan
from inferbox.cluster.plan import Plan
from inferbox.cluster.runner import StepFailed
from inferbox.cluster.state import ClusterState
from inferbox.cluster.target import KindPreflight, Settings, preflight_kind, provision_kind
from inferbox.cluster.timeouts import Timeouts
from inferbox.cluster.versions import load_versions
from inferbox.errors import PlatformError
from inferbox.jwtserver.keystore import KeyStore
from inferbox.manifests import load_manifests
from tests.cluster.fakekube import FakeCluster
from tests.cluster.fakes import FakeKindCluster, FakeTools

NAME = "inference-in-a-box"


def kind_plan(timeouts: Timeouts) -> Plan:
    versions = load_versions(environ={})
    return build_plan(PlanOptions("kind", f"kind-{NAME}", load_manifests(), versions, timeouts, kind_name=NAME))


def install(plan: Plan, cluster: FakeCluster, tools: FakeTools, root: Path, only: set[str] | None = None) -> list[str]:
    reports = run_plan(
        plan,
        ClusterState(root / "state"),
        root / "report",
        lambda _: None,
        only=only,
        commands=tools,
        api_factory=cluster.api,
        fetch=tools.fetch,
        poll_interval_s=0.01,
        kind=tools.lifecycle(NAME, plan.versions, root / "bin"),
    )
    return [r.name for r in reports]


def _fake(tools: FakeTools) -> Any:
    return functools.partial(FakeKindCluster, tools)


def _first(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines) if needle in line)


def test_the_whole_plan_converges_on_a_fresh_cluster(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    plan = kind_plan(fast_timeouts)
    tools = FakeTools(fake_cluster, plan)
    serving_core = next(key for key in tools.made if key[1].endswith("/serving-core.yaml"))
    tools.made[serving_core].append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "config-deployment", "namespace": "knative-serving"},
            "data": {
                "queue-sidecar-image": "gcr.io/knative-releases/queue@sha256:0",
                "registries-skipping-tag-resolving": "kind.local,ko.local,dev.local",
            },
        }
    )
    done = install(plan, fake_cluster, tools, tmp_path)
    assert sorted(done) == sorted(s.name for s in plan)
    lines = tools.lines()
    assert _first(lines, "kind create cluster") < _first(lines, "helm upgrade --install cert-manager")
    assert _first(lines, "helm upgrade --install cert-manager") < _first(lines, "helm upgrade --install kserve ")
    assert _first(lines, "helm upgrade --install aieg ") < _first(lines, "helm upgrade --install eg ")
    assert _first(lines, "docker build") < _first(lines, "kind load docker-image")
    # Our manifests are on the cluster, with the JWT server's generated Secrets.
    for obj in load_manifests():
        assert fake_cluster.find(obj.kind, obj.name, obj.namespace or "") is not None, obj.ref
    keys = fake_cluster.find("Secret", "jwt-server-keys", "inference-system")
    assert keys is not None
    assert "keys.json" in keys["data"]
    assert fake_cluster.find("Secret", "inferbox-client-credentials", "inference-system") is not None
    # Knative skips tag resolution for our locally loaded images (set before applying, not after).
    config = fake_cluster.find("ConfigMap", "config-deployment", "knative-serving")
    assert config is not None
    assert "index.docker.io" in config["data"]["registries-skipping-tag-resolving"].split(",")
    assert config["data"]["queue-sidecar-image"].startswith("gcr.io/knative-releases/queue")  # the rest kept


def test_a_second_run_converges_without_changing_anything(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    plan = kind_plan(fast_timeouts)
    tools = FakeTools(fake_cluster, plan)
    install(plan, fake_cluster, tools, tmp_path)
    kid = KeyStore(ClusterState(tmp_path / "state").keys_dir).active().kid
    changes_before = dict(fake_cluster.changes)
    calls_before = len(tools.calls)
    install(plan, fake_cluster, tools, tmp_path)
    second = tools.lines()[calls_before:]
    assert not any("kind create cluster" in line for line in second)  # the cluster exists: reused
    assert fake_cluster.changes == changes_before  # every apply was a no-op
    assert KeyStore(ClusterState(tmp_path / "state").keys_dir).active().kid == kid  # same signing key


def test_the_signing_key_is_restored_from_the_cluster_when_the_local_copy_is_gone(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    plan = kind_plan(fast_timeouts)
    tools = FakeTools(fake_cluster, plan)
    install(plan, fake_cluster, tools, tmp_path / "first")
    kid = KeyStore(ClusterState(tmp_path / "first" / "state").keys_dir).active().kid
    install(plan, fake_cluster, tools, tmp_path / "second", only={"platform"})
    assert KeyStore(ClusterState(tmp_path / "second" / "state").keys_dir).active().kid == kid


def test_a_model_that_never_becomes_ready_fails_the_install_naming_it(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    plan = kind_plan(fast_timeouts)
    tools = FakeTools(fake_cluster, plan)
    fake_cluster.never_ready.add("InferenceService tenant-c/pytorch-resnet")
    with pytest.raises(StepFailed) as caught:
        install(plan, fake_cluster, tools, tmp_path)
    assert caught.value.step == "platform"
    assert "InferenceService tenant-c/pytorch-resnet: Ready=True did not hold" in caught.value.problem
    assert "inference-service-ready" in caught.value.problem
    evidence = tmp_path / "report" / "evidence" / "platform"
    assert (evidence / "tenant-c" / "events.txt").exists()
    status = yaml.safe_load((evidence / "objects" / "InferenceService-tenant-c-pytorch-resnet.yaml").read_text())[
        "status"
    ]
    assert status["conditions"][0]["reason"] == "RevisionMissing"


def _settings(tmp_path: Path, timeouts: Timeouts) -> Settings:
    return Settings(
        manifests=load_manifests(),
        versions=load_versions(environ={}),
        timeouts=timeouts,
        cluster_name=NAME,
        context=f"kind-{NAME}",
        state=ClusterState(tmp_path / "state"),
        deploy=False,
        gateway_url=None,
    )


def test_reusing_a_kept_cluster_only_reapplies_our_images_and_manifests(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, fast_timeouts)
    plan = kind_plan(fast_timeouts)
    tools = FakeTools(fake_cluster, plan)
    real_run_plan = run_plan

    def run_on_fakes(
        plan: Plan,
        state: ClusterState,
        report: Path,
        progress: object,
        only: set[str] | None = None,
        commands: object = None,
        kind: object = None,
    ) -> object:
        lifecycle = tools.lifecycle(NAME, plan.versions, tmp_path / "bin")
        return real_run_plan(
            plan, state, report, lambda _: None, only, tools, fake_cluster.api, tools.fetch, 0.01, lifecycle
        )

    monkeypatch.setattr("inferbox.cluster.target.run_plan", run_on_fakes)
    provision_kind(settings, KindPreflight(plan, existed=False), tmp_path / "r1", lambda _: None, tools)
    assert settings.state.read_record()["created_by"] == "inferbox"
    calls = len(tools.calls)
    provision_kind(settings, KindPreflight(plan, existed=True), tmp_path / "r2", lambda _: None, tools)
    again = tools.lines()[calls:]
    assert not any(line.startswith("helm") for line in again)
    assert any(line.startswith("kind load docker-image") for line in again)
    # A version bump invalidates the record: everything converges again.
    bumped = build_plan(
        PlanOptions(
            "kind",
            f"kind-{NAME}",
            load_manifests(),
            load_versions(environ={"INFERBOX_VERSION_ISTIO": "1.26.3"}),
            fast_timeouts,
            kind_name=NAME,
        )
    )
    tools.made.update(FakeTools(fake_cluster, bumped).made)
    calls = len(tools.calls)
    provision_kind(settings, KindPreflight(bumped, existed=True), tmp_path / "r3", lambda _: None, tools)
    assert any("--version 1.26.3" in line for line in tools.lines()[calls:])


def test_an_existing_cluster_is_not_taken_over_by_a_run_that_would_delete_it(
    fake_cluster: FakeCluster, fast_timeouts: Timeouts, tmp_path: Path
) -> None:
    tools = FakeTools(fake_cluster)
    tools.kind_clusters.add(NAME)
    with pytest.raises(PlatformError, match="already exists") as caught:
        preflight_kind(_settings(tmp_path, fast_timeouts), False, lambda _: None, tools, tools.which, _fake(tools))
    assert "--inferbox-keep-platform" in caught.value.fix
    assert not any("kind create" in line or "helm upgrade" in line for line in tools.lines())  # only version checks
    assert preflight_kind(
        _settings(tmp_path, fast_timeouts), True, lambda _: None, tools, tools.which, _fake(tools)
    ).existed
