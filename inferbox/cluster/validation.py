"""Validation of every object the installer applies, before it touches a cluster.

Built-in kinds are checked with ``kubernetes-validate`` in strict mode against the pinned
Kubernetes minor version (an unknown field is an error). Custom resources are checked the way the
API server checks them, against the CRDs of the pinned releases (fetched by
``scripts/upstream-schemas``, see ``inferbox.cluster.upstream``): the apiVersion must be served, the
scope must match, the metadata must be valid, and the structural schema must hold
(``inferbox.cluster.structural``: types, unknown fields, list-map keys, required after defaults, enums,
patterns, ranges, CEL rules). A kind with no schema is an error too: "no schema" must never read as
"valid". Where the CRDs are not on the machine, custom resources get only what the catalogue of
kinds knows (served versions, scope, metadata), and the report says that their schemas were not
checked and how to fetch them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate

from inferbox.cluster import catalog, structural, upstream

# API groups served by Kubernetes itself (no CRD): validated with the Kubernetes schema.
BUILTIN_GROUPS = {
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "node.k8s.io",
    "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io",
}
API_VERSION = "api-version"
SCOPE = "scope"
METADATA = "metadata"
SCHEMA = "kubernetes-schema"

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@dataclass(frozen=True)
class Problem:
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"at {self.path or '(top level)'}: {self.message} [{self.rule}]"


@dataclass
class Checked:
    """What validating one object found."""

    problems: list[Problem] = field(default_factory=list)
    unevaluated: list[str] = field(default_factory=list)  # CEL rules that could not be evaluated
    cel_evaluated: int = 0
    typed: bool = False  # the first problem is one server-side apply's conversion finds (HTTP 500)
    schema_checked: bool = True  # False: a custom resource checked against the catalogue only


def schema_version(kubernetes_version: str) -> str:
    """``v1.32.5`` -> ``1.32.0``: kubernetes-validate ships one schema per minor version."""
    parts = kubernetes_version.lstrip("v").split(".")
    return f"{parts[0]}.{parts[1]}.0"


def _builtin(body: Mapping[str, Any], version: str) -> list[Problem]:
    """The first schema violation, if any (kubernetes-validate stops at the first)."""
    try:
        kubernetes_validate.validate(dict(body), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [
            Problem("", API_VERSION, f"Kubernetes {version} has no kind {body.get('kind')} in {body.get('apiVersion')}")
        ]
    except kubernetes_validate.ValidationError as exc:
        return [Problem(".".join(str(p) for p in exc.path), SCHEMA, exc.message)]
    return []


def _metadata(body: Mapping[str, Any], namespaced: bool) -> list[Problem]:
    meta = body.get("metadata") or {}
    problems = []
    name = meta.get("name")
    if not name:
        problems.append(Problem("metadata.name", METADATA, "Required value: name or generateName is required"))
    elif len(str(name)) > 253 or not DNS_SUBDOMAIN.fullmatch(str(name)):
        problems.append(Problem("metadata.name", METADATA, f'Invalid value: "{name}": a lowercase RFC 1123 subdomain'))
    if namespaced and not meta.get("namespace"):
        problems.append(Problem("metadata.namespace", SCOPE, "Required value: the kind is namespaced"))
    if not namespaced and meta.get("namespace"):
        problems.append(Problem("metadata.namespace", SCOPE, "Forbidden: the kind is cluster-scoped"))
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, label = str(key).rpartition("/")
        if (prefix and not DNS_SUBDOMAIN.fullmatch(prefix)) or len(label) > 63 or not LABEL_NAME.fullmatch(label):
            problems.append(Problem(f"metadata.labels.{key}", METADATA, "Invalid value: not a qualified name"))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            problems.append(Problem(f"metadata.labels.{key}", METADATA, f"Invalid value: {value!r}: not a label value"))
    for key, value in (meta.get("annotations") or {}).items():
        if not isinstance(value, str):
            problems.append(Problem(f"metadata.annotations.{key}", METADATA, "Invalid value: annotations are strings"))
    return problems


def check_custom(body: Mapping[str, Any], data: upstream.UpstreamData) -> Checked:
    """A custom resource, against the CRD of its kind in the pinned releases."""
    api_version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    group, _, version = api_version.rpartition("/")
    crd = data.crd_for(group, kind)
    if crd is None:
        return Checked(
            [Problem("", API_VERSION, f"no CRD of the pinned releases serves kind {kind} in group {group!r}")]
        )
    if version not in crd.served():
        return Checked(
            [Problem("apiVersion", API_VERSION, f"{crd.name} serves {', '.join(crd.served())}, not {version}")]
        )
    checked = Checked(_metadata(body, crd.namespaced))
    result = structural.validate(body, crd.schema(version))
    checked.problems += [Problem(v.path, v.rule, v.message) for v in result.violations]
    checked.unevaluated = result.unevaluated
    checked.cel_evaluated = result.cel_evaluated
    checked.typed = bool(result.violations) and result.violations[0].typed
    return checked


def check_catalogued(body: Mapping[str, Any]) -> Checked:
    """A custom resource, when the pinned CRDs are not on this machine: its kind, served version,
    scope and metadata against the catalogue of kinds; its fields are not checked."""
    api_version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    group, _, version = api_version.rpartition("/")
    known = catalog.crd_for(group, kind)
    if known is None:
        return Checked(
            [Problem("", API_VERSION, f"no CRD of the pinned releases serves kind {kind} in group {group!r}")]
        )
    if version not in known.served:
        return Checked(
            [Problem("apiVersion", API_VERSION, f"{known.crd_name} serves {', '.join(known.served)}, not {version}")]
        )
    return Checked(_metadata(body, known.namespaced), schema_checked=False)


def check(body: Mapping[str, Any], kubernetes_version: str, data: upstream.UpstreamData | None) -> Checked:
    """One object; ``data`` None: custom resources against the catalogue only (``check_catalogued``)."""
    # The same objects are validated many times over (each mutant is the manifests with one change).
    return _check_cached(json.dumps(body, sort_keys=True, default=str), kubernetes_version, data.root if data else None)


@functools.lru_cache(maxsize=2048)
def _check_cached(text: str, kubernetes_version: str, root: Path | None) -> Checked:
    body = json.loads(text)
    group = str(body.get("apiVersion", "")).rpartition("/")[0]
    if group in BUILTIN_GROUPS:
        return Checked(_builtin(body, schema_version(kubernetes_version)))
    if root is None:
        return check_catalogued(body)
    return check_custom(body, upstream.read(root))


def check_object(body: Mapping[str, Any], kubernetes_version: str, data: upstream.UpstreamData | None) -> list[str]:
    """Every problem found in one object (empty: valid)."""
    return [str(p) for p in check(body, kubernetes_version, data).problems]


def check_kind_config(body: Mapping[str, Any], data: upstream.UpstreamData) -> list[str]:
    """kind's cluster config, against the config types of the pinned kind release."""
    schema = data.kind_config_schema()
    result = structural.validate({k: v for k, v in body.items() if k not in ("apiVersion", "kind")}, schema)
    return [f"at {v.path}: {v.message} [{v.rule}]" for v in result.violations]


