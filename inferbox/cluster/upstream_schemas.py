"""``scripts/upstream-schemas``: fetches the pinned releases' CRD schemas and chart values into a cache.

Three ways to read the upstream files, one output:

- neither option: downloads them from the upstream release URLs and chart repositories (needs
  internet), keeping the downloaded files in ``--cache``;
- ``--from-mirrors DIR``: git repositories of the upstream projects (one per repository, named
  ``owner+name``, bare or not, or ``owner+name/repo``), read at the release tags;
- ``--from-downloads DIR``: the release assets and chart archives, downloaded beforehand under their
  upstream file names (``serving-crds.yaml``, ``gateway-helm-v1.4.2.tgz``, ...).

Writes, into the cache folder of the pins (``inferbox.cluster.upstream.data_dir``: outside the
repository, keyed to the pins; ``INFERBOX_UPSTREAM_SCHEMAS`` or ``--out`` to choose another),
``crds/<name>.json`` (every CRD of the installed bundles, descriptions stripped),
``charts/<chart>/values.json`` and ``values.schema.json`` (comments and descriptions stripped) and
``SOURCES.yaml`` (tag and commit, or URL and sha256, of every file read, and the pins' fingerprint).
Nothing it writes belongs in the repository: it is upstream material, fetched where it is used.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from inferbox.cluster.upstream import (
    DATA_ENV,
    ChartSource,
    CrdSource,
    cache_root,
    chart_sources,
    crd_sources,
    data_dir,
    pins_fingerprint,
)
from inferbox.cluster.versions import load_versions
from inferbox.errors import InferboxError

# Schema keywords that are documentation only: the API server ignores them when validating.
DOC_KEYS = frozenset({"description", "example", "examples", "title", "externalDocs", "$comment"})
TEMPLATE_LINE = re.compile(r"^\s*\{\{-?.*-?\}\}\s*$")


class _Loader(yaml.SafeLoader):
    """YAML 1.1's "value" tag makes PyYAML refuse a plain ``=`` (an enum value in some CRDs); the
    API server's YAML reader has no such tag, so neither does this loader."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class SourceError(InferboxError):
    """An upstream file could not be read."""


@dataclass
class Provenance:
    """What one source was read from, for SOURCES.yaml."""

    entries: dict[str, Any] = field(default_factory=dict)


# -- readers -------------------------------------------------------------------------------------
class Reader(Protocol):
    def release_asset(self, url: str) -> tuple[bytes, dict[str, Any]]: ...

    def git_files(
        self, repository: str, tag: str, patterns: Iterable[str]
    ) -> tuple[dict[str, bytes], dict[str, Any]]: ...

    def chart_archive(self, chart: ChartSource) -> tuple[bytes, dict[str, Any]]: ...

    def prefers_git(self) -> bool: ...


