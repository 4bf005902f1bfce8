"""inferbox: stand the Inference-in-a-Box platform up and down, get tokens, run mutants and load
profiles, and compare run reports.

The conformance suite itself runs under pytest (``pytest -m conformance``); its options are the
ones below with an ``--inferbox-`` prefix (``--inferbox-platform kind``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from inferbox.errors import InferboxError
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.profile import DEFAULT_PROFILE, load_profile
from inferbox.report.console import make_console

if TYPE_CHECKING:
    from inferbox.embedded.state import ComponentStatus

PLATFORMS = ("embedded", "kind", "existing")
CLUSTERS = ("kind", "existing")
# Options that mean something only on some targets: given on another, they are refused, not ignored.
PLATFORM_OPTIONS: dict[str, tuple[str, ...]] = {
    "gateway_port": ("embedded",),
    "admin_port": ("embedded",),
    "network": ("embedded",),
    "state_dir": ("embedded",),
    "dry_run": CLUSTERS,
    "kube_context": ("existing",),
    "kube_cluster_name": ("kind",),
    "kube_state_dir": CLUSTERS,
    "kube_timeout": CLUSTERS,
    "versions": CLUSTERS,
    "in_cluster": CLUSTERS,
    "master_host": CLUSTERS,
}
# The same, for one command only: `status -o json` describes the embedded platform's processes.
COMMAND_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {"status": {"output": ("embedded",)}}
console = make_console()
err = make_console(stderr=True)


def version() -> str:
    try:
        return metadata.version("inferbox")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def command_name() -> str:
    """How the user can run this command again: ``inferbox`` when that is on PATH, else its path."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if argv0.endswith(".py") or not argv0:  # python -m inferbox.cli
        return f"{shlex.quote(sys.executable)} -m inferbox.cli"
    found = shutil.which("inferbox")
    if found and Path(found).resolve() == Path(argv0).resolve():
        return "inferbox"
    return shlex.quote(argv0)


def _kind_cli() -> Any:
    """The cluster targets' commands, when that part of inferbox is installed."""
    try:
        return importlib.import_module("inferbox.cluster.cli")
    except ModuleNotFoundError:
        return None


def _state_dir(args: argparse.Namespace) -> Path:
    from inferbox.embedded.lifecycle import default_state_dir

    return Path(args.state_dir) if args.state_dir else default_state_dir()


def _names(value: str) -> Text:
    """A cell holding names or ids: never read as markup, folded rather than cut when narrow."""
    return Text(value, overflow="fold")


def _components(components: Mapping[str, ComponentStatus]) -> dict[str, dict[str, Any]]:
    from inferbox.embedded.processes import is_same_process

    rows = {}
    for name, info in sorted(components.items()):
        alive = is_same_process(info.pid, info.start_time)
        rows[name] = {"state": "running" if alive else "gone", "pid": info.pid, "log": info.log}
    return rows


def _components_table(components: Mapping[str, ComponentStatus]) -> Table:
    table = Table(title="components", title_justify="left")
    for column in ("component", "state", "pid", "log"):
        table.add_column(column, overflow="fold")
    for name, row in _components(components).items():
        table.add_row(
            _names(name),
            Text(row["state"], style="red" if row["state"] == "gone" else ""),
            str(row["pid"]),
            _names(row["log"]),
        )
    return table


def curl_hint(gateway_url: str, token_command: str) -> list[str]:
    """How to call a model, one argument a line: no line breaks inside a quoted header at 80 columns."""
    return [
        "call a model:",
        f"  TOKEN=$({token_command} token tenant-a)",
        "  curl -H 'Host: sklearn-iris.tenant-a.inference.example' \\",
        '       -H "Authorization: Bearer $TOKEN" \\',
        "       -H 'content-type: application/json' \\",
        "       -d '{\"instances\": [[6.8, 2.8, 4.8, 1.4]]}' \\",
        f"       {gateway_url}/v1/models/sklearn-iris:predict",
    ]


