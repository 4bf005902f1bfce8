"""Stand-ins for the command-line tools and release downloads, playing against a FakeCluster.

What a chart or release YAML "creates" is read off the plan itself: the objects the waits after
each action name (its Deployments, CRDs, Certificates...). So the fakes never drift from the
recipe, and a test shows that the runner runs every action and that every wait then holds.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from inferbox.cluster import catalog
from inferbox.cluster.actions import Action, ApplyUrl, CreateKindCluster, HelmChartCrds, HelmRelease
from inferbox.cluster.commands import CommandResult
from inferbox.cluster.kindcluster import KindLifecycle
from inferbox.cluster.plan import Plan
from inferbox.cluster.versions import Versions
from inferbox.cluster.waits import (
    ConditionsTrue,
    CrdsEstablished,
    DeploymentAvailable,
    NodesReady,
    ObjectsExist,
    Wait,
    WorkloadReady,
)
from tests.cluster.fakekube import FakeCluster, crd_object

CRDS_BY_NAME = {k.crd_name: k for k in catalog.ALL}


def _workload(kind: str, namespace: str, name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"example.org/{name}:v9.9.9"}]},
            },
        },
    }


def objects_for(wait: Wait) -> list[dict[str, Any]]:
    """What must exist for ``wait`` to be able to hold."""
    if isinstance(wait, CrdsEstablished):
        return [crd_object(CRDS_BY_NAME[name]) for name in wait.names]
    if isinstance(wait, DeploymentAvailable):
        return [_workload("Deployment", wait.namespace, wait.name)]
    if isinstance(wait, WorkloadReady):
        return [_workload(wait.kind, wait.namespace, wait.name)]
    if isinstance(wait, NodesReady):
        return [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i}"}} for i in range(wait.count)]
    if isinstance(wait, ConditionsTrue):
        meta = {"name": wait.name, **({"namespace": wait.namespace} if wait.namespace else {})}
        return [{"apiVersion": wait.api_version, "kind": wait.kind, "metadata": meta, "spec": {}}]
    if isinstance(wait, ObjectsExist):
        meta_ns = {"namespace": wait.namespace} if wait.namespace else {}
        return [
            {"apiVersion": wait.api_version, "kind": wait.kind, "metadata": {"name": n, **meta_ns}} for n in wait.names
        ]
    return []


def action_key(action: Action) -> tuple[str, str] | None:
    if isinstance(action, HelmRelease):
        return ("helm", action.release)
    if isinstance(action, HelmChartCrds):
        return ("helm-template", action.chart.name)
    if isinstance(action, ApplyUrl):
        return ("url", action.url)
    if isinstance(action, CreateKindCluster):
        return ("kind-create", action.name)
    return None


def objects_by_action(plan: Plan) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Each action "creates" what the waits after it name; actions in a row share the waits that
    follow them (Gateway API's YAML and Envoy Gateway's chart both bring CRDs the next wait names)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for step in plan:
        recent: list[tuple[str, str]] = []
        waited = False
        for item in step.items:
            if isinstance(item, Wait):
                for earlier in recent:
                    out[earlier].extend(objects_for(item))
                waited = True
                continue
            key = action_key(item)
            if key is None:
                continue
            if waited:
                recent, waited = [], False
            recent.append(key)
            out.setdefault(key, [])
    return out


class FakeKindCluster:
    """pytest-kind's KindCluster, playing against FakeTools (what it runs is tested in
    test_kind_lifecycle against the real class)."""

    def __init__(self, tools: FakeTools, name: str, **settings: Any) -> None:
        self.tools, self.name, self.settings = tools, name, settings

    def _run(self, argv: list[str]) -> None:
        result = self.tools.run(argv, 600)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)

    def create(self, config_file: str | Path | None = None) -> None:
        self._run(["kind", "create", "cluster", "--name", self.name, "--image", str(self.settings["image"]),
                   "--config", str(config_file)])  # fmt: skip

    def load_docker_image(self, docker_image: str) -> None:
        self._run(["kind", "load", "docker-image", docker_image, "--name", self.name])

    def delete(self) -> None:
        self._run(["kind", "delete", "cluster", "--name", self.name])


class FakeTools:
    """A CommandRunner: kind, helm, docker and kubectl as far as the installer uses them."""

    def __init__(self, cluster: FakeCluster, plan: Plan | None = None, kind_version: str = "v0.29.0") -> None:
        self.cluster = cluster
        self.made = objects_by_action(plan) if plan else {}
        self.calls: list[list[str]] = []
        self.kind_clusters: set[str] = set()
        self.failures: dict[str, list[str]] = {}  # command-line substring -> stderr of the next failures
        self.kind_version = kind_version
        self.helm_version = "v3.18.4"
        self.kubectl_version = "v1.32.5"
        self.docker_ok = True
        self.present = {"docker", "kind", "kubectl", "helm"}

    def which(self, tool: str) -> str | None:
        return f"/usr/local/bin/{tool}" if tool in self.present else None

    def lifecycle(self, name: str, versions: Versions, cache: Path) -> KindLifecycle:
        return KindLifecycle(name, versions, cache, self.which, functools.partial(FakeKindCluster, self))

    def lines(self) -> list[str]:
        return [shlex.join(c) for c in self.calls]

    def _make(self, key: tuple[str, str]) -> None:
        for body in self.made.get(key, []):
            self.cluster.put(yaml.safe_load(yaml.safe_dump(body)))  # a copy per creation

    def _namespace(self, name: str) -> None:
        if self.cluster.get("v1", "Namespace", name) is None:
            self.cluster.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def run(  # noqa: C901 - one branch per faked command
        self, argv: Sequence[str], timeout_s: float, stdin: str | None = None, cwd: Path | None = None
    ) -> CommandResult:
        argv = [Path(argv[0]).name, *argv[1:]]  # kind is run by its path
        self.calls.append(argv)
        line = shlex.join(argv)
        for pattern, errors in self.failures.items():
            if pattern in line and errors:
                return CommandResult(1, "", errors.pop(0))
        ok = CommandResult(0, "", "")
        match argv:
            case ["kind", "get", "clusters"]:
                return CommandResult(0, "\n".join(sorted(self.kind_clusters)), "")
            case ["kind", "create", "cluster", "--name", name, *_]:
                self.kind_clusters.add(name)
                for namespace in ("default", "kube-system", "kube-public"):
                    self._namespace(namespace)
                self._make(("kind-create", name))
                return ok
            case ["kind", "delete", "cluster", "--name", name]:
                self.kind_clusters.discard(name)
                return ok
            case ["kind", "version"]:
                return CommandResult(0, f"kind {self.kind_version} go1.24.2 linux/amd64\n", "")
            case ["docker", "info", *_]:
                return CommandResult(
                    0 if self.docker_ok else 1,
                    "27.5.1" if self.docker_ok else "",
                    "" if self.docker_ok else "Cannot connect",
                )
            case ["kubectl", "version", *_]:
                return CommandResult(0, f'{{"clientVersion": {{"gitVersion": "{self.kubectl_version}"}}}}', "")
            case ["helm", "version", *_]:
                return CommandResult(0, self.helm_version, "")
            case ["helm", "template", _release, chart, *_]:
                return CommandResult(0, yaml.safe_dump_all(self.made.get(("helm-template", chart), [])), "")
            case ["helm", "upgrade", "--install", release, *rest]:
                if "--create-namespace" in rest:
                    self._namespace(rest[rest.index("--namespace") + 1])
                self._make(("helm", release))
                return ok
            case ["docker", "build", *_] | ["kind", "load", *_]:
                return ok
        raise AssertionError(f"the installer ran a command the fakes do not know: {line}")

    def fetch(self, url: str, timeout_s: float) -> str:
        """A release YAML: what the waits after it name, with the Namespaces it creates (a real
        release YAML carries its own)."""
        objects = self.made.get(("url", url), [])
        namespaces = sorted({o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")})
        docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in namespaces]
        return yaml.safe_dump_all(docs + objects)
