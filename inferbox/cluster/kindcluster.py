"""The Kind cluster: its checked-in config, and its lifecycle through pytest-kind's ``KindCluster``.

pytest-kind (the maintained fork, pytest-kind-ng) would download kind v0.17.0 and kubectl v1.25 by
default: too old for the pinned node image (kind supports a node image only with the release it
shipped with) and for Knative's Kubernetes floor. So it is given the ``kind`` and ``kubectl`` found
on PATH, the node image from the versions file, and, when ``kind`` is missing, the URL of the pinned
kind release; the binary it fetches is used only if its sha256 is the pinned one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from inferbox.cluster.commands import CommandRunner, run_checked
from inferbox.cluster.versions import Versions
from inferbox.errors import InferboxError

KIND_CONFIG = Path(__file__).with_name("cluster.yaml")
DEFAULT_CLUSTER_NAME = "inference-in-a-box"
GATEWAY_NODE_PORT = 30080


def context_for(cluster_name: str) -> str:
    """The kube context ``kind create cluster`` writes for a cluster."""
    return f"kind-{cluster_name}"


@dataclass(frozen=True)
class KindConfig:
    path: Path
    body: dict[str, Any]

    @property
    def node_count(self) -> int:
        return len(self.body.get("nodes") or [{}])

    def port_mappings(self) -> dict[int, int]:
        """NodePort -> the 127.0.0.1 port published for it, over every node."""
        return {
            int(m["containerPort"]): int(m["hostPort"])
            for node in self.body.get("nodes") or []
            for m in node.get("extraPortMappings") or []
        }

    def host_port(self, node_port: int) -> int:
        """The 127.0.0.1 port that reaches ``node_port`` on the control plane."""
        for node in self.body.get("nodes") or []:
            for mapping in node.get("extraPortMappings") or []:
                if int(mapping.get("containerPort", 0)) == node_port:
                    return int(mapping["hostPort"])
        raise InferboxError(
            f"{self.path} maps no host port to NodePort {node_port}",
            f"add an extraPortMappings entry with containerPort: {node_port} on the control-plane node",
        )


def load_kind_config(path: Path = KIND_CONFIG) -> KindConfig:
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict) or body.get("kind") != "Cluster":
        raise InferboxError(
            f"{path} is not a Kind cluster config", "it needs kind: Cluster and apiVersion kind.x-k8s.io/v1alpha4"
        )
    return KindConfig(path, body)


# -- the cluster's lifecycle, through pytest-kind ----------------------------------------------------
KIND_RELEASES = "https://github.com/kubernetes-sigs/kind/releases/download"


class KindBinaryError(InferboxError):
    """The kind binary pytest-kind fetched is not the pinned release."""


# pytest-kind-ng is GPL-3.0-or-later and inferbox Apache-2.0: it is an optional extra, installed
# only by those who run the Kind target (and by the dev extra, for the tests).
KIND_EXTRA_INSTALL = "pip install 'inferbox[kind]'   (in a checkout: make setup, whose dev extra includes it)"


def pytest_kind_installed() -> bool:
    return importlib.util.find_spec("pytest_kind") is not None


def kind_cluster_class() -> Callable[..., KindClusterLike]:
    """pytest-kind's ``KindCluster``; a clear error naming the extra when it is not installed."""
    try:
        from pytest_kind import KindCluster
    except ImportError as exc:
        raise KindExtraMissing(
            f"the Kind target runs its cluster through pytest-kind-ng, which is not installed ({exc}); it is the "
            "optional extra 'kind' (GPL-3.0-or-later, so not a dependency of inferbox itself)",
            f"install it: {KIND_EXTRA_INSTALL}",
        ) from exc
    cluster: Callable[..., KindClusterLike] = KindCluster
    return cluster


class KindExtraMissing(InferboxError):
    """pytest-kind-ng, the optional extra the Kind target needs, is not installed."""


class KindClusterLike(Protocol):
    """What inferbox uses of pytest-kind's ``KindCluster``."""

    def create(self, config_file: str | Path | None = None) -> None: ...

    def load_docker_image(self, docker_image: str) -> None: ...

    def delete(self) -> None: ...