@dataclass
class Report:
    """Validating many objects: how many, what was wrong, which CEL rules could not be evaluated,
    and what could not be checked because the pinned CRDs are not on this machine."""

    objects: int = 0
    custom: int = 0  # custom resources checked against the pinned CRDs' schemas
    catalogued: int = 0  # custom resources checked against the catalogue only (no CRDs here)
    problems: list[str] = field(default_factory=list)
    unevaluated: list[str] = field(default_factory=list)
    cel_evaluated: int = 0
    notice: str = ""  # what was not checked, and how to check it

    def summary(self) -> str:
        unevaluated = f", {len(self.unevaluated)} CEL rule(s) not evaluable" if self.unevaluated else ""
        if self.catalogued:
            what = (
                f"{self.catalogued} custom resources checked only for kind, served apiVersion, scope and "
                "metadata: their schemas were NOT checked"
            )
        else:
            what = f"{self.custom} custom resources against the pinned CRDs, {self.cel_evaluated} CEL rule evaluations"
        line = f"{self.objects} objects validated ({what}{unevaluated}): {len(self.problems)} violation(s)"
        return f"{line}\n{self.notice}" if self.notice else line


def _name(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))


def validate_objects(
    objects: Iterable[tuple[str, Mapping[str, Any]]],
    kubernetes_version: str,
    data: upstream.UpstreamData | None,
) -> Report:
    """``(where, body)`` pairs; problems read ``where: Kind ns/name: at field: message [rule]``."""
    report = Report()
    for where, body in objects:
        checked = check(body, kubernetes_version, data)
        report.objects += 1
        if str(body.get("apiVersion", "")).rpartition("/")[0] not in BUILTIN_GROUPS:
            if checked.schema_checked:
                report.custom += 1
            else:
                report.catalogued += 1
        label = f"{where}: {body.get('kind')} {_name(body)}"
        report.problems += [f"{label}: {p}" for p in checked.problems]
        report.unevaluated += [f"{label}: {u}" for u in checked.unevaluated]
        report.cel_evaluated += checked.cel_evaluated
    return report


def check_objects(
    objects: Iterable[tuple[str, Mapping[str, Any]]],
    kubernetes_version: str,
    data: upstream.UpstreamData | None,
) -> list[str]:
    return validate_objects(objects, kubernetes_version, data).problems