def _cluster_command(args: argparse.Namespace, name: str) -> int:
    kind_cli = _kind_cli()
    if kind_cli is None:
        err.print(Text(f"--platform {args.platform} is not available in this installation", style="red"))
        return 2
    result: int = getattr(kind_cli, name)(args)
    return result


def cmd_up(args: argparse.Namespace) -> int:
    if args.platform != "embedded":
        return _cluster_command(args, "up")
    from inferbox.embedded.lifecycle import running_state, start_daemon
    from inferbox.embedded.route_status import route_report_for

    state_dir = _state_dir(args)
    state = running_state(state_dir)
    if state:
        console.print(Text(f"already running: gateway {state.gateway_url} (stop it with `inferbox down`)"))
        console.print(Text(f"state: {state_dir}"))
        return 0
    with console.status("starting the embedded platform: JWT server, model servers, gateway"):
        state = start_daemon(Path(args.manifests), state_dir, args.gateway_port, args.admin_port, args.network)
    console.print(_components_table(state.components))
    for line in route_report_for(Path(args.manifests)):
        console.print(Text(line, style="yellow"))
    console.print(Text(f"gateway: {state.gateway_url}   (network: {state.network}, ready in {state.ready_after_s}s)"))
    # Plain print: the hint is copied into a shell, so no console may wrap it.
    print("\n".join(curl_hint(state.gateway_url, command_name())), flush=True)
    if state.ai_gateway_url:
        console.print(
            Text(f"AI Gateway (OpenAI API of the generative models): {state.ai_gateway_url}/v1/chat/completions")
        )
    telemetry = state.observability
    if telemetry.prometheus_url:
        console.print(Text(f"prometheus: {telemetry.prometheus_url}   jaeger query API: {telemetry.jaeger_query_url}"))
    console.print(Text(f"logs: {state.log_dir}"))
    console.print(
        Text(f"state: {state_dir} (status, token and down find it from any directory; stop it with `inferbox down`)")
    )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if args.platform != "embedded":
        return _cluster_command(args, "down")
    from inferbox.embedded.lifecycle import stop_daemon

    with console.status("stopping the embedded platform"):
        stopped = stop_daemon(_state_dir(args))
    console.print(Text("stopped" if stopped else f"no embedded platform was running from {_state_dir(args)}"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.platform != "embedded":
        return _cluster_command(args, "status")
    from inferbox.embedded.control import remote
    from inferbox.embedded.lifecycle import running_state

    state_dir = _state_dir(args)
    state = running_state(state_dir)
    if not state:
        if args.output == "json":
            print(json.dumps({"platform": "embedded", "running": False, "state_dir": str(state_dir)}, indent=2))
        else:
            console.print(Text(f"no embedded platform is running from {state_dir} (start one with `inferbox up`)"))
        return 1
    live = remote(state_dir)
    # Model replicas come and go (scale to zero): the control channel knows the current ones.
    components = live.component_status() if live is not None else state.components
    if args.output == "json":
        body = {
            "platform": "embedded",
            "running": True,
            "state_dir": str(state_dir),
            "gateway_url": state.gateway_url,
            "ai_gateway_url": state.ai_gateway_url,
            "network": state.network,
            "log_dir": state.log_dir,
            "observability": asdict(state.observability),
            "components": _components(components),
        }
        print(json.dumps(body, indent=2))
        return 0
    console.print(_components_table(components))
    console.print(Text(f"gateway: {state.gateway_url}"))
    if state.ai_gateway_url:
        console.print(Text(f"AI Gateway: {state.ai_gateway_url}"))
    console.print(Text(f"state: {state_dir}"))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from inferbox.embedded.lifecycle import running_state
    from inferbox.embedded.target import EmbeddedTarget

    state = running_state(_state_dir(args))
    if not state:
        err.print(Text(f"no embedded platform is running from {_state_dir(args)}; start one with `inferbox up`"))
        return 1
    target = EmbeddedTarget(state, load_profile(args.conformance_profile), control=None)
    tenants = [t.name for t in target.topology.tenants]
    if args.tenant not in tenants:
        err.print(Text(f"unknown tenant {args.tenant!r}; tenants: {', '.join(tenants)}"))
        return 2
    with target.gateway() as gateway:
        print(gateway.token(target.credentials(args.tenant)))
    return 0


def cmd_mutants(args: argparse.Namespace) -> int:  # noqa: C901 - one branch per subcommand and format
    from inferbox.mutants.model import load_mutants
    from inferbox.mutants.runner import MutantResult, run_all

    mutants = [m for m in load_mutants() if args.platform in m.targets]  # some need a cluster (Grafana, Kiali)
    nightly_left: list[str] = []
    if args.only:
        wanted = set(args.only)
        mutants = [m for m in mutants if m.name in wanted]
        missing = wanted - {m.name for m in mutants}
        if missing:
            err.print(Text(f"unknown mutant(s) on --platform {args.platform}: {', '.join(sorted(missing))}"))
            return 2
    elif args.action == "run" and not args.nightly:
        nightly_left = [m.name for m in mutants if m.nightly]
        mutants = [m for m in mutants if not m.nightly]
    if args.action == "list":
        if args.output == "json":
            rows = [
                {
                    "name": m.name,
                    "breaks": m.breaks,
                    "kills": list(m.kills),
                    "targets": list(m.targets),
                    "nightly": m.nightly,
                }
                for m in mutants
            ]
            print(json.dumps(rows, indent=2))
            return 0
        table = Table("mutant", "breaks", "killed by")
        for m in mutants:
            table.add_row(_names(m.name), Text(m.breaks), _names("\n".join(k.split("::", 1)[1] for k in m.kills)))
        console.print(table)
        return 0
    if args.output == "json":
        err.print(Text("-o json applies to `mutants list`; `mutants run` writes mutation.json in its report folder"))
        return 2

    def progress(result: MutantResult) -> None:
        verdict = Text("killed", style="green") if result.killed else Text("SURVIVED", style="red")
        console.print(Text.assemble(f"  {result.name}: ", verdict, f" ({result.duration_s}s)"))

    baseline = f"the baseline from {args.baseline_report}" if args.baseline_report else "the baseline"
    console.print(Text(f"running {baseline}, then {len(mutants)} mutants on the {args.platform} target"))
    if nightly_left:
        console.print(
            Text(f"left for the nightly run (--nightly, `make mutants-nightly`): {len(nightly_left)} mutants")
        )
    with console.status("running mutants"):
        run = run_all(
            mutants, Path(args.manifests), args.platform, args.jobs, progress, args.baseline_report, not args.no_share
        )
    if not run.baseline_ok:
        failing = {t: o for t, o in run.baseline.items() if o != "passed"}
        err.print(
            Text.assemble(("baseline failed", "red"), ": the unmutated platform must pass every named test first:")
        )
        for test, outcome in failing.items():
            err.print(Text(f"  {test}: {outcome}"))
        err.print(Text(f"logs: {run.folder / 'baseline'}"))
        return 1
    table = Table(title="mutants", title_justify="left")
    for column in ("mutant", "verdict", "breaks", "platform", "time"):
        table.add_column(column, overflow="fold")
    for result in run.results:
        breaks = Text(result.breaks)
        if not result.killed:
            breaks.append(f"\n{result.problem}", style="red")
        table.add_row(
            _names(result.name),
            Text("killed") if result.killed else Text("SURVIVED", style="red"),
            breaks,
            result.platform,
            f"{result.duration_s}s",
        )
    console.print(table)
    console.print(Text(f"mutants: {run.killed} killed of {len(run.results)}"))
    # The table is wide and long; a CI log often keeps only its tail, so the survivors are named
    # again below it, each with why it survived and where its pytest output is.
    for result in run.results:
        if not result.killed:
            console.print(Text.assemble(("SURVIVED ", "red"), f"{result.name}: {result.problem}"))
            console.print(Text(f"  pytest output: {run.folder / result.name / 'pytest.log'}"))
            for line in _log_tail(run.folder / result.name / "pytest.log"):
                console.print(Text(f"  | {line}"))
    console.print(Text(f"report: {run.folder}"))
    return 0 if run.killed == len(run.results) else 1


def _log_tail(log: Path, lines: int = 12) -> list[str]:
    """The last lines of a survivor's pytest output (its short test summary)."""
    try:
        return log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def cmd_report_diff(args: argparse.Namespace) -> int:
    from inferbox.report.diff import diff_reports
    from inferbox.report.diff_output import Side, as_json, as_markdown, print_table
    from inferbox.report.model import load_report
    from inferbox.report.tolerances import load_tolerances

    olds = [load_report(Path(p)) for p in [args.old, *args.old_rerun]]
    news = [load_report(Path(p)) for p in [args.new, *args.new_rerun]]
    diff = diff_reports(olds, news, load_tolerances(Path(args.tolerances)), subset=args.subset)
    old = Side([args.old, *args.old_rerun], olds[0]["target"], olds[0]["started"])
    new = Side([args.new, *args.new_rerun], news[0]["target"], news[0]["started"])
    if args.format == "json":
        print(as_json(diff, old, new))
    elif args.format == "markdown":
        print(as_markdown(diff, old, new), end="")
    else:
        print_table(console, diff, old, new)
    return 0 if diff.ok else 1


def _platform(p: argparse.ArgumentParser, choices: tuple[str, ...] = PLATFORMS) -> None:
    p.add_argument(
        "--platform",
        choices=choices,
        default="embedded",
        help="the target (default: embedded)",
    )


def _manifests(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--manifests",
        default=str(DEFAULT_MANIFEST_DIR),
        help=f"the platform's manifests folder (default {DEFAULT_MANIFEST_DIR})",
    )


def _conformance_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--conformance-profile",
        default=str(DEFAULT_PROFILE),
        help=f"the conformance profile: what the platform must guarantee (default {DEFAULT_PROFILE})",
    )


def _state_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state-dir",
        default=None,
        help="embedded: where `inferbox up` keeps a running platform's state (default: $INFERBOX_STATE_DIR, "
        "else $XDG_STATE_HOME/inferbox/embedded, else ~/.local/state/inferbox/embedded)",
    )


