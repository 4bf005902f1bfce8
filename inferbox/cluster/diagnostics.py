"""Failure evidence from a cluster: events, pod status and logs of the namespaces involved, and
the objects a wait was about, written into the run's report folder."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from inferbox.cluster.kube import KubeApi, KubeError
from inferbox.cluster.waits import Subject

LOG_TAIL_LINES = 300


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


def _event_line(event: dict[str, Any]) -> str:
    when = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
    involved = event.get("involvedObject") or {}
    count = f" x{event['count']}" if event.get("count") else ""
    return (
        f"{when} {event.get('type', '')} {event.get('reason', '')} "
        f"{involved.get('kind', '')}/{involved.get('name', '')}{count}: {event.get('message', '')}"
    ).strip()


def _pod_line(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    parts = []
    for cs in status.get("containerStatuses") or []:
        state = next(iter((cs.get("state") or {}).keys()), "unknown")
        reason = ((cs.get("state") or {}).get(state) or {}).get("reason", "")
        why = f"({reason})" if reason else ""
        parts.append(f"{cs['name']}={state}{why} restarts={cs.get('restartCount', 0)}")
    node = (pod.get("spec") or {}).get("nodeName")
    return f"{pod['metadata']['name']} phase={status.get('phase')} node={node} {' '.join(parts)}"


def dump_namespace(api: KubeApi, namespace: str, dest: Path, tail_lines: int = LOG_TAIL_LINES) -> None:
    folder = dest / _safe(namespace)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    events = sorted(
        api.list("v1", "Event", namespace), key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or "")
    )
    (folder / "events.txt").write_text("\n".join(_event_line(e) for e in events) + "\n")
    pods = api.list("v1", "Pod", namespace)
    (folder / "pods.txt").write_text("\n".join(_pod_line(p) for p in pods) + "\n")
    (folder / "pods.yaml").write_text(
        yaml.safe_dump_all([{"metadata": p.get("metadata"), "status": p.get("status")} for p in pods], sort_keys=False)
    )
    for pod in pods:
        name = pod["metadata"]["name"]
        statuses = {cs["name"]: cs for cs in (pod.get("status") or {}).get("containerStatuses") or []}
        for container in (pod.get("spec") or {}).get("containers") or []:
            cname = container["name"]
            target = folder / "logs" / f"{_safe(name)}.{_safe(cname)}.log"
            try:
                target.write_text(api.pod_log(namespace, name, cname, tail_lines))
                if int(statuses.get(cname, {}).get("restartCount", 0)) > 0:
                    previous = api.pod_log(namespace, name, cname, tail_lines, previous=True)
                    target.with_suffix(".previous.log").write_text(previous)
            except KubeError as exc:
                target.write_text(f"(no log: {exc})\n")


def dump(api: KubeApi, dest: Path, namespaces: Iterable[str], subjects: Iterable[Subject] = ()) -> Path:
    """Writes what explains a failure into ``dest``; problems while dumping are recorded, not raised."""
    dest.mkdir(parents=True, exist_ok=True)
    problems = []
    for namespace in dict.fromkeys(namespaces):
        try:
            dump_namespace(api, namespace, dest)
        except KubeError as exc:
            problems.append(f"namespace {namespace}: {exc}")
    for subject in subjects:
        try:
            obj = api.get(subject.api_version, subject.kind, subject.name, subject.namespace)
        except KubeError as exc:
            problems.append(f"{subject.kind} {subject.name}: {exc}")
            continue
        objects = dest / "objects"
        objects.mkdir(exist_ok=True)
        where = f"{subject.namespace}-" if subject.namespace else ""
        (objects / _safe(f"{subject.kind}-{where}{subject.name}.yaml")).write_text(
            yaml.safe_dump(obj, sort_keys=False) if obj else "(does not exist)\n"
        )
    if problems:
        (dest / "dump-errors.txt").write_text("\n".join(problems) + "\n")
    return dest
