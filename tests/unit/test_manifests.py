from __future__ import annotations

from pathlib import Path

import pytest

from inferbox.errors import ManifestError
from inferbox.manifests import ManifestSet, load_manifests, parse_documents
from inferbox.topology import read_topology


def test_the_platform_defines_three_tenants_and_two_models(manifests: ManifestSet) -> None:
    topology = read_topology(manifests)
    assert [t.name for t in topology.tenants] == ["tenant-a", "tenant-b", "tenant-c"]
    assert {(m.tenant, m.name, m.kind) for m in topology.models} == {
        ("tenant-a", "sklearn-iris", "sklearn"),
        ("tenant-c", "pytorch-resnet", "digits"),
    }
    assert topology.tenant("tenant-b").models == ()


def test_malformed_yaml_names_the_file_and_line(manifest_copy: Path) -> None:
    broken = manifest_copy / "tenants" / "tenant-a" / "namespace.yaml"
    broken.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(ManifestError) as caught:
        load_manifests(manifest_copy)
    assert "tenants/tenant-a/namespace.yaml" in caught.value.problem
    assert "line" in caught.value.problem
    assert caught.value.fix


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("kind: Namespace\nmetadata: {name: x}\n", "apiVersion"),
        ("apiVersion: v1\nmetadata: {name: x}\n", "kind"),
        ("apiVersion: v1\nkind: Namespace\nmetadata: {}\n", "metadata.name"),
        ("- just\n- a list\n", "not a Kubernetes object"),
    ],
)
def test_incomplete_objects_are_refused(text: str, missing: str) -> None:
    with pytest.raises(ManifestError, match=missing):
        parse_documents(text, "x.yaml")


def test_an_object_defined_twice_is_refused(manifest_copy: Path) -> None:
    original = (manifest_copy / "tenants" / "tenant-b" / "namespace.yaml").read_text()
    (manifest_copy / "tenants" / "tenant-b" / "copy.yaml").write_text(original)
    with pytest.raises(ManifestError, match="defined twice"):
        load_manifests(manifest_copy)


def test_a_missing_directory_says_which_option_to_use(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifests(tmp_path / "nope")
    assert "--manifests" in caught.value.fix
