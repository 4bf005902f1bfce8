"""scripts/upstream-schemas reads the same CRDs and chart values from git repositories at the release
tags, from downloaded files, or from the upstream URLs (here: a local git repository and fake HTTP
answers, no network), into a cache outside the repository keyed to the pins; a copy for other pins
is refused, a missing one named with the commands that fetch it. Where the copy has been fetched on
this machine, it is checked to be the pinned versions' with a source for every file."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest
import yaml

from inferbox.cluster import upstream, upstream_schemas
from inferbox.cluster.upstream import ChartSource, UpstreamData, iter_schema_nodes
from inferbox.cluster.upstream_schemas import (
    Downloads,
    GitMirrors,
    Internet,
    Output,
    SourceError,
    archive_files,
    clean_crd,
    go_struct_schema,
    strip_docs,
    write,
    yaml_documents,
)
from inferbox.cluster.versions import load_versions

VERSIONS = load_versions(environ={})

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com", "labels": {"x": "y"}},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "description": "prose",
                        "type": "object",
                        "properties": {"description": {"type": "string", "description": "a field named description"}},
                    }
                },
            }
        ],
    },
}


def test_descriptions_are_stripped_and_a_field_named_description_is_kept() -> None:
    cleaned = clean_crd(CRD, "example")
    schema = cleaned["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema == {"type": "object", "properties": {"description": {"type": "string"}}}
    assert cleaned["metadata"] == {"name": "widgets.example.com", "annotations": {"inferbox.io/component": "example"}}
    assert strip_docs({"enum": [{"description": "kept: a value"}]}) == {"enum": [{"description": "kept: a value"}]}


def test_helm_template_lines_are_dropped_and_a_bare_equals_sign_is_a_string() -> None:
    text = "{{- if .Values.crds.enabled }}\nkind: X\nvalues:\n  - =\n{{- end }}\n"
    assert yaml_documents(text, "t") == [{"kind": "X", "values": ["="]}]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_git_mirrors_are_read_at_the_tag_following_symlinks(tmp_path: Path) -> None:
    work = tmp_path / "example+widgets"
    (work / "config" / "vendor").mkdir(parents=True)
    (work / "config" / "vendor" / "real.yaml").write_text(yaml.safe_dump(CRD))
    (work / "config" / "crd.yaml").symlink_to("vendor/real.yaml")
    _git(work.parent, "init", "-q", str(work))
    _git(work, "add", ".")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    _git(work, "tag", "v1.0.0")
    (work / "config" / "crd.yaml").unlink()
    _git(work, "rm", "-q", "--cached", "config/crd.yaml")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "after the tag")
    mirrors = GitMirrors(tmp_path)
    files, provenance = mirrors.git_files("example/widgets", "v1.0.0", ["config/*.yaml"])
    assert list(files) == ["config/crd.yaml"]
    assert yaml.safe_load(files["config/crd.yaml"])["metadata"]["name"] == "widgets.example.com"
    assert provenance["tag"] == "v1.0.0"
    assert len(provenance["commit"]) == 40
    with pytest.raises(SourceError, match="git fetch --tags"):
        mirrors.git_files("example/widgets", "v9.9.9", ["config/*.yaml"])
    with pytest.raises(SourceError, match="no git repository of example/missing"):
        mirrors.git_files("example/missing", "v1.0.0", ["*"])


def _chart_archive(name: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


CHART = ChartSource(
    "demo", "demo", "v1.2.3", "example/charts", "v1.2.3", "charts/demo", oci="oci://docker.io/example/demo"
)


def test_chart_archives_give_their_files_and_nested_sub_charts(tmp_path: Path) -> None:
    sub = _chart_archive("grafana", {"values.yaml": b"image: {tag: x}\n"})
    archive = _chart_archive("demo", {"values.yaml": b"a: 1\n", "charts/grafana-9.2.7.tgz": sub})
    found = archive_files(archive, ["values.yaml", "charts/grafana/values.yaml"])
    assert found == {"values.yaml": b"a: 1\n", "charts/grafana/values.yaml": b"image: {tag: x}\n"}
    (tmp_path / "demo-v1.2.3.tgz").write_bytes(archive)
    data, provenance = Downloads(tmp_path).chart_archive(CHART)
    assert data == archive
    assert provenance["sha256"] == hashlib.sha256(archive).hexdigest()
    with pytest.raises(
        SourceError, match=re.escape("download helm pull oci://docker.io/example/demo --version v1.2.3")
    ):
        Downloads(tmp_path / "empty").chart_archive(CHART)


def test_an_oci_chart_is_pulled_anonymously_and_checked_against_its_digest(tmp_path: Path) -> None:
    archive = _chart_archive("demo", {"values.yaml": b"a: 1\n"})
    digest = f"sha256:{hashlib.sha256(archive).hexdigest()}"
    seen: list[str] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "auth.example":
            return httpx.Response(200, json={"token": "t0k"})
        if request.headers.get("Authorization") != "Bearer t0k":
            challenge = (
                'Bearer realm="https://auth.example/token",service="registry",scope="repository:example/demo:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if request.url.path.endswith("/manifests/v1.2.3"):
            layer = {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": digest}
            return httpx.Response(200, json={"layers": [layer]})
        return httpx.Response(200, content=archive)

    reader = Internet(tmp_path, httpx.Client(transport=httpx.MockTransport(registry)))
    data, provenance = reader.chart_archive(CHART)
    assert data == archive
    assert provenance["url"] == "oci://docker.io/example/demo"
    assert seen[0] == "https://registry-1.docker.io/v2/example/demo/manifests/v1.2.3"
    assert (tmp_path / "demo-v1.2.3.tgz").exists(), "kept, so a second run needs no network"


def test_kinds_config_schema_comes_from_its_go_types() -> None:
    source = """
