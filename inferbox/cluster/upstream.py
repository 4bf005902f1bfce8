"""Where the pinned releases keep their CRDs and chart values, and where inferbox finds its copy.

``scripts/upstream-schemas`` reads the sources listed here (release assets and charts, or the same
files in git checkouts of the upstream repositories at the release tags) and writes, into a cache
folder outside the repository keyed to the pins (``cache_dir``): every CRD's structural schema with
descriptions stripped (``crds/<name>.json``), each chart's default values and values schema
(``charts/<chart>/``), kind's config types, and ``SOURCES.yaml`` naming the tag and commit (or URL and
sha256) each file came from. Upstream material is never part of the repository: it is fetched where
it is needed. The installer's pre-flight, the tests and the fake API server read it with ``find`` or
``load``; without it they say so and check what they can without it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbox.cluster.versions import Versions
from inferbox.errors import InferboxError

# A folder the script wrote, used instead of the cache folder of the pins.
DATA_ENV = "INFERBOX_UPSTREAM_SCHEMAS"
# Bumped when the script's output changes shape, so that an older cache is not read as current.
DATA_FORMAT = 1

ISTIO_CHARTS = "https://istio-release.storage.googleapis.com/charts"
JETSTACK_CHARTS = "https://charts.jetstack.io"
PROMETHEUS_CHARTS = "https://prometheus-community.github.io/helm-charts"
GRAFANA_CHARTS = "https://grafana.github.io/helm-charts"
JAEGER_CHARTS = "https://jaegertracing.github.io/helm-charts"
KIALI_CHARTS = "https://kiali.org/helm-charts"


@dataclass(frozen=True)
class ChartSource:
    """A Helm chart at a pinned version: where Helm gets it, and its directory in the upstream repository."""

    name: str  # the chart's name (the folder under charts/ in the data)
    component: str  # its entry in the versions file
    version: str
    repository: str  # owner/name on GitHub
    tag: str  # the release tag of that repository
    directory: str  # the chart's directory in the repository at the tag
    oci: str | None = None  # oci://... reference, or
    helm_repo: str | None = None  # a classic chart repository URL
    # Files that the release process renders from templates (values.tmpl.yaml -> values.yaml).
    values_file: str = "values.yaml"
    parent: str | None = None  # a sub-chart: the chart that depends on it

    @property
    def ref(self) -> str:
        return self.oci or f"{self.helm_repo}/{self.name}"


@dataclass(frozen=True)
class CrdSource:
    """The CRDs one component installs, as the installer gets them (a release asset or a chart)
    and as the same files sit in its repository at the release tag."""

    component: str
    version: str
    repository: str
    tag: str
    git_paths: tuple[str, ...]  # glob patterns in the repository at the tag
    url: str | None = None  # a release asset holding the CRDs, or
    chart: str | None = None  # the name of a chart (see ChartSource) and
    chart_paths: tuple[str, ...] = ()  # glob patterns inside that chart


def chart_sources(versions: Versions) -> list[ChartSource]:
    """Every chart the installer installs (and the sub-charts whose values it sets)."""
    v = versions.get
    istio, kserve, eg, aieg = v("istio"), v("kserve"), v("envoy-gateway"), v("envoy-ai-gateway")
    kps = v("kube-prometheus-stack")
    return [
        ChartSource(
            "cert-manager", "cert-manager", v("cert-manager"), "cert-manager/cert-manager", v("cert-manager"),
            "deploy/charts/cert-manager", helm_repo=JETSTACK_CHARTS,
        ),
        ChartSource("base", "istio", istio, "istio/istio", istio, "manifests/charts/base", helm_repo=ISTIO_CHARTS),
        ChartSource(
            "istiod", "istio", istio, "istio/istio", istio, "manifests/charts/istio-control/istio-discovery",
            helm_repo=ISTIO_CHARTS,
        ),
        ChartSource(
            "gateway", "istio", istio, "istio/istio", istio, "manifests/charts/gateway", helm_repo=ISTIO_CHARTS,
        ),
        ChartSource(
            "kserve-crd", "kserve", kserve, "kserve/kserve", kserve, "charts/kserve-crd",
            oci="oci://ghcr.io/kserve/charts/kserve-crd",
        ),
        ChartSource(
            "kserve", "kserve", kserve, "kserve/kserve", kserve, "charts/kserve-resources",
            oci="oci://ghcr.io/kserve/charts/kserve",
        ),
        ChartSource(
            "gateway-crds-helm", "envoy-gateway", eg, "envoyproxy/gateway", eg, "charts/gateway-crds-helm",
            oci="oci://docker.io/envoyproxy/gateway-crds-helm", values_file="values.tmpl.yaml",
        ),
        ChartSource(
            "gateway-helm", "envoy-gateway", eg, "envoyproxy/gateway", eg, "charts/gateway-helm",
            oci="oci://docker.io/envoyproxy/gateway-helm", values_file="values.tmpl.yaml",
        ),
        ChartSource(
            "ai-gateway-crds-helm", "envoy-ai-gateway", aieg, "envoyproxy/ai-gateway", aieg,
            "manifests/charts/ai-gateway-crds-helm", oci="oci://docker.io/envoyproxy/ai-gateway-crds-helm",
        ),
        ChartSource(
            "ai-gateway-helm", "envoy-ai-gateway", aieg, "envoyproxy/ai-gateway", aieg,
            "manifests/charts/ai-gateway-helm", oci="oci://docker.io/envoyproxy/ai-gateway-helm",
        ),
        ChartSource(
            "kube-prometheus-stack", "kube-prometheus-stack", kps, "prometheus-community/helm-charts",
            f"kube-prometheus-stack-{kps}", "charts/kube-prometheus-stack", helm_repo=PROMETHEUS_CHARTS,
        ),
        # Its version is the one kube-prometheus-stack's Chart.yaml depends on (filled in by the script).
        ChartSource(
            "grafana", "grafana", "", "grafana/helm-charts", "grafana-{version}", "charts/grafana",
            helm_repo=GRAFANA_CHARTS, parent="kube-prometheus-stack",
        ),
        ChartSource(
            "jaeger", "jaeger", v("jaeger", "chart"), "jaegertracing/helm-charts", f"jaeger-{v('jaeger', 'chart')}",
            "charts/jaeger", helm_repo=JAEGER_CHARTS,
        ),
        ChartSource(
            "kiali-server", "kiali", v("kiali"), "kiali/helm-charts", f"v{v('kiali')}", "kiali-server",
            helm_repo=KIALI_CHARTS,
        ),
    ]  # fmt: skip


def crd_sources(versions: Versions) -> list[CrdSource]:
    """Every CRD bundle the installer applies, in the form the installer applies it."""
    v = versions.get
    gateway_api, channel = v("gateway-api"), v("gateway-api", "channel")
    knative, cert_manager = v("knative-serving"), v("cert-manager")
    kps = v("kube-prometheus-stack")
    return [
        CrdSource(
            "gateway-api", gateway_api, "kubernetes-sigs/gateway-api", gateway_api,
            (f"config/crd/{channel}/*.yaml",),
            url=f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{gateway_api}/{channel}-install.yaml",
        ),
        CrdSource(
            "envoy-gateway", v("envoy-gateway"), "envoyproxy/gateway", v("envoy-gateway"),
            ("charts/gateway-crds-helm/templates/generated/*.yaml",),
            chart="gateway-crds-helm", chart_paths=("templates/generated/*.yaml",),
        ),
        CrdSource(
            "envoy-ai-gateway", v("envoy-ai-gateway"), "envoyproxy/ai-gateway", v("envoy-ai-gateway"),
            ("manifests/charts/ai-gateway-crds-helm/templates/*.yaml",),
            chart="ai-gateway-crds-helm", chart_paths=("templates/*.yaml",),
        ),
        CrdSource(
            "cert-manager", cert_manager, "cert-manager/cert-manager", cert_manager, ("deploy/crds/crd-*.yaml",),
            url=f"https://github.com/cert-manager/cert-manager/releases/download/{cert_manager}/cert-manager.crds.yaml",
        ),
        CrdSource(
            "istio", v("istio"), "istio/istio", v("istio"), ("manifests/charts/base/files/crd-all.gen.yaml",),
            chart="base", chart_paths=("files/crd-all.gen.yaml",),
        ),
        CrdSource(
            "knative-serving", knative, "knative/serving", knative,
            ("config/core/300-resources/*.yaml", "config/core/300-imagecache.yaml"),
            url=f"https://github.com/knative/serving/releases/download/{knative}/serving-crds.yaml",
        ),
        CrdSource(
            "kserve", v("kserve"), "kserve/kserve", v("kserve"), ("charts/kserve-crd/templates/*.yaml",),
            chart="kserve-crd", chart_paths=("templates/*.yaml",),
        ),
        CrdSource(
            "kube-prometheus-stack", kps, "prometheus-community/helm-charts", f"kube-prometheus-stack-{kps}",
            ("charts/kube-prometheus-stack/charts/crds/crds/*.yaml",),
            chart="kube-prometheus-stack", chart_paths=("charts/crds/crds/*.yaml",),
        ),
    ]  # fmt: skip


# -- where the copy is kept -----------------------------------------------------------------------
def pins_fingerprint(versions: Versions) -> str:
    """A short digest of everything the copy depends on: every source (repository, tag, URL, chart
    version) at these pins, kind's version and the output format. Another pin, another folder."""
    parts = [
        DATA_FORMAT,
        versions.get("kubernetes", "kind"),
        [dataclasses.astuple(s) for s in crd_sources(versions)],
        [dataclasses.astuple(c) for c in chart_sources(versions)],
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/inferbox/upstream``, or ``~/.cache/inferbox/upstream``."""
    env = os.environ if environ is None else environ
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "inferbox" / "upstream"


def data_dir(versions: Versions, environ: Mapping[str, str] | None = None) -> Path:
    """Where the copy for these pins is read from and written to: ``INFERBOX_UPSTREAM_SCHEMAS``
    when set, otherwise the cache folder named by the pins' fingerprint."""
    env = os.environ if environ is None else environ
    if env.get(DATA_ENV):
        return Path(env[DATA_ENV])
    return cache_root(env) / pins_fingerprint(versions)


def how_to_get(versions: Versions, root: Path) -> str:
    """The fix for missing data: the commands that write it where it will be looked for."""
    script = " ".join(["scripts/upstream-schemas", *(o for o in versions.overrides if o.startswith("--versions"))])
    same_env = (
        " (with the same INFERBOX_VERSION_* variables set)"
        if any(not o.startswith("--versions") for o in versions.overrides)
        else ""
    )
    return (
        f"write them with `{script}` (downloads the release assets and charts; needs internet) or "
        f"`{script} --from-mirrors DIR` (git repositories of the upstream projects, named owner+name){same_env}; "
        f'they go to {root} (docs/kind.md, "How this target is tested without a cluster")'
    )


class UpstreamDataError(InferboxError):
    """The copy of the upstream schemas is missing, or from other versions than the ones pinned."""


class UpstreamDataMissing(UpstreamDataError):
    """No copy of the upstream schemas on this machine for these pins."""


@dataclass(frozen=True)
class Crd:
    """One CustomResourceDefinition: its names, scope and every version with its schema."""

    name: str
    group: str
    kind: str
    plural: str
    namespaced: bool
    versions: tuple[Mapping[str, Any], ...]
    component: str

    def served(self) -> list[str]:
        return [str(v["name"]) for v in self.versions if v.get("served")]

    def version(self, name: str) -> Mapping[str, Any] | None:
        return next((v for v in self.versions if v.get("name") == name), None)

    def schema(self, version: str) -> Mapping[str, Any]:
        found = self.version(version)
        return ((found or {}).get("schema") or {}).get("openAPIV3Schema") or {}

    def as_object(self) -> dict[str, Any]:
        """The CRD as an object to create (on the fake API server)."""
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.name},
            "spec": {
                "group": self.group,
                "names": {"kind": self.kind, "plural": self.plural},
                "scope": "Namespaced" if self.namespaced else "Cluster",
                "versions": [dict(v) for v in self.versions],
            },
        }