def _match(path: str, pattern: str) -> bool:
    """Glob where ``*`` stays inside one path segment."""
    return path.count("/") == pattern.count("/") and fnmatch.fnmatchcase(path, pattern)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class GitMirrors:
    """Git repositories of the upstream projects, read at their release tags (no work tree needed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prefers_git(self) -> bool:
        return True

    def git_dir(self, repository: str) -> Path:
        owner, name = repository.split("/")
        for candidate in (
            self.root / f"{owner}+{name}" / "repo",
            self.root / f"{owner}+{name}",
            self.root / owner / name,
        ):
            if (candidate / "HEAD").exists() or (candidate / ".git").exists():
                return candidate / ".git" if (candidate / ".git").is_dir() else candidate
        raise SourceError(
            f"no git repository of {repository} under {self.root}",
            f"clone it there as {owner}+{name} (all tags), or use --from-downloads / the upstream URLs",
        )

    def _git(self, repository: str, *args: str) -> bytes:
        result = subprocess.run(
            ["git", "--git-dir", str(self.git_dir(repository)), *args], capture_output=True, check=False
        )
        if result.returncode != 0:
            raise SourceError(
                f"git {' '.join(args)} in {repository}: {result.stderr.decode(errors='replace').strip()}",
                "fetch the release tags into the mirror (git fetch --tags), or use --from-downloads",
            )
        return result.stdout

    def commit(self, repository: str, tag: str) -> str:
        return self._git(repository, "rev-parse", f"{tag}^{{commit}}").decode().strip()

    def _read(self, repository: str, tag: str, path: str, depth: int = 0) -> bytes:
        entry = self._git(repository, "ls-tree", tag, "--", path).decode().split()
        if entry and entry[0] == "120000":  # a symbolic link: read what it points at
            target = self._git(repository, "cat-file", "blob", entry[2]).decode().strip()
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if depth > 5:
                raise SourceError(f"{repository}@{tag}: {path} is a symlink loop", "read the file another way")
            return self._read(repository, tag, resolved, depth + 1)
        return self._git(repository, "cat-file", "blob", f"{tag}:{path}")

    def git_files(self, repository: str, tag: str, patterns: Iterable[str]) -> tuple[dict[str, bytes], dict[str, Any]]:
        commit = self.commit(repository, tag)
        listed = self._git(repository, "ls-tree", "-r", "--name-only", "--full-tree", tag).decode().splitlines()
        wanted = list(patterns)
        paths = sorted(p for p in listed if any(_match(p, pattern) for pattern in wanted))
        if not paths:
            raise SourceError(f"{repository}@{tag} has no file matching {wanted}", "check the source table")
        files = {p: self._read(repository, tag, p) for p in paths}
        return files, {"repository": repository, "tag": tag, "commit": commit, "files": paths}

    def release_asset(self, url: str) -> tuple[bytes, dict[str, Any]]:
        raise SourceError(f"git mirrors hold no release assets ({url})", "this source is read from git instead")

    def chart_archive(self, chart: ChartSource) -> tuple[bytes, dict[str, Any]]:
        raise SourceError(f"git mirrors hold no chart archives ({chart.ref})", "this chart is read from git instead")


class Downloads:
    """Release assets and chart archives saved under their upstream file names."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prefers_git(self) -> bool:
        return False

    def _file(self, name: str, origin: str) -> tuple[bytes, dict[str, Any]]:
        path = self.root / name
        if not path.exists():
            raise SourceError(f"{path} is missing", f"download {origin} there")
        data = path.read_bytes()
        return data, {"url": origin, "file": name, "sha256": sha256(data)}

    def release_asset(self, url: str) -> tuple[bytes, dict[str, Any]]:
        return self._file(url.rsplit("/", 1)[-1], url)

    def chart_archive(self, chart: ChartSource) -> tuple[bytes, dict[str, Any]]:
        return self._file(f"{chart.name}-{chart.version}.tgz", f"helm pull {chart.ref} --version {chart.version}")

    # The Reader interface: downloads have no git checkout to read, so tag and patterns go unused.
    def git_files(
        self,
        repository: str,
        tag: str,  # noqa: ARG002
        patterns: Iterable[str],  # noqa: ARG002
    ) -> tuple[dict[str, bytes], dict[str, Any]]:
        raise SourceError(f"downloads hold no git checkout of {repository}", "use --from-mirrors for git sources")


