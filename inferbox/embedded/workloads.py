"""Deployments and InferenceServices translated into the processes the embedded target runs.

Images cannot be pulled here, so each image the manifests use maps to a local program:
``inferbox/jwt-server`` runs ``python -m inferbox.jwtserver``; ``inferbox/model-server`` and
KServe's runtimes run KServe's ModelServer through ``python -m inferbox.modelserver``. A KServe
runtime model maps its ``storageUri`` to a local artifact with the same classes and answers
(see MODEL_ARTIFACTS). Anything else is an error naming the image or URI.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferbox.errors import ManifestError
from inferbox.manifests import K8sObject, ManifestSet
from inferbox.replica_bounds import replica_bounds

# KServe runtime artifacts the embedded target can serve, by storageUri.
MODEL_ARTIFACTS = {
    "gs://kfserving-examples/models/sklearn/1.0/model": "iris",
    "gs://kfserving-examples/models/sklearn/1.0/model-2": "iris-2",
}
MODEL_PORT = 8080


@dataclass(frozen=True)
class WorkloadSpec:
    """One kind of pod: how to start a replica and where it listens."""

    component: str  # name used for logs and pods, e.g. "tenant-a.sklearn-iris"
    namespace: str
    name: str
    kind: str  # "Deployment" or "InferenceService"
    labels: dict[str, str]
    argv: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    min_replicas: int
    max_replicas: int
    secret_mounts: dict[str, str] = field(default_factory=dict)  # mountPath -> secret name
    service_account: str = "default"  # the pod's mesh identity is spiffe://<td>/ns/<namespace>/sa/<this>
    resources: tuple[dict[str, dict[str, str]], ...] = ()  # each container's requests/limits (for quotas)
    revision: str = ""  # an InferenceService's Knative revision suffix (00001...), empty for Deployments


def _image_name(image: str) -> str:
    return image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image.split("@", 1)[0]


def _container_port(container: dict[str, object], default: int) -> int:
    for port in container.get("ports") or []:  # type: ignore[attr-defined]
        return int(port["containerPort"])
    return default


def _deployment(obj: K8sObject) -> WorkloadSpec:
    template = obj.spec["template"]
    containers = template["spec"]["containers"]
    if len(containers) != 1:
        raise ManifestError(
            f"{obj.source}: {obj.ref}: the embedded target runs single-container pods", "use one container"
        )
    container = containers[0]
    image = _image_name(container["image"])
    if image != "inferbox/jwt-server":
        raise ManifestError(
            f"{obj.source}: {obj.ref}: image {container['image']} cannot run on the embedded target",
            "the embedded target runs inferbox/jwt-server; other images need --platform kind/existing",
        )
    mounts = {}
    volumes = {v["name"]: v["secret"]["secretName"] for v in template["spec"].get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        mounts[mount["mountPath"]] = volumes[mount["name"]]
    port = _container_port(container, 8080)
    return WorkloadSpec(
        component=f"{obj.namespace}.{obj.name}",
        namespace=obj.namespace or "default",
        name=obj.name,
        kind="Deployment",
        labels=dict(template.get("metadata", {}).get("labels") or {}),
        argv=[sys.executable, "-m", "inferbox.jwtserver", *container.get("args", [])],
        env={e["name"]: e["value"] for e in container.get("env") or []},
        port=port,
        ready_path="/.well-known/jwks.json",
        min_replicas=int(obj.spec.get("replicas", 1)),
        max_replicas=int(obj.spec.get("replicas", 1)),
        secret_mounts=mounts,
        service_account=str(template["spec"].get("serviceAccountName", "default")),
        resources=(_resources(container),),
    )


def _inference_service(obj: K8sObject) -> WorkloadSpec:
    return revision_workload(obj, obj.spec["predictor"])


def revision_workload(obj: K8sObject, predictor: dict[str, Any], revision: str = "") -> WorkloadSpec:
    """How to run a replica of one revision of an InferenceService (``predictor`` is its spec.predictor)."""
    namespace = obj.namespace or "default"
    common = {"--model_name": obj.name, "--enable_grpc": "false"}
    env: dict[str, str] = {}
    if "model" in predictor:
        model = predictor["model"]
        resources = _resources(model)
        uri = model.get("storageUri", "")
        artifact = MODEL_ARTIFACTS.get(uri)
        if artifact is None:
            raise ManifestError(
                f"{obj.source}: {obj.ref}: storageUri {uri!r} has no local artifact on the embedded target",
                f"use one of {', '.join(MODEL_ARTIFACTS)} or a custom inferbox/model-server container",
            )
        args = {**common, "--model": artifact}
        port = MODEL_PORT
    else:
        containers = predictor.get("containers") or []
        if len(containers) != 1 or _image_name(containers[0]["image"]) != "inferbox/model-server":
            raise ManifestError(
                f"{obj.source}: {obj.ref}: the embedded target runs custom predictors only from the "
                "inferbox/model-server image",
                "use spec.predictor.model with a known storageUri, or the inferbox/model-server image",
            )
        container = containers[0]
        resources = _resources(container)
        env = {e["name"]: e["value"] for e in container.get("env") or []}
        args = dict(common)
        for arg in container.get("args") or []:
            key, _, value = arg.partition("=")
            args[key] = value
        port = _container_port(container, MODEL_PORT)
        if "--model" not in args:
            raise ManifestError(
                f"{obj.source}: {obj.ref}: the model-server container needs --model=NAME",
                "add --model=NAME to args (iris, digits, ngram-pydoc...)",
            )
    args.pop("--http_port", None)  # the port is the pod's, set when a replica starts
    return WorkloadSpec(
        component=f"{namespace}.{obj.name}",
        namespace=namespace,
        name=obj.name,
        kind="InferenceService",
        labels={
            "serving.kserve.io/inferenceservice": obj.name,
            **({"serving.knative.dev/revision": f"{obj.name}-predictor-{revision}"} if revision else {}),
        },
        argv=[sys.executable, "-m", "inferbox.modelserver", *(f"{k}={v}" for k, v in args.items())],
        env=env,
        port=port,
        ready_path=f"/v1/models/{obj.name}",
        min_replicas=replica_bounds(predictor)[0],
        max_replicas=replica_bounds(predictor)[1],
        service_account=str(predictor.get("serviceAccountName", "default")),
        resources=(resources,),
        revision=revision,
    )


def _resources(container: dict[str, object]) -> dict[str, dict[str, str]]:
    raw = container.get("resources") or {}
    assert isinstance(raw, dict)
    return {kind: {k: str(v) for k, v in (raw.get(kind) or {}).items()} for kind in ("requests", "limits")}


def read_workloads(manifests: ManifestSet) -> list[WorkloadSpec]:
    specs = [_deployment(d) for d in manifests.of_kind("Deployment")]
    specs += [_inference_service(i) for i in manifests.of_kind("InferenceService")]
    return specs


def service_selects(service: K8sObject, spec: WorkloadSpec) -> bool:
    selector = service.spec.get("selector") or {}
    return (
        bool(selector)
        and service.namespace == spec.namespace
        and all(spec.labels.get(k) == v for k, v in selector.items())
    )


def service_target_port(service: K8sObject, port: int, spec: WorkloadSpec) -> int:
    """The container port behind ``port`` of ``service`` (named target ports resolve to the container's)."""
    for entry in service.spec.get("ports") or []:
        if int(entry["port"]) == port:
            target = entry.get("targetPort", port)
            return spec.port if isinstance(target, str) else int(target)
    raise ManifestError(f"{service.source}: {service.ref} has no port {port}", "fix the route's backendRef port")


def secret_dir(state_dir: Path, secret: str) -> Path:
    return state_dir / "secrets" / secret
