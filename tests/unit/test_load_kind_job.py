"""In-cluster Locust workers: the rendered Job, ConfigMap and Secret are valid Kubernetes 1.32 and
carry what a worker needs (tested by rendering; the cluster target applies them)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

import pytest

from inferbox.errors import InferboxError
from inferbox.load.kind_job import (
    JobWorkers,
    WorkerJobSpec,
    locust_image,
    render_credentials_secret,
    render_worker_job,
    validate,
)
from inferbox.load.runner import LOCUSTFILE, WorkerLauncher

PLAN = {"name": "smoke", "workers": 0, "targets": [], "output_dir": "/home/me/reports/x"}
SPEC = WorkerJobSpec("smoke-20261126t2300", "inferbox-load", 3, "172.18.0.1", 5557)


def test_rendered_objects_are_valid_kubernetes() -> None:
    objects = [render_credentials_secret(SPEC, {"tenant-a": {"client_id": "a", "client_secret": "s"}})]
    objects += render_worker_job(SPEC, PLAN)
    validate(objects)
    assert [o["kind"] for o in objects] == ["Secret", "ConfigMap", "Job"]


def test_the_job_runs_one_worker_per_pod_connecting_back_to_the_master() -> None:
    config_map, job = render_worker_job(SPEC, PLAN)
    assert config_map["data"]["locustfile.py"] == LOCUSTFILE.read_text()
    plan = json.loads(config_map["data"]["plan.json"])
    assert plan["workers"] == 3, "workers split the rate by the worker count"
    assert plan["output_dir"] != PLAN["output_dir"], "a worker never writes into the host's report folder"
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["completionMode"], spec["backoffLimit"]) == (
        3,
        3,
        "Indexed",
        0,
    )
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == locust_image()
    assert container["args"][container["args"].index("--master-host") + 1] == "172.18.0.1"
    assert "--worker" in container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["INFERBOX_LOAD_PLAN"].startswith(mounts["plan"])
    assert env["INFERBOX_LOAD_CREDENTIALS"].startswith(mounts["credentials"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == SPEC.name
    assert pod["restartPolicy"] == "Never"
    assert container["securityContext"]["runAsNonRoot"] is True


def test_names_fit_kubernetes_limits() -> None:
    long = WorkerJobSpec("x" * 80, "ns", 1, "h", 1)
    assert len(long.name) <= 63
    validate(render_worker_job(long, PLAN))


def test_a_job_without_workers_is_refused() -> None:
    with pytest.raises(InferboxError, match="at least one worker"):
        render_worker_job(WorkerJobSpec("r", "ns", 0, "h", 1), PLAN)


def test_invalid_objects_are_reported() -> None:
    _, job = render_worker_job(SPEC, PLAN)
    job["spec"]["parallelism"] = "three"
    with pytest.raises(InferboxError, match="not valid Kubernetes"):
        validate([job])


def test_job_workers_apply_then_delete_through_kubectl(tmp_path: Any) -> None:
    log = tmp_path / "kubectl.log"
    fake = tmp_path / "kubectl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\ncat >> {log}\n')
    fake.chmod(0o755)
    workers = JobWorkers("inferbox-load", "172.18.0.1", "http://gw.envoy-gateway-system.svc", kubectl=(str(fake),))
    launcher: WorkerLauncher = workers
    launched: AbstractContextManager[None] = launcher.launch("smoke", {**PLAN, "workers": 2}, {"tenant-a": {}}, 5557)
    with launched:
        applied = log.read_text()
        assert applied.startswith("apply -f -")
        assert "kind: Job" in applied
        assert "kind: Secret" in applied
    deleted = log.read_text()
    assert "delete job inferbox-load-smoke -n inferbox-load" in deleted
    assert "delete secret inferbox-load-smoke -n inferbox-load" in deleted
