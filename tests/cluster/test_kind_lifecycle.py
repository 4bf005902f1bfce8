"""The Kind cluster's lifecycle goes through pytest-kind's KindCluster (the real class), with a fake
``kind`` executable and a fake download: no cluster, no network. pytest-kind is handed the pinned
node image and the kind found on PATH; without one it fetches the pinned release, which is used
only when its sha256 is the pinned one."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferbox.cluster.commands import SubprocessRunner
from inferbox.cluster.kindcluster import KIND_EXTRA_INSTALL

# The class under test is pytest-kind's own: the optional extra 'kind' (in the dev extra). Without
# it the Kind target refuses with the install command (test_kind_prereqs.py).
pytest.importorskip(
    "pytest_kind", reason=f"pytest-kind-ng, the optional extra 'kind', is not installed: {KIND_EXTRA_INSTALL}"
)

from inferbox.cluster.kindcluster import KIND_CONFIG, KindBinaryError, KindLifecycle, checksum_field
from inferbox.cluster.versions import load_versions

NAME = "inference-in-a-box"
# A stand-in for kind: logs its arguments; `create cluster` writes the kubeconfig it is told to.
FAKE_KIND = """#!/bin/sh
echo "$*" >> "{log}"
case "$1 $2" in
  "get clusters") cat "{clusters}" 2>/dev/null || true ;;
  "create cluster")
    for arg in "$@"; do case "$arg" in --kubeconfig=*) kubeconfig="${{arg#--kubeconfig=}}" ;; esac; done
    printf "{kubeconfig_yaml}\\n" > "$kubeconfig"
    echo "{name}" >> "{clusters}" ;;
esac
"""
KUBECONFIG = (
    "apiVersion: v1\\nkind: Config\\ncurrent-context: kind-x\\nclusters: [{name: x, cluster: {server: "
    "'https://127.0.0.1:6443'}}]\\ncontexts: [{name: kind-x, context: {cluster: x, user: x}}]\\nusers: [{name: x, "
    "user: {token: t}}]"
)


def _fake_kind(path: Path, log: Path) -> bytes:
    text = FAKE_KIND.format(log=log, clusters=log.with_suffix(".clusters"), kubeconfig_yaml=KUBECONFIG, name=NAME)
    return text.encode()


@pytest.fixture
def kind_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "kind.log"
    kind = bin_dir / "kind"
    kind.write_bytes(_fake_kind(kind, log))
    kind.chmod(kind.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_the_lifecycle_runs_through_pytest_kind_with_the_pinned_node_image(kind_on_path: Path, tmp_path: Path) -> None:
    versions = load_versions(environ={})
    kubeconfig = tmp_path / "kubeconfig"
    kind = KindLifecycle(NAME, versions, tmp_path / "cache", kubeconfig=kubeconfig)
    assert kind.on_path
    assert not kind.exists(SubprocessRunner())
    kind.create(KIND_CONFIG)
    assert kind.exists(SubprocessRunner())
    kind.load_image("inferbox/jwt-server:dev")
    kind.delete()
    lines = kind_on_path.read_text().splitlines()
    create = next(line for line in lines if line.startswith("create cluster"))
    assert f"--name={NAME}" in create
    assert f"--kubeconfig={kubeconfig}" in create
    assert f"--image={versions.get('kubernetes', 'nodeImage')}" in create
    assert f"--config {KIND_CONFIG}" in create
    assert f"load docker-image --name {NAME} inferbox/jwt-server:dev" in lines
    assert any(line.startswith(f"delete cluster --name={NAME}") for line in lines)
    assert (tmp_path / "cache" / ".pytest-kind").is_dir(), "pytest-kind's own folder stays in the cache"


class FakeDownload:
    """What pytest-kind's ``requests.get`` returns, for a fixed body."""

    def __init__(self, body: bytes, urls: list[str], url: str) -> None:
        self.body = body
        urls.append(url)

    def __enter__(self) -> FakeDownload:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def raise_for_status(self) -> None:
        return None

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        yield self.body


def _without_kind(monkeypatch: pytest.MonkeyPatch, body: bytes) -> list[str]:
    urls: list[str] = []
    monkeypatch.setattr("pytest_kind.cluster.requests.get", lambda url, **_: FakeDownload(body, urls, url))
    return urls


def _which_without_kind(tool: str) -> str | None:
    return None if tool == "kind" else shutil.which(tool)


def test_without_kind_on_path_pytest_kind_fetches_the_pinned_release_and_it_is_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "kind.log"
    body = _fake_kind(tmp_path / "unused", log)
    urls = _without_kind(monkeypatch, body)
    field = checksum_field("linux", "amd64")
    env_name = "INFERBOX_VERSION_KUBERNETES_KIND_SHA256_LINUX_AMD64"
    versions = load_versions(environ={env_name: hashlib.sha256(body).hexdigest()})
    assert field in versions.entries["kubernetes"]
    kind = KindLifecycle(
        NAME,
        versions,
        tmp_path / "cache",
        _which_without_kind,
        kubeconfig=tmp_path / "kc",
        platform_tag=("linux", "amd64"),
    )
    assert not kind.exists(SubprocessRunner())
    assert urls == ["https://github.com/kubernetes-sigs/kind/releases/download/v0.29.0/kind-linux-amd64"]
    assert kind.kind_path == tmp_path / "cache" / "kind-v0.29.0-linux-amd64"
    assert log.read_text().splitlines() == ["get clusters"], "the verified binary ran"
    assert "KIND_DOWNLOAD_URL" not in os.environ
    kind.exists(SubprocessRunner())
    assert len(urls) == 1, "fetched once, verified again before each use"


def test_a_fetched_kind_whose_digest_differs_is_deleted_and_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "kind.log"
    _without_kind(monkeypatch, _fake_kind(tmp_path / "unused", log))
    kind = KindLifecycle(
        NAME,
        load_versions(environ={}),
        tmp_path / "cache",
        _which_without_kind,
        kubeconfig=tmp_path / "kc",
        platform_tag=("linux", "amd64"),
    )
    with pytest.raises(KindBinaryError) as caught:
        kind.create(KIND_CONFIG)
    assert "c72eda46430f065fb45c5f70e7c957cc9209402ef309294821978677c8fb3284" in caught.value.problem
    assert "install kind v0.29.0 on PATH" in caught.value.fix
    assert not kind.kind_path.exists()
    assert not log.exists(), "the binary never ran"


def test_a_platform_without_a_pinned_digest_is_refused_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = _without_kind(monkeypatch, b"")
    kind = KindLifecycle(
        NAME, load_versions(environ={}), tmp_path / "c", _which_without_kind, kubeconfig=tmp_path / "k",
        platform_tag=("freebsd", "riscv64"),
    )  # fmt: skip
    with pytest.raises(KindBinaryError, match="pins no sha256 for kind-freebsd-riscv64"):
        kind.delete()
    assert urls == []


def test_every_pinned_digest_is_a_sha256() -> None:
    fields: dict[str, Any] = dict(load_versions(environ={}).entries["kubernetes"])
    digests = {k: v for k, v in fields.items() if k.startswith("kindSha256")}
    assert set(digests) == {checksum_field(o, a) for o in ("linux", "darwin") for a in ("amd64", "arm64")}
    assert all(len(v) == 64 and int(v, 16) >= 0 for v in digests.values())
