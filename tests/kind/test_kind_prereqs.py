"""Prerequisites: every missing or unusable tool reported at once, with how to install it."""

from __future__ import annotations

import pytest

from inferbox.errors import ToolMissingError
from inferbox.kind.prereqs import check_tools, require_tools
from inferbox.kind.versions import load_versions
from tests.kind.fakekube import FakeCluster
from tests.kind.fakes import FakeTools

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
