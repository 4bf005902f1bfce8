"""Prerequisites: every missing or unusable tool reported at once, with how to install it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from inferbox.cluster import kindcluster, prereqs
from inferbox.cluster.kindcluster import KindExtraMissing, KindLifecycle, kind_cluster_class
from inferbox.cluster.prereqs import check_tools, require_tools
from inferbox.cluster.versions import load_versions
from inferbox.errors import ToolMissingError
from tests.cluster.fakekube import FakeCluster
from tests.cluster.fakes import FakeTools

VERSIONS = load_versions(environ={})


@pytest.fixture
def tools() -> FakeTools:
    return FakeTools(FakeCluster())


def test_all_present_and_at_the_right_versions(tools: FakeTools) -> None:
    assert check_tools("kind", VERSIONS, tools, tools.which) == []


def test_every_missing_tool_is_reported_in_one_error_with_install_hints(tools: FakeTools) -> None:
    tools.present = set()
    with pytest.raises(ToolMissingError) as caught:
        require_tools("kind", VERSIONS, tools, tools.which)
    problem = caught.value.problem
    for tool in ("docker", "kubectl", "helm"):
        assert f"{tool}: not found on PATH" in problem
    assert "https://dl.k8s.io/release/v1.32.5/" in problem


def test_a_missing_kind_is_fetched_pinned_rather_than_refused(tools: FakeTools) -> None:
    """Without kind on PATH, pytest-kind fetches the pinned release (checked against its sha256):
    a warning with the manual install command, not a refusal."""
    tools.present = {"docker", "kubectl", "helm"}
    [finding] = require_tools("kind", VERSIONS, tools, tools.which)
    assert finding.tool == "kind"
    assert not finding.fatal
    assert "fetch the pinned kind v0.29.0" in finding.problem
    assert "https://kind.sigs.k8s.io/dl/v0.29.0/" in finding.hint  # the pinned kind, not "latest"


def test_wrong_versions_are_reported_together(tools: FakeTools) -> None:
    tools.kind_version = "v0.27.0"
    tools.helm_version = "v4.0.0"
    tools.docker_ok = False
    findings = {f.tool: f for f in check_tools("kind", VERSIONS, tools, tools.which)}
    assert set(findings) == {"kind", "helm", "docker"}
    assert "v0.27.0" in findings["kind"].problem
    assert "v0.29.0" in findings["kind"].problem
    assert "not tested with Helm 4" in findings["helm"].problem
    assert all(f.fatal for f in findings.values())


def test_kubectl_version_skew_is_a_warning_only(tools: FakeTools) -> None:
    tools.kubectl_version = "v1.35.0"
    (finding,) = check_tools("kind", VERSIONS, tools, tools.which)
    assert finding.tool == "kubectl"
    assert not finding.fatal
    assert require_tools("kind", VERSIONS, tools, tools.which) == [finding]
    tools.kubectl_version = "v1.33.2"
    assert check_tools("kind", VERSIONS, tools, tools.which) == []


def test_an_existing_cluster_needs_only_kubectl(tools: FakeTools) -> None:
    tools.present = {"kubectl"}
    assert check_tools("existing", VERSIONS, tools, tools.which) == []


def test_without_the_kind_extra_the_target_names_it(
    tools: FakeTools, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pytest-kind-ng (GPL-3.0-or-later) is the optional extra 'kind': the prerequisites and the
    cluster's lifecycle both say how to install it."""
    monkeypatch.setitem(sys.modules, "pytest_kind", None)  # an import of it now fails
    monkeypatch.setattr(prereqs, "pytest_kind_installed", lambda: False)
    with pytest.raises(ToolMissingError) as caught:
        require_tools("kind", VERSIONS, tools, tools.which)
    assert "pytest-kind-ng: the Python package the Kind cluster's lifecycle runs through is not installed" in (
        caught.value.problem
    )
    assert "install: pip install 'inferbox[kind]'" in caught.value.problem
    assert check_tools("existing", VERSIONS, tools, tools.which) == [], "the existing target does not need it"
    with pytest.raises(KindExtraMissing) as missing:
        kind_cluster_class()
    assert "optional extra 'kind' (GPL-3.0-or-later" in missing.value.problem
    assert "pip install 'inferbox[kind]'" in missing.value.fix
    with pytest.raises(KindExtraMissing):
        KindLifecycle("x", VERSIONS, tmp_path, tools.which)


def test_the_kind_extra_is_detected_when_installed() -> None:
    assert kindcluster.pytest_kind_installed() is (importlib.util.find_spec("pytest_kind") is not None)
