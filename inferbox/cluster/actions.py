"""The things a plan step does: run a tool, install a Helm release, apply objects.

Every action can describe itself as the exact commands a person would type (the dry-run plan) and
run itself against a cluster. Every action is idempotent: Helm releases are upgraded in place,
objects are server-side applied, the cluster and the JWT key are created only when missing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from inferbox.cluster.commands import CommandFailed, CommandRunner, run_checked, shell_line
from inferbox.cluster.kindcluster import KindLifecycle
from inferbox.cluster.kube import FIELD_MANAGER, UPSTREAM_FIELD_MANAGER, KubeApi, KubeError, ref, webhook_not_ready
from inferbox.cluster.state import JWT_NAMESPACE, ClusterState, ensure_jwt_material, jwt_secrets
from inferbox.cluster.timeouts import Timeouts
from inferbox.errors import InferboxError

# (API group, kind, namespace or None for cluster-scoped or "wherever the chart puts it")
Created = tuple[str, str, str | None]


class ApplyFailed(InferboxError):
    """The API server refused an object for a reason waiting cannot fix."""


@dataclass(frozen=True)
class Cluster:
    """Where the plan runs: a kube context, and the Kind cluster name when inferbox owns one."""

    context: str
    kind_name: str | None = None


@dataclass
class RunContext:
    cluster: Cluster
    state: ClusterState
    commands: CommandRunner
    timeouts: Timeouts
    api_factory: Callable[[], KubeApi]
    fetch: Callable[[str, float], str]
    repo_root: Path
    progress: Callable[[str], None] = lambda _: None
    kind: KindLifecycle | None = None  # the Kind cluster, when the plan creates one
    cancelled: threading.Event = field(default_factory=threading.Event)
    poll_interval_s: float = 2.0
    _api: KubeApi | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def api(self) -> KubeApi:
        """Created on first use: the kube context exists only once the cluster step ran."""
        with self._lock:
            if self._api is None:
                self._api = self.api_factory()
            return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


class Action:
    """Base class: ``describe`` for the plan, ``run`` against the cluster."""

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        raise NotImplementedError

    def run(self, ctx: RunContext) -> None:
        raise NotImplementedError

    def applies(self) -> tuple[Created, ...]:
        """(group, kind, namespace or None) of what this action creates, for the plan's ordering checks."""
        return ()

    def tolerates_own_webhook(self) -> bool:
        """True when the action installs the webhook that admits its own objects, and rides out
        that webhook's start-up (the plan cannot order those two)."""
        return False

    def objects(self) -> tuple[tuple[str, Mapping[str, Any]], ...]:
        """(where, body) of every object the action applies that inferbox renders or reads from the
        manifests (not upstream release YAML), so that all of them are validated before a run."""
        return ()


def _retrying(ctx: RunContext, timeout_s: float, transient: Callable[[BaseException], bool]) -> Retrying:
    return Retrying(
        stop=stop_after_delay(timeout_s),
        # Backs off from half a poll interval to five of them (1 s to 10 s by default).
        wait=wait_exponential(
            multiplier=ctx.poll_interval_s / 2, min=ctx.poll_interval_s / 2, max=ctx.poll_interval_s * 5
        ),
        retry=retry_if_exception(lambda exc: transient(exc) and not ctx.cancelled.is_set()),
        reraise=True,
    )


def _transient_apply_error(exc: BaseException) -> bool:
    # 404 on apply: the kind is not discoverable yet (CRD just Established, discovery lagging) or
    # its namespace is still being created by a controller.
    return isinstance(exc, KubeError) and (exc.status == 404 or webhook_not_ready(exc))


def apply_objects(ctx: RunContext, objects: Sequence[Mapping[str, Any]], manager: str = FIELD_MANAGER) -> None:
    """Server-side applies each object in order; webhook hiccups are retried within their timeout."""
    api = ctx.api()
    for body in objects:
        try:
            for attempt in _retrying(ctx, ctx.timeouts["webhook-answering"], _transient_apply_error):
                with attempt:
                    api.apply(body, field_manager=manager)
        except KubeError as exc:
            if _transient_apply_error(exc):
                fix = (
                    "the API server or a webhook did not answer within the timeout; if it is only slow, raise "
                    "--kube-timeout webhook-answering=SECONDS"
                )
            else:
                fix = "the API server refused the object: fix what its message names (nothing was retried)"
            raise ApplyFailed(f"applying {ref(body)} failed: {exc}", fix) from exc