@dataclass(frozen=True)
class UpstreamData:
    root: Path
    crds: Mapping[str, Crd]  # by CRD name (plural.group)
    sources: Mapping[str, Any]

    def crd_for(self, group: str, kind: str) -> Crd | None:
        return next((c for c in self.crds.values() if c.group == group and c.kind == kind), None)

    def _json(self, relative: str) -> dict[str, Any] | None:
        path = self.root / relative
        if not path.exists():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def chart_values(self, chart: str) -> dict[str, Any]:
        values = self._json(f"charts/{chart}/values.json")
        if values is None:
            raise UpstreamDataError(
                f"no default values of chart {chart} in {self.root}", "run scripts/upstream-schemas (see docs/kind.md)"
            )
        return values

    def kind_config_schema(self) -> dict[str, Any]:
        schema = self._json("kind-cluster.schema.json")
        if schema is None:
            raise UpstreamDataError(
                f"no schema of kind's cluster config in {self.root}", "run scripts/upstream-schemas (see docs/kind.md)"
            )
        return schema

    def chart_schema(self, chart: str) -> dict[str, Any] | None:
        return self._json(f"charts/{chart}/values.schema.json")

    def pins_used(self) -> dict[str, str]:
        """versions-file entry ("component" or "component:field") -> version the copy was made from."""
        out: dict[str, str] = {}
        entries = [e for section in ("crds", "charts") for e in (self.sources.get(section) or {}).values()]
        if self.sources.get("kind"):
            entries.append(self.sources["kind"])
        for entry in entries:
            pin = str(entry.get("pin", ""))
            if pin and " " not in pin:  # a sub-chart's pin is its parent's dependency, not a versions entry
                out[pin] = str(entry.get("version"))
        return out

    def stale(self, versions: Versions) -> list[str]:
        """Why the copy is not the one of these pins (empty: it is)."""
        out = []
        for pin, version in sorted(self.pins_used().items()):
            component, _, field_name = pin.partition(":")
            pinned = versions.get(component, field_name or "version")
            if pinned != version:
                out.append(f"{pin}: the schemas are those of {version}, the pin is {pinned}")
        written_for = self.sources.get("pins")
        if not out and written_for != pins_fingerprint(versions):
            out.append(
                f"the copy was written for sources {written_for}, these pins' are {pins_fingerprint(versions)} "
                "(a source, the gateway-api channel or the script's output format changed)"
            )
        return out


