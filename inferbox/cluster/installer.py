"""Building the plan for a target from the versions and manifests, checking everything it would
apply, and running it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from inferbox.cluster import upstream
from inferbox.cluster.actions import Action, Cluster, RunContext
from inferbox.cluster.commands import CommandRunner, SubprocessRunner
from inferbox.cluster.components import component_steps, kind_steps
from inferbox.cluster.helm_values import check_plan_values
from inferbox.cluster.kindcluster import KindConfig, KindLifecycle, load_kind_config
from inferbox.cluster.kube import KubeApi
from inferbox.cluster.plan import Plan
from inferbox.cluster.platform_step import local_images, platform_step
from inferbox.cluster.runner import Runner, StepReport
from inferbox.cluster.state import ClusterState
from inferbox.cluster.timeouts import Timeouts
from inferbox.cluster.upstream import UpstreamData
from inferbox.cluster.validation import Report, check_kind_config, validate_objects
from inferbox.cluster.versions import Versions
from inferbox.cluster.waits import WebhookAnswers
from inferbox.errors import InferboxError, ManifestError
from inferbox.manifests import ManifestSet

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PlanOptions:
    target: str  # kind or existing
    context: str
    manifests: ManifestSet
    versions: Versions
    timeouts: Timeouts = field(default_factory=Timeouts)
    kind_name: str | None = None
    kind_config: KindConfig | None = None


def build_plan(options: PlanOptions) -> Plan:
    """Kind: the cluster, every component, then our manifests. Existing: our manifests only."""
    steps = []
    notes = []
    if options.target == "kind":
        if options.kind_name is None:
            raise InferboxError("a Kind plan needs a cluster name", "pass --kube-cluster-name")
        config = options.kind_config or load_kind_config()
        images = local_images(options.manifests)
        steps += kind_steps(options.versions, options.kind_name, config, images)
        steps += component_steps(options.versions)
        needs = tuple(s.name for s in steps if s.name not in ("cluster", "build-images"))
        notes.append(f"Kind cluster {options.kind_name} from {config.path}")
    else:
        needs = ()
        notes.append("existing cluster: its components are not installed or changed; only our manifests are applied")
    steps.append(platform_step(options.manifests, needs))
    plan = Plan(
        Cluster(options.context, options.kind_name), options.versions, tuple(steps), options.timeouts, tuple(notes)
    )
    plan.validate()
    return plan


def rendered_objects(plan: Plan) -> list[tuple[str, Mapping[str, Any]]]:
    """Every object the plan applies that inferbox renders or reads from the manifests (not upstream
    release YAML): every action's objects, both bodies of a canary rollout, and webhook probes."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for step in plan:
        for item in step.items:
            if isinstance(item, Action):
                out += [(where if where else f"step {step.name}", body) for where, body in item.objects()]
            elif isinstance(item, WebhookAnswers):
                out.append((f"step {step.name} (webhook probe)", item.probe))
    return out


def not_checked_notice(versions: Versions) -> str:
    """What the pre-flight leaves unchecked without the pinned upstream CRDs, and how to check it."""
    root = upstream.data_dir(versions)
    return (
        "notice: custom resources were NOT checked against the pinned CRDs' schemas (only their kind, served "
        "apiVersion, scope and metadata), nor the Helm values against the pinned charts, nor the Kind config "
        f"against kind's types: the pinned upstream schemas are not on this machine (looked in {root}). To check "
        f"them, {upstream.how_to_get(versions, root)}"
    )


def validate_plan(plan: Plan, data: UpstreamData | None, kind_config: KindConfig | None = None) -> Report:
    """Checks every object the plan would apply; raises one error listing every problem. ``data``:
    the pinned upstream schemas (``upstream.find``); without them the report's notice says what was
    not checked."""
    report = validate_objects(rendered_objects(plan), plan.versions.get("kubernetes"), data)
    problems = list(report.problems)
    if data is None:
        report.notice = not_checked_notice(plan.versions)
    else:
        if kind_config is not None:
            problems += [f"{kind_config.path}: {p}" for p in check_kind_config(kind_config.body, data)]
        problems += [f"Helm values: {p}" for p in check_plan_values(plan, data)]
    if problems:
        raise ManifestError(
            "objects the installer would apply do not validate against the pinned versions:\n  "
            + "\n  ".join(problems),
            "fix the fields named above (field names and values are those of the pinned upstream releases)",
        )
    return report


def fetch_url(url: str, timeout_s: float) -> str:
    """Downloads a release YAML (GitHub release assets redirect to a CDN)."""
    try:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise InferboxError(
            f"cannot download {url}: {exc}", "check the version in the versions file and the network"
        ) from exc
    text: str = response.text
    yaml.safe_load_all(text)  # fail here, naming the URL, rather than half-way through applying
    return text


def new_evidence_root(report_dir: Path | None, label: str) -> Path:
    if report_dir is not None:
        return report_dir
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("reports") / f"{stamp}-{label}"


def run_plan(
    plan: Plan,
    state: ClusterState,
    evidence_root: Path,
    progress: Callable[[str], None],
    only: set[str] | None = None,
    commands: CommandRunner | None = None,
    api_factory: Callable[[], KubeApi] | None = None,
    fetch: Callable[[str, float], str] = fetch_url,
    poll_interval_s: float = 2.0,
    kind: KindLifecycle | None = None,
) -> list[StepReport]:
    state.create()
    context = plan.cluster.context
    if kind is None and plan.cluster.kind_name is not None:
        kind = KindLifecycle(plan.cluster.kind_name, plan.versions, state.root / "bin")
    ctx = RunContext(
        cluster=plan.cluster,
        state=state,
        commands=commands or SubprocessRunner(),
        timeouts=plan.timeouts,
        api_factory=api_factory or (lambda: KubeApi.from_kubeconfig(context)),
        fetch=fetch,
        repo_root=REPO_ROOT,
        progress=progress,
        poll_interval_s=poll_interval_s,
        kind=kind,
    )
    try:
        return Runner(plan, ctx, evidence_root, only=only).run()
    finally:
        ctx.close()