def _kubectl_apply(cluster: Cluster, manager: str, source: str) -> str:
    return shell_line(
        ["kubectl", "--context", cluster.context, "apply", "--server-side", "--force-conflicts",
         f"--field-manager={manager}", "-f", source]
    )  # fmt: skip


def _objects_in(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ApplyFailed(f"{source}: not valid YAML: {exc}", "check that the URL serves the release YAML") from exc
    out = []
    for doc in docs:
        if doc.get("kind", "").endswith("List") and "items" in doc:
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def _crds_first(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {"CustomResourceDefinition": 0, "Namespace": 1}
    return sorted(objects, key=lambda o: rank.get(str(o.get("kind")), 2))  # stable: file order otherwise


# -- cluster, images ----------------------------------------------------------------------------
def _kind(ctx: RunContext) -> KindLifecycle:
    if ctx.kind is None:
        raise InferboxError("this plan creates a Kind cluster but the run has no Kind lifecycle", "a bug in inferbox")
    return ctx.kind


@dataclass(frozen=True)
class CreateKindCluster(Action):
    name: str
    config: Path
    node_image: str
    kind_version: str = ""
    digests: tuple[tuple[str, str], ...] = ()  # (versions-file field, sha256) of the pinned kind binaries

    def argv(self) -> list[str]:
        return [
            "kind",
            "create",
            "cluster",
            "--name",
            self.name,
            "--config",
            str(self.config),
            "--image",
            self.node_image,
        ]

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        lines = [
            f"$ {shell_line(self.argv())}",
            f"  (through pytest-kind's KindCluster; skipped when `kind get clusters` already lists {self.name})",
        ]
        if self.kind_version:
            lines.append(
                f"  kind: the one on PATH; without it pytest-kind fetches kind {self.kind_version} from "
                "https://github.com/kubernetes-sigs/kind/releases, used only if its sha256 is the pinned one:"
            )
            lines += [f"    {name}: {digest}" for name, digest in self.digests]
        return lines

    def run(self, ctx: RunContext) -> None:
        kind = _kind(ctx)
        if kind.exists(ctx.commands):
            ctx.progress(f"Kind cluster {self.name} exists: reusing it")
            return
        kind.create(self.config)


@dataclass(frozen=True)
class BuildImage(Action):
    image: str
    dockerfile: str  # relative to the repository root

    def argv(self, root: Path | str = ".") -> list[str]:
        return ["docker", "build", "--tag", self.image, "--file", f"{root}/{self.dockerfile}", str(root)]

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        return [f"$ {shell_line(self.argv())}   (from the repository root)"]

    def run(self, ctx: RunContext) -> None:
        run_checked(ctx.commands, self.argv(ctx.repo_root), ctx.timeouts["image-build"], cwd=ctx.repo_root)


@dataclass(frozen=True)
class LoadImage(Action):
    image: str
    cluster_name: str

    def argv(self) -> list[str]:
        return ["kind", "load", "docker-image", self.image, "--name", self.cluster_name]

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        return [f"$ {shell_line(self.argv())}   (pytest-kind's KindCluster.load_docker_image)"]

    def run(self, ctx: RunContext) -> None:
        _kind(ctx).load_image(self.image)


# -- Helm --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chart:
    """A chart reference: ``oci://...`` alone, or a name in a classic repository URL."""

    name: str
    version: str
    repo: str | None = None

    def args(self) -> list[str]:
        repo = ["--repo", self.repo] if self.repo else []
        return [self.name, *repo, "--version", self.version]

    def __str__(self) -> str:
        return f"{self.repo}/{self.name}@{self.version}" if self.repo else f"{self.name}@{self.version}"


def values_digest(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class HelmRelease(Action):
    release: str
    chart: Chart
    namespace: str
    values: Mapping[str, Any] = field(default_factory=dict, hash=False)
    skip_crds: bool = False
    # Retry the whole upgrade while the release's own webhook is not serving yet (KServe creates
    # ClusterServingRuntimes in the same release as the webhook that admits them).
    retry_webhook_race: bool = False
    creates: tuple[Created, ...] = ()

    def values_file(self, state: ClusterState | None) -> str:
        name = f"values-{self.release}.yaml"
        return str(state.work_dir / name) if state else name

    def argv(self, cluster: Cluster, values_file: str, timeout_s: float) -> list[str]:
        argv = ["helm", "upgrade", "--install", self.release, *self.chart.args()]
        argv += ["--namespace", self.namespace, "--create-namespace", "--kube-context", cluster.context]
        argv += ["--timeout", f"{int(timeout_s)}s"]
        if self.values:
            argv += ["--values", values_file]
        if self.skip_crds:
            argv.append("--skip-crds")
        return argv

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        lines = [f"$ {shell_line(self.argv(cluster, self.values_file(None), timeouts['helm']))}"]
        if self.values:
            lines.append(f"  with {self.values_file(None)}:")
            lines += ["    " + line for line in yaml.safe_dump(dict(self.values), sort_keys=False).splitlines()]
        if self.retry_webhook_race:
            lines.append(
                "  (re-run while it fails with `failed calling webhook`: the chart's own webhook starts with it)"
            )
        return lines

    def run(self, ctx: RunContext) -> None:
        values_file = self.values_file(ctx.state)
        if self.values:
            Path(values_file).write_text(yaml.safe_dump(dict(self.values), sort_keys=False))
        argv = self.argv(ctx.cluster, values_file, ctx.timeouts["helm"])

        def webhook_race(exc: BaseException) -> bool:
            return self.retry_webhook_race and isinstance(exc, CommandFailed) and "failed calling webhook" in exc.detail

        for attempt in _retrying(ctx, ctx.timeouts["webhook-answering"], webhook_race):
            with attempt:
                run_checked(ctx.commands, argv, ctx.timeouts["helm"] + 60)

    def applies(self) -> tuple[Created, ...]:
        return self.creates

    def tolerates_own_webhook(self) -> bool:
        return self.retry_webhook_race


@dataclass(frozen=True)
class HelmChartCrds(Action):
    """Applies only a chart's CRDs, server-side: Helm never upgrades CRDs itself."""

    release: str
    chart: Chart
    namespace: str
    set_values: Mapping[str, str] = field(default_factory=dict, hash=False)

    def argv(self) -> list[str]:
        argv = ["helm", "template", self.release, *self.chart.args(), "--namespace", self.namespace, "--include-crds"]
        for key, value in self.set_values.items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        return [
            f"$ {shell_line(self.argv())} \\",
            "    | (keep only kind: CustomResourceDefinition) \\",
            f"    | {_kubectl_apply(cluster, UPSTREAM_FIELD_MANAGER, '-')}",
        ]

    def run(self, ctx: RunContext) -> None:
        rendered = run_checked(ctx.commands, self.argv(), ctx.timeouts["helm"]).stdout
        crds = [o for o in _objects_in(rendered, str(self.chart)) if o.get("kind") == "CustomResourceDefinition"]
        if not crds:
            raise ApplyFailed(
                f"{self.chart} rendered no CustomResourceDefinitions", "check the chart and its --set values"
            )
        apply_objects(ctx, crds, UPSTREAM_FIELD_MANAGER)

    def applies(self) -> tuple[Created, ...]:
        return (("apiextensions.k8s.io", "CustomResourceDefinition", None),)


# -- release YAML and our own objects ------------------------------------------------------------
@dataclass(frozen=True)
class ApplyUrl(Action):
    """An upstream release YAML, server-side applied (CRDs and Namespaces first).

    ``data_overrides`` edits ConfigMap data before applying, so the value has one owner and a
    re-run does not flip it back to the release default.
    """

    url: str
    data_overrides: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict, hash=False)
    creates: tuple[Created, ...] = ()

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        lines = []
        for (namespace, name), data in self.data_overrides.items():
            for key, value in data.items():
                lines.append(f"  (before applying: ConfigMap {namespace}/{name} data.{key} = {value!r})")
        return [f"$ {_kubectl_apply(cluster, UPSTREAM_FIELD_MANAGER, self.url)}", *lines]

    def run(self, ctx: RunContext) -> None:
        objects = _objects_in(ctx.fetch(self.url, ctx.timeouts["download"]), self.url)
        if not objects:
            raise ApplyFailed(f"{self.url} holds no objects", "check the version in the versions file")
        for obj in objects:
            meta = obj.get("metadata") or {}
            key = (meta.get("namespace", ""), meta.get("name", ""))
            if obj.get("kind") == "ConfigMap" and key in self.data_overrides:
                obj["data"] = {**(obj.get("data") or {}), **self.data_overrides[key]}
        apply_objects(ctx, _crds_first(objects), UPSTREAM_FIELD_MANAGER)

    def applies(self) -> tuple[Created, ...]:
        return self.creates

    def tolerates_own_webhook(self) -> bool:
        # A release YAML that brings its own webhook (Knative's config webhook validates the
        # ConfigMaps in the same file): apply_objects retries while that webhook starts.
        return True


def _shown(path: str) -> str:
    """A path relative to the working directory when it is below it (shorter plans)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class ApplyObjects(Action):
    """Objects inferbox renders or reads from manifests/, server-side applied in the given order.

    ``sources`` names the file of each object (manifests); rendered objects are shown as YAML.
    """

    title: str
    bodies: tuple[Mapping[str, Any], ...] = field(hash=False)
    show_yaml: bool = False
    sources: tuple[str, ...] = ()

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        if self.show_yaml:
            lines = [f"$ {_kubectl_apply(cluster, FIELD_MANAGER, '-')} <<'EOF'   # {self.title}"]
            lines += [
                "    " + line
                for line in yaml.safe_dump_all([dict(o) for o in self.bodies], sort_keys=False).splitlines()
            ]
            return [*lines, "    EOF"]
        lines = [f"$ {_kubectl_apply(cluster, FIELD_MANAGER, 'FILE')}   # {self.title}, objects in this order:"]
        for index, obj in enumerate(self.bodies):
            source = f"  <- {_shown(self.sources[index])}" if index < len(self.sources) else ""
            lines.append(f"    {ref(obj)}{source}")
        return lines

    def run(self, ctx: RunContext) -> None:
        apply_objects(ctx, self.bodies)

    def applies(self) -> tuple[Created, ...]:
        return tuple(
            (_group(str(o["apiVersion"])), str(o["kind"]), (o.get("metadata") or {}).get("namespace"))
            for o in self.bodies
        )

    def objects(self) -> tuple[tuple[str, Mapping[str, Any]], ...]:
        return tuple(
            (self.sources[i] if i < len(self.sources) else self.title, body) for i, body in enumerate(self.bodies)
        )


@dataclass(frozen=True)
class JwtSecrets(Action):
    """The JWT server's key and client registry, plus the suite's credentials, as Secrets."""

    tenants: tuple[str, ...]

    def describe(self, cluster: Cluster, timeouts: Timeouts) -> list[str]:
        return [
            "generate, once, an RS256 signing key and one client per tenant "
            f"({', '.join(self.tenants)}) in the state folder (or restore them from the cluster's Secrets)",
            f"$ {_kubectl_apply(cluster, FIELD_MANAGER, '-')}   # Secrets inference-system/jwt-server-keys, "
            "jwt-server-clients, inferbox-client-credentials",
        ]

    def run(self, ctx: RunContext) -> None:
        how = ensure_jwt_material(ctx.state, ctx.api(), list(self.tenants))
        ctx.progress(f"JWT signing key and client credentials {how} ({ctx.state.root})")
        apply_objects(ctx, jwt_secrets(ctx.state))

    def applies(self) -> tuple[Created, ...]:
        return (("", "Secret", JWT_NAMESPACE),)
