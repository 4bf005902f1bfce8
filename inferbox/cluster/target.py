"""The ``kind`` and ``existing`` targets: session context managers yielding a ``KubePlatform``.

``kind`` creates the cluster (or reuses it with ``--keep-platform``), installs everything from the
plan, and deletes the cluster at the end unless kept. ``existing`` uses a cluster from a kube
context, applies our manifests only with ``--deploy``, and never deletes anything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferbox.cluster import upstream
from inferbox.cluster.commands import CommandRunner, SubprocessRunner
from inferbox.cluster.installer import PlanOptions, build_plan, run_plan, validate_plan
from inferbox.cluster.kindcluster import (
    DEFAULT_CLUSTER_NAME,
    GATEWAY_NODE_PORT,
    KindClusterLike,
    KindConfig,
    KindLifecycle,
    context_for,
    load_kind_config,
)
from inferbox.cluster.kube import KubeApi
from inferbox.cluster.plan import Plan
from inferbox.cluster.platform import KubePlatform
from inferbox.cluster.platform_step import local_images, required_crds
from inferbox.cluster.portforward import PortForward
from inferbox.cluster.prereqs import require_tools
from inferbox.cluster.state import ClusterState, restore_from_cluster
from inferbox.cluster.timeouts import Timeouts, load_timeouts
from inferbox.cluster.versions import Versions, load_versions
from inferbox.contract import Platform
from inferbox.errors import InferboxError, PlatformError
from inferbox.manifests import ManifestSet, load_manifests
from inferbox.targets import TargetOptions
from inferbox.topology import ai_gateway_refs, read_topology

# Steps that make up "the platform is installed" on Kind; a reused cluster whose record shows the
# same fingerprint for these only gets our images and manifests re-applied.
COMPONENT_STEPS_SKIPPABLE = ("build-images", "load-images", "platform")


@dataclass(frozen=True)
class Settings:
    """Everything the cluster targets read from options (pytest or CLI), resolved and checked."""

    manifests: ManifestSet
    versions: Versions
    timeouts: Timeouts
    cluster_name: str
    context: str
    state: ClusterState
    deploy: bool
    gateway_url: str | None


def settings_from(target: str, manifests_dir: Path, extra: dict[str, Any]) -> Settings:
    versions_file = extra.get("versions")
    pinned = manifests_dir / "versions.yaml"  # the manifests' own pins (a copy of manifests/ brings them)
    versions = load_versions(
        Path(versions_file) if versions_file else None, base_file=pinned if pinned.exists() else None
    )
    timeouts = load_timeouts(extra.get("kube_timeout") or ())
    name = str(extra.get("kube_cluster_name") or DEFAULT_CLUSTER_NAME)
    state_root = Path(extra["kube_state_dir"]) if extra.get("kube_state_dir") else None
    if target == "kind":
        context = context_for(name)
        state = ClusterState.for_cluster("kind", name, state_root)
    else:
        context = str(extra.get("kube_context") or "")
        if not context:
            raise InferboxError(
                "--platform existing needs the cluster's kube context",
                "pass --kube-context NAME (see `kubectl config get-contexts`)",
            )
        state = ClusterState.for_cluster("existing", context, state_root)
    return Settings(
        manifests=load_manifests(manifests_dir),
        versions=versions,
        timeouts=timeouts,
        cluster_name=name,
        context=context,
        state=state,
        deploy=bool(extra.get("deploy")),
        gateway_url=extra.get("kube_gateway_url") or None,
    )


def plan_for(
    target: str,
    settings: Settings,
    kind_config: KindConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    """The plan, validated (``validate_plan``); ``progress`` hears what could not be checked here."""
    plan = build_plan(
        PlanOptions(
            target=target,
            context=settings.context,
            manifests=settings.manifests,
            versions=settings.versions,
            timeouts=settings.timeouts,
            kind_name=settings.cluster_name if target == "kind" else None,
            kind_config=kind_config,
        )
    )
    report = validate_plan(plan, upstream.find(settings.versions), kind_config)
    if report.notice and progress is not None:
        progress(report.notice)
    return plan


@dataclass(frozen=True)
class KindPreflight:
    plan: Plan
    existed: bool
    kind: KindLifecycle | None = None


def kind_lifecycle(
    settings: Settings,
    which: Callable[[str], str | None] = shutil.which,
    cluster_factory: Callable[..., KindClusterLike] | None = None,
) -> KindLifecycle:
    """The cluster's lifecycle through pytest-kind; a fetched kind binary is kept with the state."""
    return KindLifecycle(settings.cluster_name, settings.versions, settings.state.root / "bin", which, cluster_factory)


