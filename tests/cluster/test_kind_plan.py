"""The install plan, read without a cluster: its order, its versions, and the dry run."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from inferbox.cli import main
from inferbox.cluster import catalog
from inferbox.cluster.actions import Action
from inferbox.cluster.installer import PlanOptions, build_plan
from inferbox.cluster.plan import Plan, Step
from inferbox.cluster.prereqs import Finding
from inferbox.cluster.versions import Versions, load_versions
from inferbox.cluster.waits import CrdsEstablished, WebhookAnswers
from inferbox.manifests import load_manifests

MANIFESTS = load_manifests()


def kind_plan(versions: Versions | None = None) -> Plan:
    versions = versions or load_versions(environ={})
    return build_plan(
        PlanOptions("kind", "kind-inference-in-a-box", MANIFESTS, versions, kind_name="inference-in-a-box")
    )


def _position(step: Step, item: Any) -> int:
    return next(i for i, x in enumerate(step.items) if x is item)


def test_the_plan_installs_every_component_then_our_manifests() -> None:
    plan = kind_plan()
    names = [s.name for s in plan]
    for component in (
        "cluster", "build-images", "load-images", "gateway-crds", "cert-manager", "istio", "knative-serving",
        "net-istio", "kserve", "envoy-ai-gateway", "envoy-gateway", "monitoring", "jaeger", "kiali", "platform",
    ):  # fmt: skip
        assert component in names
    assert plan.ancestors("platform") == set(names) - {"platform"}
    assert [s.name for s in plan.levels()[-1]] == ["platform"]


@pytest.mark.parametrize(
    ("step", "must_come_after"),
    [
        ("kserve", {"cert-manager", "knative-serving", "net-istio", "istio"}),  # webhooks + CRDs at controller start
        ("net-istio", {"knative-serving", "istio"}),  # its Istio Gateways need Istio's CRDs and webhook
        ("envoy-gateway", {"envoy-ai-gateway", "gateway-crds"}),  # the extension manager is not fail-open
        ("istio", {"gateway-crds"}),  # one Gateway API bundle, present before istiod starts
        ("kiali", {"monitoring", "istio", "jaeger"}),
        ("load-images", {"cluster", "build-images"}),
    ],
)
def test_ordering_constraints(step: str, must_come_after: set[str]) -> None:
    assert must_come_after <= kind_plan().ancestors(step)


def _established_before(plan: Plan, step: Step, action: Action) -> set[str]:
    """CRD names waited Established in an ancestor step, or earlier in the same step."""
    names: set[str] = set()
    for other in plan:
        if other.name in plan.ancestors(step.name):
            names |= {n for w in other.waits() if isinstance(w, CrdsEstablished) for n in w.names}
    for item in step.items[: _position(step, action)]:
        if isinstance(item, CrdsEstablished):
            names |= set(item.names)
    return names


def test_crds_are_established_before_any_object_of_their_kind() -> None:
    plan = kind_plan()
    checked = 0
    for step in plan:
        for action in step.actions():
            for group, kind, _ in action.applies():
                crd = catalog.crd_for(group, kind)
                if crd is None:
                    continue
                checked += 1
                assert crd.crd_name in _established_before(plan, step, action), f"{step.name}: {kind} before its CRD"
    assert checked >= 15  # the manifests' gateway, policies and models, and the charts' declared objects


def _admits(wait: WebhookAnswers, group: str, kind: str, namespace: str | None) -> bool:
    return any(g == group and k in ("*", kind) and (ns is None or namespace in (ns, None)) for g, k, ns in wait.admits)


def test_webhooks_answer_before_anything_they_admit_is_applied() -> None:
    plan = kind_plan()
    webhooks = [(s, w) for s in plan for w in s.waits() if isinstance(w, WebhookAnswers)]
    assert {w.webhook for _, w in webhooks} >= {
        "webhook.cert-manager.io",
        "istiod validation",
        "config.webhook.serving.knative.dev",
        "inferenceservice.serving.kserve.io",
    }
    checked = 0
    for step in plan:
        for action in step.actions():
            for created in action.applies():
                for owner, wait in webhooks:
                    if not _admits(wait, *created):
                        continue
                    checked += 1
                    ordered = owner.name in plan.ancestors(step.name) or (
                        owner is step and _position(step, wait) < _position(step, action)
                    )
                    assert ordered or (owner is step and action.tolerates_own_webhook()), (
                        f"{step.name} applies {created} before webhook {wait.webhook} answers"
                    )
    assert checked >= 8


def test_the_jwt_secrets_exist_before_the_jwt_server_and_namespaces_come_first() -> None:
    platform = kind_plan().step("platform")
    applied = [created for action in platform.actions() for created in action.applies()]
    kinds = [kind for _, kind, _ in applied]
    assert set(kinds[:5]) == {"Namespace"}
    assert kinds.index("Secret") < kinds.index("Deployment")
    assert (
        kinds.index("Gateway")
        < kinds.index("HTTPRoute")
        < kinds.index("SecurityPolicy")
        < kinds.index("InferenceService")
    )


def _sentinel_versions() -> Versions:
    base = load_versions(environ={})
    entries = {c: {f: f"SENTINEL-{c}-{f}" for f in fields} for c, fields in base.entries.items()}
    entries["kubernetes"]["version"] = "v9.99.0"  # parsed for the schema version; still unique
    return Versions(entries, "sentinel")


def test_every_version_in_the_plan_comes_from_the_versions_file() -> None:
    pinned = load_versions(environ={})
    text = kind_plan(_sentinel_versions()).render()
    for component, fields in _sentinel_versions().entries.items():
        for name, value in fields.items():
            assert value in text, f"{component}.{name} is not used by the plan"
    # ...and no pinned value is written into the recipe itself.
    for component, fields in pinned.entries.items():
        for name, value in fields.items():
            if len(value) > 4:  # skip values short enough to occur by chance ("v1")
                assert value not in text, f"{component}.{name}={value} is hard-coded in the recipe"


def test_overrides_reach_the_plan() -> None:
    versions = load_versions(environ={"INFERBOX_VERSION_ISTIO": "1.26.3", "INFERBOX_VERSION_KSERVE": "v0.15.3"})
    text = kind_plan(versions).render()
    assert text.count("--version 1.26.3") == 3  # istio base, istiod, gateway
    assert "1.26.2" not in text
    assert "oci://ghcr.io/kserve/charts/kserve --version v0.15.3" in text
    assert "with INFERBOX_VERSION_ISTIO=1.26.3, INFERBOX_VERSION_KSERVE=v0.15.3" in text


def test_the_existing_target_plans_only_our_manifests() -> None:
    plan = build_plan(PlanOptions("existing", "staging", MANIFESTS, load_versions(environ={})))
    assert [s.name for s in plan] == ["platform"]
    assert "helm" not in plan.render()


def test_dry_run_prints_the_whole_plan_and_every_missing_tool_without_running_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    findings = [
        Finding("kind", "not found on PATH", "install kind"),
        Finding("helm", "not found on PATH", "install helm"),
    ]
    monkeypatch.setattr("inferbox.cluster.cli.check_tools", lambda target, versions: findings)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the dry run started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    with pytest.raises(SystemExit) as exited:
        main(["up", "--platform", "kind", "--dry-run"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert "kind: not found on PATH" in err
    assert "helm: not found on PATH" in err
    for expected in (
        "kind create cluster --name inference-in-a-box",
        "helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve --version v0.15.2",
        "https://github.com/knative/serving/releases/download/knative-v1.18.1/serving-core.yaml",
        "wait up to 1200s (inference-service-ready): InferenceService tenant-c/pytorch-resnet: Ready=True",
        "docker build --tag inferbox/model-server:0.1.0",
    ):
        assert expected in out
    assert out.index("[cert-manager]") < out.index("[kserve]") < out.index("[platform]")


def test_fingerprint_changes_with_a_version_but_not_with_timeouts() -> None:
    base = kind_plan()
    bumped = kind_plan(load_versions(environ={"INFERBOX_VERSION_ISTIO": "1.26.3"}))
    assert base.fingerprint() != bumped.fingerprint()
    assert base.fingerprint(("cert-manager",)) == bumped.fingerprint(("cert-manager",))