class Internet(Downloads):
    """Downloads each file once into ``cache`` (a Downloads folder), then reads it from there."""

    def __init__(self, cache: Path, client: httpx.Client | None = None) -> None:
        super().__init__(cache)
        self.client = client or httpx.Client(follow_redirects=True, timeout=120)

    def _save(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(data)

    def _get(self, url: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            response = self.client.get(url, headers=dict(headers or {}))
        except httpx.HTTPError as exc:
            raise SourceError(
                f"cannot download {url}: {exc}", "check the network, or use --from-mirrors / --from-downloads"
            ) from exc
        return response

    def release_asset(self, url: str) -> tuple[bytes, dict[str, Any]]:
        name = url.rsplit("/", 1)[-1]
        if not (self.root / name).exists():
            response = self._get(url)
            if response.status_code != 200:
                raise SourceError(f"{url}: HTTP {response.status_code}", "check the version in the versions file")
            self._save(name, response.content)
        return super().release_asset(url)

    def chart_archive(self, chart: ChartSource) -> tuple[bytes, dict[str, Any]]:
        name = f"{chart.name}-{chart.version}.tgz"
        if not (self.root / name).exists():
            self._save(name, self._oci_chart(chart) if chart.oci else self._repo_chart(chart))
        data, provenance = super().chart_archive(chart)
        return data, {**provenance, "url": chart.ref}

    def _repo_chart(self, chart: ChartSource) -> bytes:
        index_url = f"{chart.helm_repo}/index.yaml"
        response = self._get(index_url)
        if response.status_code != 200:
            raise SourceError(f"{index_url}: HTTP {response.status_code}", "check the chart repository URL")
        index = yaml.safe_load(response.text) or {}
        for entry in (index.get("entries") or {}).get(chart.name) or []:
            if str(entry.get("version")) == chart.version:
                url = str(entry["urls"][0])
                if "://" not in url:
                    url = f"{chart.helm_repo}/{url}"
                got = self._get(url)
                if got.status_code != 200:
                    raise SourceError(f"{url}: HTTP {got.status_code}", "check the chart repository")
                return got.content
        raise SourceError(f"{chart.helm_repo} has no {chart.name} {chart.version}", "check the versions file")

    def _oci_chart(self, chart: ChartSource) -> bytes:
        """An OCI chart, pulled anonymously through the registry API (as `helm pull` does)."""
        assert chart.oci is not None
        host, _, repository = chart.oci.removeprefix("oci://").partition("/")
        registry = "registry-1.docker.io" if host == "docker.io" else host
        accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
        manifest_url = f"https://{registry}/v2/{repository}/manifests/{chart.version}"
        response = self._get(manifest_url, accept)
        token = None
        if response.status_code == 401:
            token = self._token(response.headers.get("www-authenticate", ""), repository)
            response = self._get(manifest_url, {**accept, "Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise SourceError(f"{manifest_url}: HTTP {response.status_code}", "check the chart reference and version")
        layers = [
            layer
            for layer in response.json().get("layers") or []
            if layer.get("mediaType") == "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
        ]
        if not layers:
            raise SourceError(f"{chart.oci}:{chart.version} holds no Helm chart layer", "check the reference")
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        blob = self._get(f"https://{registry}/v2/{repository}/blobs/{layers[0]['digest']}", auth)
        if blob.status_code != 200 or f"sha256:{sha256(blob.content)}" != layers[0]["digest"]:
            raise SourceError(f"{chart.oci}:{chart.version}: the chart layer did not download intact", "try again")
        return blob.content

    def _token(self, challenge: str, repository: str) -> str:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if "realm" not in fields:
            raise SourceError(f"the registry asked for credentials this script cannot give: {challenge}", "")
        params = {"service": fields.get("service", ""), "scope": fields.get("scope", f"repository:{repository}:pull")}
        response = self.client.get(fields["realm"], params=params)
        if response.status_code != 200:
            raise SourceError(f"token request to {fields['realm']}: HTTP {response.status_code}", "")
        body = response.json()
        return str(body.get("token") or body.get("access_token"))


# -- chart archives ------------------------------------------------------------------------------
def archive_files(archive: bytes, patterns: Iterable[str]) -> dict[str, bytes]:
    """Files of a chart archive (paths relative to the chart's root), nested sub-chart archives included."""
    out: dict[str, bytes] = {}
    wanted = list(patterns)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            relative = member.name.split("/", 1)[1] if "/" in member.name else member.name
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            data = extracted.read()
            if any(_match(relative, p) for p in wanted):
                out[relative] = data
            elif relative.startswith("charts/") and relative.endswith(".tgz"):
                # A dependency packaged as an archive: its files appear under charts/<name>/.
                sub = relative.removeprefix("charts/").removesuffix(".tgz").rsplit("-", 1)[0]
                inner = [p.removeprefix(f"charts/{sub}/") for p in wanted if p.startswith(f"charts/{sub}/")]
                for path, content in archive_files(data, inner).items():
                    out[f"charts/{sub}/{path}"] = content
    return out


# -- cleaning ------------------------------------------------------------------------------------
def strip_docs(schema: Any) -> Any:
    """A schema without documentation keywords (``properties`` may have fields named like them)."""
    if isinstance(schema, list):
        return [strip_docs(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions", "$defs") and isinstance(value, dict):
            out[key] = {name: strip_docs(child) for name, child in value.items()}
        elif key in DOC_KEYS:
            continue
        elif key in ("default", "enum", "const", "x-kubernetes-validations"):
            out[key] = value
        else:
            out[key] = strip_docs(value)
    return out


def yaml_documents(text: str, where: str) -> list[dict[str, Any]]:
    """Documents of a YAML file; lines that are only Helm template directives are dropped first."""
    kept = "\n".join(line for line in text.splitlines() if not TEMPLATE_LINE.match(line))
    try:
        return [d for d in yaml.load_all(kept, Loader=_Loader) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise SourceError(f"{where}: not valid YAML once template lines are dropped: {exc}", "") from exc


def clean_crd(body: Mapping[str, Any], component: str) -> dict[str, Any]:
    spec = body["spec"]
    versions = []
    for version in spec["versions"]:
        entry = {k: version[k] for k in ("name", "served", "storage", "deprecated") if k in version}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        entry["schema"] = {"openAPIV3Schema": strip_docs(schema or {})}
        if version.get("subresources"):
            entry["subresources"] = version["subresources"]
        versions.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": body["metadata"]["name"], "annotations": {"inferbox.io/component": component}},
        "spec": {
            "group": spec["group"],
            "names": {k: spec["names"][k] for k in ("kind", "plural", "singular", "listKind") if k in spec["names"]},
            "scope": spec["scope"],
            "versions": versions,
        },
    }


# -- kind's cluster config ---------------------------------------------------------------------
_GO_SCALARS = {"string": {"type": "string"}, "bool": {"type": "boolean"}}
_GO_STRUCT = re.compile(r"^type (\w+) struct \{(.*?)^\}", re.S | re.M)
_GO_FIELD = re.compile(r"^[ \t]*(\w+)(?:[ \t]+([^\s`]+))?[ \t]+`[^`]*json:\"([^\",]*)[^`]*`", re.M)
_GO_ENUM = re.compile(r"^\s*\w+\s+(\w+)\s*=\s*\"([^\"]*)\"", re.M)


def go_struct_schema(source: str, root: str) -> dict[str, Any]:  # noqa: C901 - one case per Go type form
    """A structural schema of ``root`` from Go types with json tags (kind's config has no published
    schema; kind reads it strictly, so an unknown field is an error there too)."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    source = "\n".join(line.split("//")[0].rstrip() for line in source.splitlines())
    structs = {m.group(1): m.group(2) for m in _GO_STRUCT.finditer(source)}
    enums: dict[str, list[str]] = {}
    for type_name, value in _GO_ENUM.findall(source):
        enums.setdefault(type_name, []).append(value)
    strings = set(re.findall(r"^type (\w+) string$", source, re.M))

    def of(go_type: str) -> dict[str, Any]:
        go_type = go_type.lstrip("*")
        if go_type.startswith("[]"):
            return {"type": "array", "items": of(go_type[2:])}
        if go_type.startswith("map[string]"):
            return {"type": "object", "additionalProperties": of(go_type.removeprefix("map[string]"))}
        if go_type in _GO_SCALARS:
            return dict(_GO_SCALARS[go_type])
        if re.fullmatch(r"u?int\d*", go_type):
            return {"type": "integer"}
        if go_type in strings:
            return {"type": "string", **({"enum": enums[go_type]} if go_type in enums else {})}
        if go_type in structs:
            return struct(go_type)
        raise SourceError(f"kind's config types use {go_type}, which the script cannot map", "extend go_struct_schema")

    def struct(name: str) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field_name, go_type, json_name in _GO_FIELD.findall(structs[name]):
            if not json_name:  # ",inline": the embedded struct's fields
                properties.update(struct(go_type or field_name)["properties"])
            elif json_name != "-":
                properties[json_name] = of(go_type)
        return {"type": "object", "properties": properties}

    return struct(root)


# -- the run -------------------------------------------------------------------------------------
@dataclass
class Output:
    crds: dict[str, dict[str, Any]] = field(default_factory=dict)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)  # chart -> file name -> content
    kind_config: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=lambda: {"crds": {}, "charts": {}})


def _chart_files(
    reader: Reader, chart: ChartSource, patterns: Iterable[str], archives: dict[str, bytes]
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Files of a chart (relative to its root), from git or from its archive."""
    wanted = list(patterns)
    if reader.prefers_git():
        files, provenance = reader.git_files(chart.repository, chart.tag, [f"{chart.directory}/{p}" for p in wanted])
        return {k.removeprefix(f"{chart.directory}/"): v for k, v in files.items()}, provenance
    if chart.parent is not None:
        parent_archive = archives[chart.parent]
        found = archive_files(parent_archive, [f"charts/{chart.name}/{p}" for p in wanted])
        files = {k.removeprefix(f"charts/{chart.name}/"): v for k, v in found.items()}
        return files, {"inside": f"{chart.parent}-archive/charts/{chart.name}"}
    if chart.name not in archives:
        archives[chart.name], provenance = reader.chart_archive(chart)
        archives[f"{chart.name}:provenance"] = json.dumps(provenance).encode()
    provenance = json.loads(archives[f"{chart.name}:provenance"])
    return archive_files(archives[chart.name], wanted), provenance


def _dependency_version(reader: Reader, charts: list[ChartSource], parent: str, name: str,
                        archives: dict[str, bytes]) -> str:  # fmt: skip
    source = next(c for c in charts if c.name == parent)
    files, _ = _chart_files(reader, source, ["Chart.yaml"], archives)
    chart_yaml = yaml.safe_load(files["Chart.yaml"]) or {}
    for dependency in chart_yaml.get("dependencies") or []:
        if dependency.get("name") == name:
            return str(dependency["version"])
    raise SourceError(f"chart {parent} does not depend on {name}", "check the source table")


KIND_TYPES = "pkg/apis/config/v1alpha4/types.go"


def collect_kind_config(reader: Reader, kind_version: str, out: Output) -> None:
    """kind's cluster config schema, from its Go types at the pinned kind release."""
    if reader.prefers_git():
        files, provenance = reader.git_files("kubernetes-sigs/kind", kind_version, [KIND_TYPES])
        text = files[KIND_TYPES].decode()
    else:
        url = f"https://raw.githubusercontent.com/kubernetes-sigs/kind/{kind_version}/{KIND_TYPES}"
        data, provenance = reader.release_asset(url)
        text = data.decode()
    out.kind_config = go_struct_schema(text, "Cluster")
    out.sources["kind"] = {"version": kind_version, "pin": "kubernetes:kind", **provenance}


# Complex on purpose: one pass over every source kind.
def collect(reader: Reader, crds: list[CrdSource], charts: list[ChartSource]) -> Output:  # noqa: C901
    out = Output()
    archives: dict[str, bytes] = {}
    resolved = []
    for chart in charts:
        if chart.parent is not None and not chart.version:
            version = _dependency_version(reader, charts, chart.parent, chart.name, archives)
            chart = ChartSource(**{**chart.__dict__, "version": version, "tag": chart.tag.format(version=version)})
        resolved.append(chart)
    for chart in resolved:
        files, provenance = _chart_files(reader, chart, [chart.values_file, "values.schema.json"], archives)
        if chart.values_file not in files:
            raise SourceError(f"chart {chart.name} {chart.version} has no {chart.values_file}", "")
        values = yaml.safe_load(files[chart.values_file]) or {}
        out.charts[chart.name] = {"values.json": values}
        if "values.schema.json" in files:
            out.charts[chart.name]["values.schema.json"] = strip_docs(json.loads(files["values.schema.json"]))
        pin = chart.component if chart.component != "jaeger" else "jaeger:chart"
        if chart.parent is not None:
            pin = f"{chart.parent} (dependency {chart.name} {chart.version})"
        out.sources["charts"][chart.name] = {
            "chart": chart.ref,
            "version": chart.version,
            "pin": pin,
            **provenance,
        }
    by_name = {c.name: c for c in resolved}
    for source in crds:
        if reader.prefers_git():
            files, provenance = reader.git_files(source.repository, source.tag, source.git_paths)
            texts = {k: v.decode() for k, v in files.items()}
        elif source.url:
            data, provenance = reader.release_asset(source.url)
            texts = {source.url: data.decode()}
        else:
            assert source.chart is not None
            files, provenance = _chart_files(reader, by_name[source.chart], source.chart_paths, archives)
            texts = {k: v.decode() for k, v in files.items()}
        names = []
        for where, text in texts.items():
            for doc in yaml_documents(text, where):
                if doc.get("kind") == "CustomResourceDefinition":
                    crd = clean_crd(doc, source.component)
                    out.crds[crd["metadata"]["name"]] = crd
                    names.append(crd["metadata"]["name"])
        if not names:
            raise SourceError(f"{source.component} {source.version}: no CustomResourceDefinition found", "")
        out.sources["crds"][source.component] = {
            "version": source.version,
            "pin": source.component,
            **provenance,
            "crds": sorted(names),
        }
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write(out: Output, dest: Path, mode: str, pins: str) -> None:
    """Replaces ``dest``'s crds/, charts/ and SOURCES.yaml with ``out``. SOURCES.yaml goes first
    and comes last: a folder left half-written by an interrupted run reads as missing."""
    (dest / "SOURCES.yaml").unlink(missing_ok=True)
    for sub in ("crds", "charts"):
        shutil.rmtree(dest / sub, ignore_errors=True)
    (dest / "crds").mkdir(parents=True)
    if out.kind_config:
        (dest / "kind-cluster.schema.json").write_text(_dump(out.kind_config), encoding="utf-8")
    for name, crd in sorted(out.crds.items()):
        (dest / "crds" / f"{name}.json").write_text(_dump(crd), encoding="utf-8")
    for chart, files in sorted(out.charts.items()):
        (dest / "charts" / chart).mkdir(parents=True)
        for file_name, content in files.items():
            (dest / "charts" / chart / file_name).write_text(_dump(content), encoding="utf-8")
    header = (
        "# Written by scripts/upstream-schemas: where every file under crds/ and charts/ came from.\n"
        "# Upstream material: keep it out of the repository. Re-run the script after changing the pins.\n"
    )
    body = {"read-from": mode, "pins": pins, **out.sources}
    (dest / "SOURCES.yaml").write_text(header + yaml.safe_dump(body, sort_keys=False), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/upstream-schemas", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from-mirrors", type=Path, metavar="DIR", help="a folder of git repositories named owner+name"
    )
    source.add_argument(
        "--from-downloads", type=Path, metavar="DIR", help="a folder of release assets and chart archives"
    )
    downloads = cache_root().parent / "downloads"
    parser.add_argument("--cache", type=Path, default=downloads, help=f"where downloads are kept (default {downloads})")
    parser.add_argument("--versions", type=Path, help="a versions file of pins to change (as inferbox up)")
    parser.add_argument(
        "--out", type=Path, help="output folder (default: the cache folder of the pins, or $INFERBOX_UPSTREAM_SCHEMAS)"
    )
    args = parser.parse_args(argv)
    reader: Reader
    if args.from_mirrors:
        reader, mode = GitMirrors(args.from_mirrors), "git repositories at the release tags"
    elif args.from_downloads:
        reader, mode = Downloads(args.from_downloads), "release assets and chart archives"
    else:
        reader, mode = Internet(args.cache), "release assets and chart archives (downloaded)"
    try:
        versions = load_versions(args.versions)
        out = collect(reader, crd_sources(versions), chart_sources(versions))
        collect_kind_config(reader, versions.get("kubernetes", "kind"), out)
    except InferboxError as exc:
        print(f"error: {exc.problem}\n  fix: {exc.fix}", file=sys.stderr)
        return 1
    dest = args.out or data_dir(versions)
    write(out, dest, mode, pins_fingerprint(versions))
    print(f"wrote {len(out.crds)} CRDs and {len(out.charts)} charts' values to {dest}")
    if args.out and args.out.resolve() != data_dir(versions).resolve():
        print(f"inferbox reads them from there with {DATA_ENV}={dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