def preflight_kind(
    settings: Settings,
    reuse: bool,
    progress: Callable[[str], None],
    runner: CommandRunner,
    which: Callable[[str], str | None] = shutil.which,
    cluster_factory: Callable[..., KindClusterLike] | None = None,
) -> KindPreflight:
    """Everything checked before the first change: objects, tools, and a cluster that must not be
    reused (this run would delete it at the end)."""
    plan = plan_for("kind", settings, load_kind_config(), progress)
    for warning in require_tools("kind", settings.versions, runner, which):
        progress(f"warning: {warning.tool}: {warning.problem}")
    kind = kind_lifecycle(settings, which, cluster_factory)
    existed = kind.exists(runner)
    if existed and not reuse:
        raise PlatformError(
            f"a Kind cluster named {settings.cluster_name} already exists, and this run would delete it at the end",
            "reuse it with --inferbox-keep-platform (pytest) or `inferbox up --platform kind`, "
            "or remove it with `inferbox down --platform kind`",
        )
    return KindPreflight(plan, existed, kind)


def provision_kind(
    settings: Settings,
    preflight: KindPreflight,
    report_dir: Path,
    progress: Callable[[str], None],
    runner: CommandRunner,
) -> None:
    """Creates or converges the Kind platform. A reused cluster whose components were installed
    from the same plan only gets our images and manifests again."""
    plan = preflight.plan
    settings.state.create()
    record = settings.state.read_record()
    if not preflight.existed:
        record = {"created_by": "inferbox", "cluster": settings.cluster_name}
        settings.state.write_record(record)
    components = tuple(s.name for s in plan if s.name not in COMPONENT_STEPS_SKIPPABLE)
    fingerprint = plan.fingerprint(components)
    only = None
    if preflight.existed and record.get("components_fingerprint") == fingerprint:
        only = set(COMPONENT_STEPS_SKIPPABLE)
        progress(
            f"reusing Kind cluster {settings.cluster_name}: components unchanged, re-applying our images and manifests"
        )
    run_plan(plan, settings.state, report_dir, progress, only=only, commands=runner, kind=preflight.kind)
    settings.state.write_record(
        {
            **record,
            "components_fingerprint": fingerprint,
            "versions": {c: dict(f) for c, f in settings.versions.entries.items()},
            "installed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )


def deploy_existing(settings: Settings, report_dir: Path, progress: Callable[[str], None]) -> None:
    """Applies our manifests to an existing cluster whose components are already installed."""
    require_tools("existing", settings.versions)
    api = KubeApi.from_kubeconfig(settings.context)
    try:
        missing = [
            name
            for name in required_crds(settings.manifests)
            if api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) is None
        ]
    finally:
        api.close()
    if missing:
        raise PlatformError(
            f"context {settings.context} lacks CRDs our manifests need: {', '.join(missing)}",
            "install the platform's components there first (the plan of `inferbox up --platform kind --dry-run` "
            "lists how), then deploy again",
        )
    for image in local_images(settings.manifests):
        # Our images exist in no registry; only a cluster they were loaded into (Kind) has them.
        progress(
            f"warning: {image.image} is built locally (images/); unless it was loaded into this cluster's nodes, "
            "push it to a registry the cluster pulls from and point a copy of the manifests (--manifests) at it"
        )
    run_plan(plan_for("existing", settings, progress=progress), settings.state, report_dir, progress)


def gateway_forward(settings: Settings, api: KubeApi) -> PortForward:
    """A port-forward to the Envoy Gateway proxy Service of the manifests' Gateway."""
    ai_gateways = ai_gateway_refs(settings.manifests)
    gateways = [g for g in settings.manifests.of_kind("Gateway") if (g.namespace, g.name) not in ai_gateways]
    if not gateways:
        raise PlatformError("the manifests define no Gateway", "add the platform's Gateway to manifests/platform")
    gateway = gateways[0]
    selector = (
        f"gateway.envoyproxy.io/owning-gateway-name={gateway.name},"
        f"gateway.envoyproxy.io/owning-gateway-namespace={gateway.namespace}"
    )
    services = api.list("v1", "Service", "envoy-gateway-system", selector)
    if not services:
        raise PlatformError(
            f"no Envoy Gateway proxy Service for Gateway {gateway.namespace}/{gateway.name} in {settings.context}",
            "deploy the platform (--deploy), or pass --kube-gateway-url URL if the gateway is reachable otherwise",
        )
    port = int(gateway.spec["listeners"][0]["port"])
    return PortForward(settings.context, "envoy-gateway-system", services[0]["metadata"]["name"], port).start(
        settings.timeouts["port-forward"]
    )


def _platform(target: str, settings: Settings, options: TargetOptions, gateway_url: str, api: KubeApi) -> KubePlatform:
    return KubePlatform(
        target=target,
        profile=options.profile,
        topology=read_topology(settings.manifests),
        api=api,
        state=settings.state,
        gateway_url=gateway_url,
        port_forward_timeout_s=settings.timeouts["port-forward"],
        manifests=settings.manifests,
    )


@contextlib.contextmanager
def kind_target(options: TargetOptions) -> Iterator[Platform]:
    settings = settings_from("kind", options.manifests_dir, options.extra)
    runner = SubprocessRunner()
    preflight = preflight_kind(settings, options.keep, options.progress, runner)
    try:
        provision_kind(settings, preflight, options.report_dir, options.progress, runner)
        port = load_kind_config().host_port(GATEWAY_NODE_PORT)
        api = KubeApi.from_kubeconfig(settings.context)
        platform = _platform("kind", settings, options, f"http://127.0.0.1:{port}", api)
        try:
            yield platform
        finally:
            platform.close()
    finally:
        # Only a cluster this run created is deleted, also when the install failed.
        if options.keep:
            options.progress(
                f"Kind cluster {settings.cluster_name} kept (remove it with `inferbox down --platform kind`)"
            )
        elif not preflight.existed and preflight.kind is not None and preflight.kind.exists(runner):
            options.progress(f"deleting Kind cluster {settings.cluster_name}")
            preflight.kind.delete()
            settings.state.install_record.unlink(missing_ok=True)


@contextlib.contextmanager
def existing_target(options: TargetOptions) -> Iterator[Platform]:
    settings = settings_from("existing", options.manifests_dir, options.extra)
    if settings.deploy:
        deploy_existing(settings, options.report_dir, options.progress)
    api = KubeApi.from_kubeconfig(settings.context)
    forwards: list[PortForward] = []
    try:
        if not settings.state.has_jwt_material() and not restore_from_cluster(settings.state, api):
            raise PlatformError(
                f"context {settings.context} has no inferbox client credentials (Secret inference-system/"
                "inferbox-client-credentials) and none are kept locally",
                "deploy our manifests with --deploy (it generates them), or pass --kube-state-dir of the install",
            )
        url = settings.gateway_url
        if url is None:
            forwards.append(gateway_forward(settings, api))
            url = forwards[0].url
        platform = _platform("existing", settings, options, url, api)
        platform.forwards.extend(forwards)
    except BaseException:
        for forward in forwards:
            forward.stop()
        api.close()
        raise
    try:
        yield platform
    finally:
        platform.close()  # stops the port-forward; nothing on the cluster is removed
