from __future__ import annotations

from pathlib import Path

import pytest

from inferbox.errors import ManifestError
from inferbox.manifests import ManifestSet, load_manifests, parse_documents
from inferbox.topology import read_topology


def test_the_platform_defines_three_tenants_two_predictive_and_two_generative_models(manifests: ManifestSet) -> None:
    topology = read_topology(manifests)
    assert [t.name for t in topology.tenants] == ["tenant-a", "tenant-b", "tenant-c"]
    assert {(m.tenant, m.name, m.kind) for m in topology.predictive_models} == {
        ("tenant-a", "sklearn-iris", "sklearn"),
        ("tenant-c", "pytorch-resnet", "digits"),
    }
    assert {(m.tenant, m.name, m.kind) for m in topology.generative_models} == {
        ("tenant-b", "pydoc-ngram", "ngram-pydoc"),
        ("tenant-c", "sklearn-ngram", "ngram-sklearn"),
    }
    assert topology.tenant("tenant-b").models == ("pydoc-ngram",)


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


def test_a_key_set_twice_is_refused_with_file_and_lines(manifest_copy: Path) -> None:
    """The issue's case: a second ``authorization:`` that would silently replace the first."""
    path = manifest_copy / "tenants" / "tenant-a" / "sklearn-iris-gateway.yaml"
    text = path.read_text()
    assert "  authorization:\n" in text
    twice = "  authorization:\n    defaultAction: Allow\n  authorization:\n"
    path.write_text(text.replace("  authorization:\n", twice, 1))
    with pytest.raises(ManifestError) as caught:
        load_manifests(manifest_copy)
    problem = caught.value.problem
    assert "tenants/tenant-a/sklearn-iris-gateway.yaml" in problem
    first = text[: text.index("  authorization:\n")].count("\n") + 1
    assert f"line {first + 2}" in problem, problem
    assert f"'authorization' already defined at line {first}" in problem, problem
    assert caught.value.fix


@pytest.mark.parametrize(
    "text",
    [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x, name: y}\n",
        "apiVersion: v1\nkind: Namespace\nkind: Namespace\nmetadata: {name: x}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: '1'\n  b: '2'\n  a: '3'\n",
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(text: str) -> None:
    with pytest.raises(ManifestError, match="already defined at line"):
        parse_documents(text, "x.yaml")


def test_the_same_key_in_sibling_mappings_and_merge_keys_are_fine() -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
        "data: {a: '1'}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\ndata: {a: '1'}\n"
    )
    assert [o.name for o in parse_documents(text, "x.yaml")] == ["x", "y"]
    merged = "base: &b {a: 1}\nlist:\n  - <<: *b\n    c: 2\n"
    from inferbox import strictyaml

    assert strictyaml.load(merged)["list"][0] == {"a": 1, "c": 2}


@pytest.mark.parametrize("content", ["", "# emptied by mistake\n", "---\n---\n"])
def test_an_emptied_manifest_file_is_named(manifest_copy: Path, content: str) -> None:
    (manifest_copy / "tenants" / "tenant-c" / "pytorch-resnet.yaml").write_text(content)
    with pytest.raises(ManifestError) as caught:
        load_manifests(manifest_copy)
    assert "tenants/tenant-c/pytorch-resnet.yaml" in caught.value.problem
    assert "no Kubernetes object" in caught.value.problem
    assert "delete the file" in caught.value.fix
