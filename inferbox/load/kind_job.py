"""Locust workers inside a cluster, as a Kubernetes Job (for the kind and existing targets).

The Locust master runs where inferbox runs (it writes the reports); N workers run in the cluster,
next to the gateway, in the official Locust image, with inferbox's locustfile (standard library and
Locust only) and the run plan mounted from a ConfigMap and tenants' credentials from a Secret. They
connect back to the master, which must be reachable from the pods (on Kind: the host's address on
the kind network). The plan's URLs must be the gateway as pods reach it (the target's load client
place says which).

``render_worker_job`` is pure (tested by rendering and schema validation); ``JobWorkers`` applies
and deletes the objects with kubectl and is what a cluster target hands to the runner.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import yaml

from inferbox.contract import Capability, Platform
from inferbox.errors import InferboxError
from inferbox.load.runner import LOCUSTFILE

KUBERNETES_VERSION = "1.32"  # manifests/versions.yaml pins Kubernetes v1.32
MOUNT = "/inferbox"
CREDENTIALS_MOUNT = "/inferbox-credentials"
LABEL = "inferbox.io/load-run"


def locust_image() -> str:
    """The official Locust image at the version installed here, so master and workers speak alike."""
    try:
        return f"locustio/locust:{metadata.version('locust')}"
    except metadata.PackageNotFoundError:
        return "locustio/locust:2.47.0"


@dataclass(frozen=True)
class WorkerJobSpec:
    run: str  # names the objects and labels them, e.g. "smoke-20261126t2300"
    namespace: str
    workers: int
    master_host: str
    master_port: int
    image: str = ""
    deadline_s: int = 3600
    cpu: str = "1"
    memory: str = "512Mi"

    @property
    def name(self) -> str:
        return f"inferbox-load-{self.run}"[:63].rstrip("-")


def render_worker_job(spec: WorkerJobSpec, plan: dict[str, Any], locustfile: str | None = None) -> list[dict[str, Any]]:
    """A ConfigMap (locustfile and plan) and an Indexed Job of ``spec.workers`` Locust workers."""
    if spec.workers < 1:
        raise InferboxError(f"a worker Job needs at least one worker, got {spec.workers}", "pass --workers N")
    labels = {
        "app.kubernetes.io/name": "inferbox-load",
        "app.kubernetes.io/component": "locust-worker",
        LABEL: spec.run,
    }
    worker_plan = {**plan, "workers": spec.workers, "output_dir": "/tmp/inferbox-load"}  # noqa: S108 - unused by workers
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "data": {
            "locustfile.py": locustfile if locustfile is not None else LOCUSTFILE.read_text(),
            "plan.json": json.dumps(worker_plan, indent=2),
        },
    }
    container = {
        "name": "locust-worker",
        "image": spec.image or locust_image(),
        "args": [
            "-f",
            f"{MOUNT}/locustfile.py",
            "--worker",
            "--master-host",
            spec.master_host,
            "--master-port",
            str(spec.master_port),
            "--loglevel",
            "WARNING",
        ],
        "env": [
            {"name": "INFERBOX_LOAD_PLAN", "value": f"{MOUNT}/plan.json"},
            {"name": "INFERBOX_LOAD_CREDENTIALS", "value": f"{CREDENTIALS_MOUNT}/credentials.json"},
        ],
        "resources": {
            "requests": {"cpu": spec.cpu, "memory": spec.memory},
            "limits": {"cpu": spec.cpu, "memory": spec.memory},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "plan", "mountPath": MOUNT, "readOnly": True},
            {"name": "credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - Locust and Python write here
        ],
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.workers,
            "parallelism": spec.workers,
            "backoffLimit": 0,  # a worker that dies is a failed run, not one to retry mid-measurement
            "activeDeadlineSeconds": spec.deadline_s,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "plan", "configMap": {"name": spec.name}},
                        {"name": "credentials", "secret": {"secretName": spec.name}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    return [config_map, job]


def render_credentials_secret(spec: WorkerJobSpec, credentials: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The Secret the workers read tenants' client credentials from (applied, never written to a report)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": {LABEL: spec.run}},
        "type": "Opaque",
        "stringData": {"credentials.json": json.dumps(credentials)},
    }


def validate(objects: Sequence[dict[str, Any]], version: str = KUBERNETES_VERSION) -> None:
    """Strict schema validation of core objects at the pinned Kubernetes version."""
    import kubernetes_validate

    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise InferboxError(
                f"rendered {obj['kind']} {obj['metadata']['name']} is not valid Kubernetes {version}: {exc.message}",
                "this is a bug in inferbox/load/kind_job.py",
            ) from exc


@dataclass
class JobWorkers:
    """Launches the workers of a run as a Job with kubectl (a cluster target provides context and host)."""

    namespace: str
    master_host: str  # the master's address as pods reach it
    gateway_url: str  # the gateway as pods reach it, e.g. http://<gateway Service>.<namespace>.svc.cluster.local
    bind_host: str = "0.0.0.0"  # noqa: S104 - the master must accept workers from the cluster network
    kubectl: tuple[str, ...] = ("kubectl",)
    image: str = ""

    def _kubectl(self, *args: str, stdin: str | None = None) -> None:
        done = subprocess.run([*self.kubectl, *args], input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise InferboxError(f"`kubectl {' '.join(args)}` failed: {done.stderr.strip()}", "check the cluster")

    @contextlib.contextmanager
    def launch(
        self, run: str, plan: dict[str, Any], credentials: dict[str, dict[str, str]], master_port: int
    ) -> Iterator[None]:
        spec = WorkerJobSpec(run, self.namespace, int(plan["workers"]), self.master_host, master_port, image=self.image)
        objects = [render_credentials_secret(spec, credentials), *render_worker_job(spec, plan)]
        validate(objects)
        self._kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
        try:
            yield
        finally:
            for kind in ("job", "configmap", "secret"):
                with contextlib.suppress(InferboxError):
                    self._kubectl("delete", kind, spec.name, "-n", self.namespace, "--ignore-not-found", "--wait=false")


KIND_NETWORK = "kind"
LOAD_NAMESPACE = "default"


def kind_network_gateway(docker: str = "docker") -> str:
    """This machine's address on Kind's Docker network, which pods reach through their node."""
    done = subprocess.run(
        [docker, "network", "inspect", KIND_NETWORK, "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    addresses = [a for a in done.stdout.split() if "." in a]  # the IPv4 gateway
    if done.returncode != 0 or not addresses:
        raise InferboxError(
            f"cannot find this machine's address on the {KIND_NETWORK!r} Docker network: {done.stderr.strip()}",
            "pass --master-host ADDRESS (an address of this machine that pods can reach)",
        )
    return addresses[0]


def in_cluster_workers(platform: Platform, master_host: str | None) -> JobWorkers:
    """Workers for a cluster target: a Job next to the platform, reporting to a master on this machine."""
    if Capability.IN_CLUSTER_LOAD not in platform.capabilities:
        raise InferboxError(
            f"target {platform.target} cannot run load workers in a cluster "
            f"(it lacks the capability {Capability.IN_CLUSTER_LOAD})",
            "use --platform kind or existing",
        )
    place = platform.in_cluster_load()
    host = master_host or place.default_master_host
    if not host:
        raise InferboxError(
            "--in-cluster on an existing cluster needs the master's address as pods reach it",
            "pass --master-host ADDRESS",
        )
    kubectl = ("kubectl", "--context", place.kube_context) if place.kube_context else ("kubectl",)
    return JobWorkers(LOAD_NAMESPACE, host, place.gateway_url, kubectl=kubectl)