def _cluster_options(p: argparse.ArgumentParser) -> None:
    kind_cli = _kind_cli()
    if kind_cli is not None:
        kind_cli.add_arguments(p)


def _output(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-o", "--output", choices=["table", "json"], default="table", help=f"{what} as a table or as JSON")


def _sub(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferbox", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"inferbox {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = _sub(
        sub,
        "up",
        "stand the platform up and leave it running",
        "Stands the platform up in the background and prints how to call it. The embedded platform's state "
        "is kept in a per-user folder, so status, token and down find it from any directory.",
    )
    _platform(up)
    _manifests(up)
    _state_dir_option(up)
    up.add_argument(
        "--gateway-port", type=int, default=8080, help="embedded: the gateway's port on 127.0.0.1 (default 8080)"
    )
    up.add_argument("--admin-port", type=int, default=0, help="embedded: Envoy's admin port (default: any free port)")
    up.add_argument(
        "--network",
        choices=["auto", "netns", "loopback"],
        default="auto",
        help="embedded: workloads in network namespaces (needs root) or all on loopback (default auto)",
    )
    up.add_argument("--dry-run", action="store_true", help="kind/existing: print the plan without touching anything")
    _cluster_options(up)
    up.set_defaults(func=cmd_up)

    down = _sub(
        sub, "down", "stop the platform started by `inferbox up`", "Stops the platform and removes what it left."
    )
    _platform(down)
    _manifests(down)
    _state_dir_option(down)
    _cluster_options(down)
    down.set_defaults(func=cmd_down)

    status = _sub(
        sub, "status", "show the running platform's components", "Shows the running platform's components and gateway."
    )
    _platform(status)
    _manifests(status)
    _state_dir_option(status)
    _output(status, "embedded: the components")
    _cluster_options(status)
    status.set_defaults(func=cmd_status)

    token = _sub(
        sub,
        "token",
        "print a token for TENANT from the platform's token endpoint",
        "Prints a valid token of TENANT, issued by the running embedded platform's JWT server.",
    )
    _platform(token, ("embedded",))
    _state_dir_option(token)
    _conformance_profile(token)
    token.add_argument("tenant", help="the tenant the token is for (e.g. tenant-a)")
    token.set_defaults(func=cmd_token)

    mutants = _sub(
        sub,
        "mutants",
        "list the mutants, or run the conformance checks against every one",
        "A mutant is a small break of the platform; `run` checks that the tests it names fail on it "
        "(after a baseline run of the unmutated platform).",
    )
    mutants.add_argument("action", choices=["run", "list"], help="list the mutants, or run them")
    mutants.add_argument("--only", nargs="*", metavar="NAME", help="only these mutants (names from `mutants list`)")
    mutants.add_argument(
        "--jobs", type=int, default=1, help="mutants at once, each worker with a shared platform of its own (default 1)"
    )
    _platform(mutants, ("embedded", "kind"))
    _manifests(mutants)
    mutants.add_argument(
        "--baseline-report",
        type=Path,
        help="take the baseline from this conformance run's report.json (same manifests, profile and target)",
    )
    mutants.add_argument(
        "--no-share", action="store_true", help="every mutant on a platform of its own (no shared, reconfigured one)"
    )
    mutants.add_argument(
        "--nightly",
        action="store_true",
        help="run: also the mutants marked nightly (each takes minutes: chaos experiments under load)",
    )
    mutants.add_argument(
        "-o", "--output", choices=["table", "json"], default="table", help="list: the mutants as a table or as JSON"
    )
    mutants.set_defaults(func=cmd_mutants)

    report = _sub(sub, "report", "work with run reports", "Work with the run reports under reports/.")
    report_sub = report.add_subparsers(dest="report_command", required=True, metavar="COMMAND")
    diff = _sub(
        report_sub,
        "diff",
        "compare two runs (report folders or report.json files)",
        "Lists changed component versions, tests that passed in OLD and do not in NEW (regressions), fixed "
        "tests, and figures that moved beyond their noise. Exits 1 only on a regression.",
    )
    diff.add_argument("old", help="the run before the change (a report folder or its report.json)")
    diff.add_argument("new", help="the run after the change")
    diff.add_argument(
        "--old-rerun",
        action="append",
        default=[],
        metavar="REPORT",
        help="another run of the same platform as OLD (repeatable): the spread between runs is the noise",
    )
    diff.add_argument(
        "--new-rerun", action="append", default=[], metavar="REPORT", help="another run like NEW (repeatable)"
    )
    diff.add_argument(
        "--format", choices=["table", "json", "markdown"], default="table", help="output format (default table)"
    )
    from inferbox.report.tolerances import DEFAULT_TOLERANCES

    diff.add_argument(
        "--tolerances",
        default=str(DEFAULT_TOLERANCES),
        help="per-figure tolerances and which way is worse (default: the one shipped with inferbox)",
    )
    diff.add_argument(
        "--subset", action="store_true", help="NEW deliberately ran a subset: tests only in OLD are not regressions"
    )
    diff.set_defaults(func=cmd_report_diff)

    from inferbox.load.cli import add_parser as add_load_parser

    def load_common(p: argparse.ArgumentParser) -> None:
        _platform(p)
        _manifests(p)
        _conformance_profile(p)
        _cluster_options(p)

    add_load_parser(sub, load_common)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def refuse_inapplicable(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A flag that does not apply to the chosen platform is an error, never silently ignored."""
    platform = getattr(args, "platform", None)
    command = _subparsers(parser).get(args.command)
    if platform is None or command is None:
        return
    applies = {**PLATFORM_OPTIONS, **COMMAND_OPTIONS.get(args.command, {})}
    for action in command._actions:
        platforms = applies.get(action.dest)
        if platforms and platform not in platforms and getattr(args, action.dest, None) != action.default:
            command.error(
                f"{'/'.join(action.option_strings)} does not apply to --platform {platform}; "
                f"use it with --platform {'/'.join(platforms)}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_inapplicable(parser, args)
    try:
        code = args.func(args)
    except InferboxError as exc:
        err.print(Text.assemble(("inferbox:", "red"), f" {exc.problem}"))
        if exc.fix:
            err.print(Text(f"  fix: {exc.fix}"))
        code = 2
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