def host_platform() -> tuple[str, str]:
    """(os, arch) as kind names its release binaries: linux/darwin, amd64/arm64."""
    machine = platform.machine().lower()
    return platform.system().lower(), {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def checksum_field(os_name: str, arch: str) -> str:
    """The versions file's field holding the sha256 of kind's binary for this platform."""
    return f"kindSha256{os_name.capitalize()}{arch.capitalize()}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_kubeconfig() -> Path:
    """Where kind (and kubectl) keep contexts: $KUBECONFIG's first file, else ~/.kube/config."""
    configured = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(configured) if configured else Path.home() / ".kube" / "config"


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


class KindLifecycle:
    """Creates, loads images into, and deletes the Kind cluster through pytest-kind's KindCluster.

    pytest-kind is handed the ``kind`` and ``kubectl`` found on PATH. Without ``kind`` on PATH it
    fetches the pinned release (``kubernetes.kind`` of the versions file, not pytest-kind's own
    default) into ``cache_dir``, and the binary is used only once its sha256 is the pinned one.
    Build it in the main thread: pytest-kind makes a ``.pytest-kind`` folder in the working
    directory, which is ``cache_dir`` while it does.
    """

    def __init__(
        self,
        name: str,
        versions: Versions,
        cache_dir: Path,
        which: Callable[[str], str | None] = shutil.which,
        cluster_factory: Callable[..., KindClusterLike] | None = None,
        kubeconfig: Path | None = None,
        platform_tag: tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.version = versions.get("kubernetes", "kind")
        self.node_image = versions.get("kubernetes", "nodeImage")
        self.os, self.arch = platform_tag or host_platform()
        self.field = checksum_field(self.os, self.arch)
        self.expected = versions.entries.get("kubernetes", {}).get(self.field)
        self.cache_dir = cache_dir
        found = which("kind")
        self.on_path = found is not None
        self.kind_path = Path(found) if found else cache_dir / f"kind-{self.version}-{self.os}-{self.arch}"
        kubectl = which("kubectl")
        if cluster_factory is None:
            cluster_factory = kind_cluster_class()
        cache_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.chdir(cache_dir):
            self.cluster = cluster_factory(
                name,
                kubeconfig=kubeconfig or default_kubeconfig(),
                image=self.node_image,
                kind_path=self.kind_path,
                kubectl_path=Path(kubectl) if kubectl else None,
            )

    @property
    def download_url(self) -> str:
        return f"{KIND_RELEASES}/{self.version}/kind-{self.os}-{self.arch}"

    def ensure_kind(self) -> None:
        """The kind on PATH as it is; otherwise the pinned release, fetched by pytest-kind once and
        checked against its pinned sha256 before every use."""
        if self.on_path:
            return
        if not self.expected:
            raise KindBinaryError(
                f"kind is not on PATH and the versions file pins no sha256 for kind-{self.os}-{self.arch}",
                f"install kind {self.version} yourself (docs/kind.md), or add kubernetes.{self.field}",
            )
        if not self.kind_path.exists():
            # pytest-kind downloads from KIND_DOWNLOAD_URL when it is set: the pinned release.
            ensure = getattr(self.cluster, "ensure_kind", None)
            if ensure is None:
                raise KindBinaryError("this KindCluster cannot fetch kind", "install kind on PATH")
            with _environment("KIND_DOWNLOAD_URL", self.download_url):
                ensure()
        actual = sha256_of(self.kind_path)
        if actual != self.expected:
            self.kind_path.unlink(missing_ok=True)
            raise KindBinaryError(
                f"the kind binary fetched from {self.download_url} has sha256 {actual}, not the pinned "
                f"{self.expected} (kubernetes.{self.field}); it was deleted and not run",
                f"install kind {self.version} on PATH yourself (docs/kind.md), or correct the pinned digest",
            )

    def argv(self, *args: str) -> list[str]:
        return [str(self.kind_path), *args]

    def exists(self, runner: CommandRunner) -> bool:
        self.ensure_kind()
        return self.name in run_checked(runner, self.argv("get", "clusters"), 60).stdout.split()

    def create(self, config: Path) -> None:
        self.ensure_kind()
        self.cluster.create(config_file=config)

    def load_image(self, image: str) -> None:
        self.ensure_kind()
        self.cluster.load_docker_image(image)

    def delete(self) -> None:
        self.ensure_kind()
        self.cluster.delete()
