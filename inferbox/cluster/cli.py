"""``inferbox up|down|status --platform kind|existing`` (called by ``inferbox.cli``)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from inferbox.cluster import readback, upstream
from inferbox.cluster.commands import SubprocessRunner
from inferbox.cluster.installer import new_evidence_root, validate_plan
from inferbox.cluster.kindcluster import GATEWAY_NODE_PORT, load_kind_config
from inferbox.cluster.kube import KubeApi
from inferbox.cluster.platform import component_health
from inferbox.cluster.prereqs import check_tools
from inferbox.cluster.target import (
    Settings,
    deploy_existing,
    kind_lifecycle,
    plan_for,
    preflight_kind,
    provision_kind,
    settings_from,
)
from inferbox.errors import InferboxError
from inferbox.topology import read_topology

console = Console()
err = Console(stderr=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the cluster targets, on ``up``, ``down`` and ``status``."""
    group = parser.add_argument_group("kind/existing")
    group.add_argument(
        "--kube-context", default=os.environ.get("INFERBOX_KUBE_CONTEXT"), help="existing: the cluster's kube context"
    )
    group.add_argument("--kube-cluster-name", help="kind: cluster name (default inference-in-a-box)")
    group.add_argument("--kube-state-dir", help="where keys and credentials are kept (default .inferbox/)")
    group.add_argument(
        "--kube-timeout", action="append", default=[], metavar="NAME=SECONDS", help="override a named timeout"
    )
    group.add_argument(
        "--versions",
        default=os.environ.get("INFERBOX_VERSIONS"),
        help="a versions file holding only the pins to change",
    )


def _extra(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k.startswith("kube") or k in {"versions", "deploy"}}


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from(args.platform, Path(args.manifests), _extra(args))


def _progress(message: str) -> None:
    console.print(f"[dim]inferbox:[/dim] {message}")


def up(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.dry_run:
        return _dry_run(args.platform, settings)
    report = new_evidence_root(None, f"{args.platform}-install")
    if args.platform == "kind":
        runner = SubprocessRunner()
        preflight = preflight_kind(settings, reuse=True, progress=_progress, runner=runner)
        provision_kind(settings, preflight, report, _progress, runner)
        port = load_kind_config().host_port(GATEWAY_NODE_PORT)
        console.print(f"platform ready on Kind cluster {settings.cluster_name} (kube context {settings.context})")
        console.print(f"gateway: http://127.0.0.1:{port}   (Host header selects the model)")
        console.print("run the suite on it:  pytest -m conformance --inferbox-platform kind --inferbox-keep-platform")
        console.print("remove it:            inferbox down --platform kind")
    else:
        deploy_existing(settings, report, _progress)
        console.print(f"our manifests are applied on kube context {settings.context}")
        console.print(
            f"run the suite on it:  pytest -m conformance --platform existing --kube-context {settings.context}"
        )
    console.print(f"keys and client credentials: {settings.state.root}")
    return 0


def _dry_run(target: str, settings: Settings) -> int:
    """Prints prerequisites and the full plan; runs no command that changes anything."""
    findings = check_tools(target, settings.versions)
    if findings:
        # Plain text: install commands must stay on one line to be copied.
        print("prerequisites to fix before a real run:", file=sys.stderr)
        for finding in findings:
            print(f"  {finding.line()}", file=sys.stderr)
    kind_config = load_kind_config() if target == "kind" else None
    plan = plan_for(target, settings, kind_config)
    print(plan.render())
    # Every object the plan applies that inferbox renders or reads (canary rollouts' both bodies
    # included), against Kubernetes' schema and the pinned releases' CRDs; the charts' values too.
    # Without the pinned CRDs on this machine, the summary ends with what was not checked and how.
    print(validate_plan(plan, upstream.find(settings.versions), kind_config).summary())
    return 0


def down(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.platform == "existing":
        err.print(
            "inferbox never deletes from an existing cluster. To remove our objects: "
            f"kubectl --context {settings.context} delete -R -f {args.manifests}"
        )
        return 2
    runner = SubprocessRunner()
    kind = kind_lifecycle(settings)
    if not kind.exists(runner):
        console.print(f"no Kind cluster named {settings.cluster_name}")
    elif settings.state.read_record().get("created_by") != "inferbox":
        raise InferboxError(
            f"Kind cluster {settings.cluster_name} was not created by inferbox (no record in {settings.state.root})",
            f"delete it yourself if you mean to: kind delete cluster --name {settings.cluster_name}",
        )
    else:
        with console.status(f"deleting Kind cluster {settings.cluster_name}"):
            kind.delete()
        console.print(f"deleted Kind cluster {settings.cluster_name}")
    shutil.rmtree(settings.state.root, ignore_errors=True)
    return 0


def status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    api = KubeApi.from_kubeconfig(settings.context)
    try:
        health = component_health(api, read_topology(settings.manifests))
        running = readback.running_versions(api)
    finally:
        api.close()
    table = Table(title=f"components on {settings.context}", title_justify="left")
    for column in ("component", "state", "detail"):
        table.add_column(column)
    for item in health:
        table.add_row(item.name, "ok" if item.healthy else "[red]not ready[/red]", item.detail)
    console.print(table)
    requested = {c: f["version"] for c, f in settings.versions.entries.items() if "version" in f}
    differ = readback.compare(requested, running)
    versions = Table(title="versions (requested / running)", title_justify="left")
    for column in ("component", "requested", "running"):
        versions.add_column(column)
    for name in sorted(running):
        shown = f"[red]{running[name]}[/red]" if name in differ else running[name]
        versions.add_row(name, requested.get(name, "-"), shown)
    console.print(versions)
    return 0 if all(h.healthy for h in health) and not differ else 1
