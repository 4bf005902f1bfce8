"""Smaller pieces: image tags, the port-forward process, failure evidence on a failed check, and
``inferbox down`` refusing what inferbox did not create."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from inferbox.cli import main
from inferbox.cluster.portforward import PortForward
from inferbox.cluster.readback import image_tag, normalise
from inferbox.contract import Capability
from inferbox.errors import InferboxError, PlatformError
from inferbox.pytest_plugin import kind as kind_plugin
from inferbox.pytest_plugin.core import FOLDER_KEY


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("docker.io/istio/pilot:1.26.2", "1.26.2"),
        ("quay.io/prometheus/prometheus:v3.4.1@sha256:abc", "v3.4.1"),
        ("localhost:5000/inferbox/jwt-server:0.1.0", "0.1.0"),
        ("gcr.io/knative-releases/controller@sha256:abc", "sha256:abc"),
        ("busybox", "latest"),
    ],
)
def test_image_tags(image: str, tag: str) -> None:
    assert image_tag(image) == tag


def test_versions_compare_without_spelling_differences() -> None:
    assert normalise("knative-v1.18.1") == normalise("v1.18.1") == normalise("1.18.1")


def _fake_kubectl(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kubectl"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_port_forward_reports_its_local_port_and_is_stopped_by_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_kubectl(tmp_path, 'echo "Forwarding from 127.0.0.1:43210 -> 10080"\nexec sleep 60\n', monkeypatch)
    forward = PortForward("ctx", "envoy-gateway-system", "envoy-gw", 80).start(timeout_s=10)
    assert forward.url == "http://127.0.0.1:43210"
    assert forward.process is not None
    pid = forward.process.pid
    forward.stop()
    assert forward.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_port_forward_that_fails_says_what_kubectl_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_kubectl(tmp_path, 'echo "error: services \\"envoy-gw\\" not found"\nexit 1\n', monkeypatch)
    with pytest.raises(PlatformError, match='services "envoy-gw" not found'):
        PortForward("ctx", "envoy-gateway-system", "envoy-gw", 80).start(timeout_s=10)


class _Outcome:
    def __init__(self, report: Any) -> None:
        self.report = report

    def get_result(self) -> Any:
        return self.report


def _drive_hook(item: Any, report: Any) -> None:
    hook = kind_plugin.pytest_runtest_makereport(item)
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(_Outcome(report))


def test_a_failed_check_on_a_cluster_dumps_evidence_into_the_report(tmp_path: Path) -> None:
    dumped: list[Path] = []

    def dump_evidence(dest: Path) -> Path:
        dumped.append(dest)
        return dest

    platform = SimpleNamespace(dump_evidence=dump_evidence, capabilities={Capability.FAILURE_EVIDENCE})
    config = SimpleNamespace(stash={FOLDER_KEY: tmp_path})
    item = SimpleNamespace(funcargs={"platform": platform}, config=config, nodeid="suites/x.py::test_y[a/b]")
    failed = SimpleNamespace(when="call", failed=True, sections=[])
    _drive_hook(item, failed)
    assert dumped == [tmp_path / "failures" / "suites_x.py_test_y_a_b_"]
    assert "cluster events, pods and logs" in failed.sections[0][1]
    passed = SimpleNamespace(when="call", failed=False, sections=[])
    _drive_hook(item, passed)
    assert len(dumped) == 1


def test_down_never_touches_an_existing_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["down", "--platform", "existing", "--kube-context", "staging"])
    assert exited.value.code == 2
    assert "never deletes from an existing cluster" in capsys.readouterr().err


def test_down_deletes_only_a_kind_cluster_inferbox_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from inferbox.cluster.state import ClusterState
    from tests.cluster.fakekube import FakeCluster
    from tests.cluster.fakes import FakeTools

    tools = FakeTools(FakeCluster())
    tools.kind_clusters.add("inference-in-a-box")
    monkeypatch.setattr("inferbox.cluster.cli.SubprocessRunner", lambda: tools)
    monkeypatch.setattr(
        "inferbox.cluster.cli.kind_lifecycle",
        lambda settings: tools.lifecycle(settings.cluster_name, settings.versions, tmp_path / "bin"),
    )
    args = ["down", "--platform", "kind", "--kube-state-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert "was not created by inferbox" in capsys.readouterr().err
    assert "inference-in-a-box" in tools.kind_clusters
    state = ClusterState.for_cluster("kind", "inference-in-a-box", tmp_path)
    state.create()
    state.write_record({"created_by": "inferbox"})
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 0
    assert tools.kind_clusters == set()
    assert not state.root.exists()


def test_the_api_client_authenticates_as_the_kubeconfig_says(tmp_path: Path) -> None:
    import yaml

    from inferbox.cluster.kube import KubeApi
    from tests.cluster.fakekube import FakeCluster

    cluster = FakeCluster()
    cluster.start()
    try:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": cluster.url}}],
            "users": [{"name": "u", "user": {"token": "t0ken"}}],
            "contexts": [{"name": "staging", "context": {"cluster": "c", "user": "u"}}],
        }
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        api = KubeApi.from_kubeconfig("staging", str(path))
        assert api.server_version() == "v1.32.5"
        api.close()
        assert cluster.authorizations == ["Bearer t0ken"]
        with pytest.raises(InferboxError, match="cannot load kube context nope") as caught:
            KubeApi.from_kubeconfig("nope", str(path))
        assert "--kube-context" in caught.value.fix
    finally:
        cluster.stop()


def test_prometheus_and_jaeger_are_reached_by_one_port_forward_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferbox.cluster.kube import KubeApi
    from inferbox.cluster.platform import KubePlatform
    from inferbox.cluster.state import ClusterState, ensure_jwt_material
    from inferbox.manifests import load_manifests
    from inferbox.profile import load_profile
    from inferbox.topology import read_topology

    calls = tmp_path / "calls"
    _fake_kubectl(
        tmp_path, f'echo "$@" >> {calls}\necho "Forwarding from 127.0.0.1:4$$ -> 9090"\nexec sleep 60\n', monkeypatch
    )
    state = ClusterState(tmp_path / "state")
    ensure_jwt_material(state, None, ["tenant-a"])
    api = KubeApi("http://127.0.0.1:9", context="kind-x")
    platform = KubePlatform(
        "kind", load_profile(), read_topology(load_manifests()), api, state, "http://127.0.0.1:8080"
    )
    try:
        prometheus = platform.prometheus_url()
        assert platform.prometheus_url() == prometheus  # reused, not a second process
        jaeger = platform.jaeger_query_url()
        assert prometheus != jaeger
        lines = calls.read_text().splitlines()
        assert len(lines) == 2
        expected = "--context kind-x --namespace monitoring port-forward --address 127.0.0.1"
        assert f"{expected} service/prometheus-kube-prometheus-prometheus :9090" in lines[0]
        assert "service/jaeger-query :16686" in lines[1]
        processes = [f.process for f in platform.forwards]
    finally:
        platform.close()
    assert all(p is not None and p.poll() is not None for p in processes)
