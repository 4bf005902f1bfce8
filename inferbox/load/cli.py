"""``inferbox load NAME``: a load profile against a platform, for nightly runs.

Stands up (or reuses, with --keep-platform) the chosen target like the pytest plugin does, runs
the profile, prints the verdicts and the report folder, and exits 1 when an SLO is breached.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from inferbox.load.kind_job import in_cluster_workers
from inferbox.load.profiles import DEFAULT_PROFILES, DEFAULT_SLO_DIR, get_profile, load_profiles, load_slo
from inferbox.load.runner import LoadResult, run_profile
from inferbox.profile import load_profile
from inferbox.report.console import make_console
from inferbox.report.model import REPORTS_ROOT, new_run_folder, point_latest
from inferbox.targets import TargetOptions, target_factory

console = make_console()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: object) -> None:
    load = sub.add_parser(
        "load",
        help="run a load profile and check its SLOs (exit 1 on a breach)",
        description="Stands up (or reuses) the platform, runs load profile NAME with Locust and checks its SLOs.",
    )
    if callable(common):
        common(load)
    load.add_argument("name", nargs="?", help="load profile (see --list)")
    load.add_argument("--list", action="store_true", help="list the load profiles")
    load.add_argument("--workers", type=int, default=None, help="Locust workers beside a master (default: profile's)")
    load.add_argument("--report-dir", default=None, help="report folder (default reports/<UTC time>-<target>)")
    load.add_argument(
        "--keep-platform", action="store_true", help="reuse a running platform (inferbox up), or leave the one started"
    )
    load.add_argument(
        "--network",
        choices=["auto", "netns", "loopback"],
        default="auto",
        help="embedded: workloads in network namespaces (needs root) or all on loopback (default auto)",
    )
    load.add_argument("--profiles-file", default=str(DEFAULT_PROFILES), help="the load profiles file")
    load.add_argument("--slo-dir", default=str(DEFAULT_SLO_DIR), help="folder of <profile>.yaml SLO files")
    load.add_argument(
        "--in-cluster",
        action="store_true",
        help="kind/existing: run the Locust workers inside the cluster as a Job (needs --workers N)",
    )
    load.add_argument(
        "--master-host",
        default=None,
        help="kind/existing with --in-cluster: this machine's address as pods reach it (kind: found on the "
        "kind Docker network)",
    )
    load.set_defaults(func=cmd_load)


def _list(path: Path) -> int:
    table = Table("profile", "mode", "seconds", "peak req/s", "description")
    for name, profile in sorted(load_profiles(path).items()):
        table.add_row(name, profile.mode, f"{profile.total_s:g}", f"{profile.peak_rate:g}", profile.description)
    console.print(table)
    return 0


def _print(result: LoadResult) -> None:
    summary = result.summary
    table = Table(title=f"load profile {summary['profile']} on {summary['target']}", title_justify="left")
    for column in ("SLO", "verdict", "value", "bound"):
        table.add_column(column)
    for verdict in summary["slos"]:
        value = "no data" if verdict["value"] is None else f"{verdict['value']:g} {verdict['unit']}"
        table.add_row(
            verdict["name"],
            "passed" if verdict["passed"] else "[red]FAILED[/red]",
            value,
            f"{verdict['op']} {verdict['bound']:g}",
        )
    console.print(table)
    latency = summary["latency_ms"]
    console.print(
        f"requested {summary['requested_rate']} req/s, achieved {summary['achieved_rate']} req/s; latency "
        + ", ".join(f"{k} {latency[k]} ms" for k in ("p50", "p90", "p99", "p99.9", "max") if k in latency)
        + f"; errors {summary['requests']['errors']}, 429s {summary['requests']['rate_limited']}"
    )
    if "streams" in summary:
        ttft, rate = summary["ttft_ms"], summary["stream_tokens_per_s"]
        console.print(
            "streams: time to first token "
            + ", ".join(f"{k} {ttft[k]} ms" for k in ("p50", "p90", "p99") if k in ttft)
            + f"; {summary['tokens_per_s'] or 'no'} tokens/s in all; per stream "
            + ", ".join(f"{k} {rate[k]} tokens/s" for k in ("p50", "p10") if k in rate)
        )
    console.print(f"report: {result.folder / 'load.html'}")


def cmd_load(args: argparse.Namespace) -> int:
    profiles = Path(args.profiles_file)
    if args.list or not args.name:
        return _list(profiles)
    profile = get_profile(args.name, profiles)
    slo = load_slo(args.name, Path(args.slo_dir))
    factory = target_factory(args.platform)
    folder = Path(args.report_dir) if args.report_dir else new_run_folder(args.platform, REPORTS_ROOT)
    folder.mkdir(parents=True, exist_ok=True)
    if args.in_cluster and (args.platform == "embedded" or not args.workers):
        console.print(
            "[red]--in-cluster runs Locust workers as a Job: use it with --platform kind/existing and --workers N[/red]"
        )
        return 2
    options = TargetOptions(
        manifests_dir=Path(args.manifests),
        profile=load_profile(args.conformance_profile),
        report_dir=folder,
        keep=args.keep_platform,
        network=args.network,
        extra={k: v for k, v in vars(args).items() if k.startswith("kube") or k in {"versions", "deploy"}},
        progress=lambda message: console.print(f"inferbox: {message}"),
    )
    with factory(options) as platform:
        launcher = in_cluster_workers(platform, args.master_host) if args.in_cluster else None
        result = run_profile(
            platform,
            profile,
            slo,
            folder / "load" / profile.name,
            args.workers,
            progress=options.progress,
            launcher=launcher,
        )
    if folder.parent.resolve() == REPORTS_ROOT.resolve():
        point_latest(folder)
    _print(result)
    return 0 if result.passed else 1
