"""The ``inferbox`` command: stand the platform up and down, get tokens, run mutants."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from inferbox.errors import InferboxError
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.profile import DEFAULT_PROFILE, load_profile

if TYPE_CHECKING:
    from inferbox.embedded.state import ComponentStatus

console = Console()
err = Console(stderr=True)


def _kind_cli() -> Any:
    """The cluster targets' commands, when that part of inferbox is installed."""
    try:
        return importlib.import_module("inferbox.kind.cli")
    except ModuleNotFoundError:
        return None


def _state_dir(args: argparse.Namespace) -> Path:
    from inferbox.embedded.lifecycle import default_state_dir

    return Path(args.state_dir) if args.state_dir else default_state_dir()


def _components_table(components: Mapping[str, ComponentStatus]) -> Table:
    from inferbox.embedded.processes import is_same_process

    table = Table(title="components", title_justify="left")
    for column in ("component", "state", "pid", "log"):
        table.add_column(column)
    for name, info in sorted(components.items()):
        alive = is_same_process(info.pid, info.start_time)
        table.add_row(name, "running" if alive else "[red]gone[/red]", str(info.pid), info.log)
    return table


def cmd_up(args: argparse.Namespace) -> int:
    if args.platform != "embedded":
        kind_cli = _kind_cli()
        if kind_cli is None:
            err.print(f"[red]--platform {args.platform} is not available in this installation[/red]")
            return 2
        result: int = kind_cli.up(args)
        return result
    from inferbox.embedded.lifecycle import running_state, start_daemon
    from inferbox.embedded.route_status import route_report_for

    state_dir = _state_dir(args)
    state = running_state(state_dir)
    if state:
        console.print(f"already running: gateway {state.gateway_url} (stop it with `inferbox down`)")
        return 0
    with console.status("starting the embedded platform: JWT server, model servers, gateway"):
        state = start_daemon(Path(args.manifests), state_dir, args.gateway_port, args.admin_port, args.network)
    console.print(_components_table(state.components))
    for line in route_report_for(Path(args.manifests)):
        console.print(line, style="yellow", highlight=False, markup=False)
    console.print(f"gateway: {state.gateway_url}   (network: {state.network}, ready in {state.ready_after_s}s)")
    console.print("call a model:  TOKEN=$(inferbox token tenant-a)")
    console.print(
        f"  curl -H 'Host: sklearn-iris.tenant-a.inference.example' -H \"Authorization: Bearer $TOKEN\" "
        f"-H 'content-type: application/json' -d '{{\"instances\": [[6.8,2.8,4.8,1.4]]}}' "
        f"{state.gateway_url}/v1/models/sklearn-iris:predict"
    )
    telemetry = state.observability
    if telemetry.prometheus_url:
        console.print(f"prometheus: {telemetry.prometheus_url}   jaeger query API: {telemetry.jaeger_query_url}")
    console.print(f"logs: {state.log_dir}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if args.platform != "embedded":
        kind_cli = _kind_cli()
        if kind_cli is None:
            err.print(f"[red]--platform {args.platform} is not available in this installation[/red]")
            return 2
        result: int = kind_cli.down(args)
        return result
    from inferbox.embedded.lifecycle import stop_daemon

    with console.status("stopping the embedded platform"):
        stopped = stop_daemon(_state_dir(args))
    console.print("stopped" if stopped else "no embedded platform was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.platform != "embedded":
        kind_cli = _kind_cli()
        if kind_cli is None:
            err.print(f"[red]--platform {args.platform} is not available in this installation[/red]")
            return 2
        result: int = kind_cli.status(args)
        return result
    from inferbox.embedded.control import remote
    from inferbox.embedded.lifecycle import running_state

    state = running_state(_state_dir(args))
    if not state:
        console.print("no embedded platform is running (start one with `inferbox up`)")
        return 1
    live = remote(_state_dir(args))
    # Model replicas come and go (scale to zero): the control channel knows the current ones.
    console.print(_components_table(live.component_status() if live is not None else state.components))
    console.print(f"gateway: {state.gateway_url}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from inferbox.embedded.lifecycle import running_state
    from inferbox.embedded.target import EmbeddedTarget

    state = running_state(_state_dir(args))
    if not state:
        err.print("no embedded platform is running; start one with `inferbox up`")
        return 1
    target = EmbeddedTarget(state, load_profile(args.profile), control=None)
    tenants = [t.name for t in target.topology.tenants]
    if args.tenant not in tenants:
        err.print(f"unknown tenant {args.tenant!r}; tenants: {', '.join(tenants)}")
        return 2
    with target.gateway() as gateway:
        print(gateway.token(target.credentials(args.tenant)))
    return 0


def cmd_mutants(args: argparse.Namespace) -> int:
    from inferbox.mutants.model import load_mutants
    from inferbox.mutants.runner import MutantResult, run_all

    mutants = [m for m in load_mutants() if args.platform in m.targets]  # some need a cluster (Grafana, Kiali)
    if args.only:
        wanted = set(args.only)
        mutants = [m for m in mutants if m.name in wanted]
        missing = wanted - {m.name for m in mutants}
        if missing:
            err.print(f"unknown mutant(s): {', '.join(sorted(missing))}")
            return 2
    if args.action == "list":
        table = Table("mutant", "breaks", "killed by")
        for m in mutants:
            table.add_row(m.name, m.breaks, "\n".join(k.split("::")[1] for k in m.kills))
        console.print(table)
        return 0

    def progress(result: MutantResult) -> None:
        verdict = "[green]killed[/green]" if result.killed else "[red]SURVIVED[/red]"
        console.print(f"  {result.name}: {verdict} ({result.duration_s}s)")

    baseline = f"the baseline from {args.baseline_report}" if args.baseline_report else "the baseline"
    console.print(f"running {baseline}, then {len(mutants)} mutants on the {args.platform} target")
    with console.status("running mutants"):
        run = run_all(
            mutants, Path(args.manifests), args.platform, args.jobs, progress, args.baseline_report, not args.no_share
        )
    if not run.baseline_ok:
        failing = {t: o for t, o in run.baseline.items() if o != "passed"}
        err.print("[red]baseline failed[/red]: the unmutated platform must pass every named test first:")
        for test, outcome in failing.items():
            err.print(f"  {test}: {outcome}")
        err.print(f"logs: {run.folder / 'baseline'}")
        return 1
    table = Table(title="mutants", title_justify="left")
    for column in ("mutant", "verdict", "breaks", "platform", "time"):
        table.add_column(column)
    for result in run.results:
        table.add_row(
            result.name,
            "killed" if result.killed else "[red]SURVIVED[/red]",
            result.breaks if result.killed else f"{result.breaks}\n[red]{result.problem}[/red]",
            result.platform,
            f"{result.duration_s}s",
        )
    console.print(table)
    console.print(f"mutants: {run.killed} killed of {len(run.results)}")
    console.print(f"report: {run.folder}")
    return 0 if run.killed == len(run.results) else 1


def _score(mutation: dict[str, Any] | None) -> str:
    return f"{mutation['killed']}/{mutation['total']}" if mutation else "-"


def cmd_report_diff(args: argparse.Namespace) -> int:
    from inferbox.report.diff import diff_reports
    from inferbox.report.model import load_report

    old, new = load_report(Path(args.old)), load_report(Path(args.new))
    diff = diff_reports(old, new, args.threshold)
    console.print(f"old: {args.old} ({old['target']}, {old['started']})")
    console.print(f"new: {args.new} ({new['target']}, {new['started']})")
    if diff.versions:
        table = Table("component", "old", "new", title="versions", title_justify="left")
        for name, (before, after) in diff.versions.items():
            table.add_row(name, before or "-", after or "-")
        console.print(table)
    for title, rows, style in (("regressions", diff.regressions, "red"), ("fixed", diff.fixes, "green")):
        if rows:
            table = Table("test", "old", "new", title=title, title_justify="left", style=style)
            for test, before, after in rows:
                table.add_row(test, before, after)
            console.print(table)
    if diff.removed:
        console.print(
            f"[yellow]{len(diff.removed)} test(s) only in OLD[/yellow]: " + ", ".join(t for t, _ in diff.removed[:10])
        )
    if diff.added:
        console.print(f"{len(diff.added)} test(s) only in NEW")
    if diff.figures:
        table = Table("test", "figure", "old", "new", "change", title="figures", title_justify="left")
        for change in sorted(diff.figures, key=lambda c: -abs(c.relative)):
            table.add_row(
                change.test.split("::")[-1],
                change.name,
                f"{change.old:g}",
                f"{change.new:g}",
                f"{change.relative:+.0%}",
            )
        console.print(table)
    if diff.mutation:
        before, after = diff.mutation
        console.print(f"mutants killed: {_score(before)} -> {_score(after)}")
    verdict = "no regressions" if diff.ok else f"{len(diff.regressions)} regression(s)"
    console.print(f"verdict: {verdict}")
    return 0 if diff.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--platform", choices=["embedded", "kind", "existing"], default="embedded")
        p.add_argument("--manifests", default=str(DEFAULT_MANIFEST_DIR))
        p.add_argument("--profile", default=str(DEFAULT_PROFILE))
        p.add_argument("--state-dir", default=None, help="embedded: where a running platform keeps its state")
        kind_cli = _kind_cli()
        if kind_cli is not None:
            kind_cli.add_arguments(p)

    up = sub.add_parser("up", help="stand the platform up and leave it running")
    common(up)
    up.add_argument("--gateway-port", type=int, default=8080)
    up.add_argument("--admin-port", type=int, default=0)
    up.add_argument("--network", choices=["auto", "netns", "loopback"], default="auto")
    up.add_argument("--dry-run", action="store_true", help="kind: print the plan without touching anything")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the platform started by `inferbox up`")
    common(down)
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="show the running platform's components")
    common(status)
    status.set_defaults(func=cmd_status)
    token = sub.add_parser("token", help="print a token for TENANT from the platform's token endpoint")
    common(token)
    token.add_argument("tenant")
    token.set_defaults(func=cmd_token)
    mutants = sub.add_parser("mutants", help="run the conformance checks against every mutant")
    mutants.add_argument("action", choices=["run", "list"])
    mutants.add_argument("--only", nargs="*", help="run only these mutants")
    mutants.add_argument(
        "--jobs", type=int, default=1, help="mutants at once, each worker with a shared platform of its own (default 1)"
    )
    mutants.add_argument("--platform", choices=["embedded", "kind"], default="embedded")
    mutants.add_argument("--manifests", default=str(DEFAULT_MANIFEST_DIR))
    mutants.add_argument(
        "--baseline-report",
        type=Path,
        help="take the baseline from this conformance run's report.json (same manifests, profile and target)",
    )
    mutants.add_argument(
        "--no-share", action="store_true", help="every mutant on a platform of its own (no shared, reconfigured one)"
    )
    mutants.set_defaults(func=cmd_mutants)
    report = sub.add_parser("report", help="work with run reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    diff = report_sub.add_parser("diff", help="compare two runs (report folders or report.json files)")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--threshold", type=float, default=0.10, help="relative change of a figure worth listing")
    diff.set_defaults(func=cmd_report_diff)

    from inferbox.load.cli import add_parser as add_load_parser

    add_load_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except InferboxError as exc:
        err.print(f"[red]inferbox:[/red] {exc.problem}")
        if exc.fix:
            err.print(f"  fix: {exc.fix}")
        code = 2
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