type Cluster struct {
\tTypeMeta `json:",inline"`
\tNodes []Node `json:"nodes,omitempty"`
}
type TypeMeta struct {
\tKind string `json:"kind,omitempty"`
}
type Node struct {
\tRole NodeRole `json:"role,omitempty"`
\tPort int32 `json:"port,omitempty"` // a comment
}
type NodeRole string
const (
\tWorker NodeRole = "worker"
)
"""
    schema = go_struct_schema(source, "Cluster")
    node = schema["properties"]["nodes"]["items"]["properties"]
    assert node == {"role": {"type": "string", "enum": ["worker"]}, "port": {"type": "integer"}}
    assert schema["properties"]["kind"] == {"type": "string"}


# -- where the copy lives ---------------------------------------------------------------------------
def test_the_copy_lives_in_a_cache_outside_the_repository_keyed_to_the_pins(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    here = upstream.data_dir(VERSIONS, env)
    assert here == tmp_path / "inferbox" / "upstream" / upstream.pins_fingerprint(VERSIONS)
    bumped = load_versions(environ={"INFERBOX_VERSION_ISTIO": "1.26.3"})
    assert upstream.data_dir(bumped, env) != here, "another pin, another folder"
    channel = load_versions(environ={"INFERBOX_VERSION_GATEWAY_API_CHANNEL": "standard"})
    assert upstream.data_dir(channel, env) != here, "the channel changes which CRDs are read"
    assert upstream.data_dir(VERSIONS, {"HOME": "/h"}).parts[-4:-1] == (".cache", "inferbox", "upstream")
    assert upstream.data_dir(VERSIONS, {**env, upstream.DATA_ENV: "/elsewhere"}) == Path("/elsewhere")


def _small_output() -> Output:
    out = Output()
    out.crds = {"widgets.example.com": clean_crd(CRD, "istio")}
    out.charts = {"demo": {"values.json": {"a": 1}}}
    out.kind_config = {"type": "object", "properties": {}}
    out.sources = {
        "crds": {"istio": {"version": VERSIONS.get("istio"), "pin": "istio", "crds": ["widgets.example.com"]}},
        "charts": {},
    }
    return out


def test_the_script_writes_where_inferbox_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(upstream.DATA_ENV, raising=False)
    monkeypatch.setattr(upstream_schemas, "collect", lambda reader, crds, charts: _small_output())
    monkeypatch.setattr(upstream_schemas, "collect_kind_config", lambda reader, version, out: None)
    assert upstream_schemas.main(["--from-mirrors", str(tmp_path / "mirrors")]) == 0
    data = upstream.load(VERSIONS)
    assert data.root == (tmp_path / "cache" / "inferbox" / "upstream" / upstream.pins_fingerprint(VERSIONS))
    assert list(data.crds) == ["widgets.example.com"]
    assert data.sources["pins"] == upstream.pins_fingerprint(VERSIONS)
    assert data.chart_values("demo") == {"a": 1}


def test_a_missing_copy_is_named_with_the_commands_that_fetch_it(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    with pytest.raises(upstream.UpstreamDataMissing) as caught:
        upstream.load(VERSIONS, env)
    assert f"not on this machine (looked in {upstream.data_dir(VERSIONS, env)})" in caught.value.problem
    assert "`scripts/upstream-schemas` (downloads the release assets and charts; needs internet)" in caught.value.fix
    assert "`scripts/upstream-schemas --from-mirrors DIR`" in caught.value.fix
    assert upstream.find(VERSIONS, env) is None, "the cache may simply not be filled: the callers degrade"
    # A folder asked for by name that holds nothing is an error, not a quiet fallback.
    with pytest.raises(upstream.UpstreamDataMissing):
        upstream.find(VERSIONS, {**env, upstream.DATA_ENV: str(tmp_path / "nothing")})


def test_a_bump_is_told_to_fetch_with_the_same_overrides(tmp_path: Path) -> None:
    bump = tmp_path / "bump.yaml"
    bump.write_text("components:\n  istio: {version: 1.26.3}\n")
    bumped = load_versions(bump, environ={"INFERBOX_VERSION_KIALI": "2.12.0"})
    with pytest.raises(upstream.UpstreamDataMissing) as caught:
        upstream.load(bumped, {"XDG_CACHE_HOME": str(tmp_path)})
    assert f"`scripts/upstream-schemas --versions {bump}`" in caught.value.fix
    assert "with the same INFERBOX_VERSION_* variables set" in caught.value.fix


def test_a_copy_for_other_pins_is_refused_naming_them(tmp_path: Path) -> None:
    write(_small_output(), tmp_path, "test", upstream.pins_fingerprint(VERSIONS))
    env = {upstream.DATA_ENV: str(tmp_path)}
    assert upstream.load(VERSIONS, env).crds
    bumped = load_versions(environ={"INFERBOX_VERSION_ISTIO": "1.26.3"})
    with pytest.raises(upstream.UpstreamDataError) as caught:
        upstream.find(bumped, env)
    assert f"istio: the schemas are those of {VERSIONS.get('istio')}, the pin is 1.26.3" in caught.value.problem
    assert f"unset {upstream.DATA_ENV}" in caught.value.fix
    # A change no listed pin shows (the channel) is caught by the fingerprint.
    channel = load_versions(environ={"INFERBOX_VERSION_GATEWAY_API_CHANNEL": "standard"})
    with pytest.raises(upstream.UpstreamDataError, match="the copy was written for sources"):
        upstream.load(channel, env)


def test_an_interrupted_write_reads_as_missing(tmp_path: Path) -> None:
    write(_small_output(), tmp_path, "test", upstream.pins_fingerprint(VERSIONS))
    assert (tmp_path / "SOURCES.yaml").exists()
    broken = _small_output()
    broken.kind_config = {"not JSON": object()}  # fails half-way, as a full disk would
    with pytest.raises(TypeError):
        write(broken, tmp_path, "test", "x")
    assert not (tmp_path / "SOURCES.yaml").exists()
    with pytest.raises(upstream.UpstreamDataMissing):
        upstream.read(tmp_path)


# -- the copy fetched on this machine -------------------------------------------------------------
def test_the_fetched_copy_is_of_the_pinned_versions_with_a_source_for_every_file(pinned: UpstreamData) -> None:
    assert pinned.stale(VERSIONS) == []
    sources = pinned.sources
    for entry in [*sources["crds"].values(), *sources["charts"].values(), sources["kind"]]:
        assert entry.get("commit") or entry.get("sha256") or entry.get("inside"), entry
    listed = {name for entry in sources["crds"].values() for name in entry["crds"]}
    assert listed == set(pinned.crds)
    for crd in pinned.crds.values():
        for version in crd.versions:
            for node in iter_schema_nodes(version["schema"]["openAPIV3Schema"]):
                assert "description" not in node, crd.name
    assert json.loads((pinned.root / "charts" / "kserve" / "values.json").read_text())["kserve"]
