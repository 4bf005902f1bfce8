"""Validation of every object the installer applies, before it touches a cluster.

Built-in kinds are checked with ``kubernetes-validate`` in strict mode against the pinned
Kubernetes minor version (an unknown field is an error). Custom resources are checked against the
field-level shapes in ``crd_shapes``; containers inside them against the core Container schema.
A kind with neither is an error too: "no schema" must never read as "valid".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kubernetes_validate

from inferbox.kind.crd_shapes import ISVC_MODEL_FIELDS, KIND_CLUSTER, SHAPES
from inferbox.shapes import check_shape

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


def schema_version(kubernetes_version: str) -> str:
    """``v1.32.5`` -> ``1.32.0``: kubernetes-validate ships one schema per minor version."""
    parts = kubernetes_version.lstrip("v").split(".")
    return f"{parts[0]}.{parts[1]}.0"


def _describe_shape_problem(prefix: str, path: str, message: str, allowed: tuple[str, ...]) -> str:
    known = f" (fields there: {', '.join(allowed)})" if allowed else ""
    return f"{prefix}field {path} {message}{known}"


def _builtin_problems(body: Mapping[str, Any], version: str) -> list[tuple[list[str], str]]:
    """(path, message) of the first schema violation, if any."""
    try:
        kubernetes_validate.validate(dict(body), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [([], f"Kubernetes {version} has no kind {body.get('kind')} in {body.get('apiVersion')}")]
    except kubernetes_validate.ValidationError as exc:
        return [([str(p) for p in exc.path], exc.message)]
    return []


def _check_builtin(body: Mapping[str, Any], version: str) -> list[str]:
    return [f"at {'.'.join(path) or '(top level)'}: {message}" for path, message in _builtin_problems(body, version)]


def check_container(container: Any, version: str, where: str) -> list[str]:
    """A core/v1 Container, validated inside a throwaway Pod."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": {"containers": [container]}}
    return [
        f"at {'.'.join([where, *path[3:]])}: {message}"  # path[:3] is spec.containers.0 of the Pod
        for path, message in _builtin_problems(pod, version)
    ]


def _check_inference_service(body: Mapping[str, Any], version: str) -> list[str]:
    predictor = (body.get("spec") or {}).get("predictor") or {}
    problems = []
    for index, container in enumerate(predictor.get("containers") or []):
        problems += check_container(container, version, f"spec.predictor.containers[{index}]")
    model = predictor.get("model")
    if isinstance(model, dict):
        own = {k: v for k, v in model.items() if k in ISVC_MODEL_FIELDS}
        problem = check_shape(own, ISVC_MODEL_FIELDS, "spec.predictor.model")
        if problem:
            problems.append(_describe_shape_problem("", problem.path, problem.message, problem.allowed))
        container = {k: v for k, v in model.items() if k not in ISVC_MODEL_FIELDS}
        container.setdefault("name", "kserve-container")
        problems += check_container(container, version, "spec.predictor.model")
    return problems


def check_object(body: Mapping[str, Any], kubernetes_version: str) -> list[str]:
    """Every problem found in one object (empty: valid)."""
    version = schema_version(kubernetes_version)
    api_version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    group = api_version.rpartition("/")[0]
    if group in BUILTIN_GROUPS:
        return _check_builtin(body, version)
    shape = SHAPES.get((api_version, kind))
    if shape is None:
        return [
            f"no field-level shape for {kind} ({api_version}): add one to inferbox/kind/crd_shapes.py, "
            "checked against the upstream CRD at the pinned version"
        ]
    problems = []
    problem = check_shape(dict(body), shape)
    if problem:
        problems.append(_describe_shape_problem("", problem.path, problem.message, problem.allowed))
    if kind == "InferenceService":
        problems += _check_inference_service(body, version)
    return problems


def check_kind_config(body: Mapping[str, Any]) -> list[str]:
    problem = check_shape(dict(body), KIND_CLUSTER)
    return [_describe_shape_problem("", problem.path, problem.message, problem.allowed)] if problem else []


def check_objects(objects: Iterable[tuple[str, Mapping[str, Any]]], kubernetes_version: str) -> list[str]:
    """``(where, body)`` pairs -> ``where: Kind ns/name: problem`` lines."""
    out = []
    for where, body in objects:
        meta = body.get("metadata") or {}
        name = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
        out += [f"{where}: {body.get('kind')} {name}: {p}" for p in check_object(body, kubernetes_version)]
    return out