def _crd(path: Path) -> Crd:
    text = path.read_text(encoding="utf-8")
    body = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    spec = body["spec"]
    return Crd(
        name=body["metadata"]["name"],
        group=spec["group"],
        kind=spec["names"]["kind"],
        plural=spec["names"]["plural"],
        namespaced=spec.get("scope") == "Namespaced",
        versions=tuple(spec["versions"]),
        component=str((body["metadata"].get("annotations") or {}).get("inferbox.io/component", "")),
    )


@functools.cache
def read(root: Path) -> UpstreamData:
    """A folder in the script's layout, whatever pins it was written for (see ``load``)."""
    sources_file = root / "SOURCES.yaml"
    if not sources_file.exists():
        raise UpstreamDataMissing(f"no upstream schemas in {root} (SOURCES.yaml missing)", "")
    paths = sorted(p for p in (root / "crds").glob("*") if p.suffix in (".json", ".yaml"))
    crds = {c.name: c for c in (_crd(p) for p in paths)}
    return UpstreamData(root, crds, yaml.safe_load(sources_file.read_text(encoding="utf-8")) or {})


def load(versions: Versions, environ: Mapping[str, str] | None = None) -> UpstreamData:
    """The copy for these pins; raises naming the commands that write it when it is missing, and
    refuses a copy written for other pins (``INFERBOX_UPSTREAM_SCHEMAS`` pointing at another bump)."""
    root = data_dir(versions, environ).resolve()
    try:
        data = read(root)
    except UpstreamDataMissing:
        raise UpstreamDataMissing(
            f"the pinned upstream CRD schemas and chart values are not on this machine (looked in {root})",
            how_to_get(versions, root),
        ) from None
    stale = data.stale(versions)
    if stale:
        raise UpstreamDataError(
            f"the upstream schemas in {root} are not those of the pinned versions: " + "; ".join(stale),
            f"unset {DATA_ENV} or point it at a folder written for these pins; " + how_to_get(versions, root),
        )
    return data


def find(versions: Versions, environ: Mapping[str, str] | None = None) -> UpstreamData | None:
    """``load``, or None when the cache holds no copy for these pins. A folder named by
    ``INFERBOX_UPSTREAM_SCHEMAS`` that holds none, or a copy for other pins, still raises: it was asked for."""
    env = os.environ if environ is None else environ
    try:
        return load(versions, env)
    except UpstreamDataMissing:
        if env.get(DATA_ENV):
            raise
        return None


def iter_schema_nodes(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every sub-schema of ``schema``, itself included."""
    yield schema
    for key in ("properties", "patternProperties"):
        for child in (schema.get(key) or {}).values():
            yield from iter_schema_nodes(child)
    for key in ("items", "additionalProperties", "not"):
        child = schema.get(key)
        if isinstance(child, dict):
            yield from iter_schema_nodes(child)
    for key in ("allOf", "anyOf", "oneOf"):
        for child in schema.get(key) or []:
            yield from iter_schema_nodes(child)
