"""Tables of saved benchmark results: on the terminal (``make bench``), and the generated blocks of
README.md and docs/load.md (``make bench-readme``), which a unit test compares with the results."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.results import REPO, RESULTS_DIR, Figure, Result, load
from bench.suite import BENCHMARKS

PASS, FAIL = "✓", "✗"
Results = Sequence[tuple[str, Result | None]]


def value_text(value: float, unit: str) -> str:
    if unit == "req/s":
        return f"{value:,.0f}/s"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "ms":
        return f"{value:.3f} ms" if abs(value) < 10 else f"{value:,.1f} ms"
    return f"{value:g} {unit}".strip()


def target_text(figure: Figure) -> str:
    if figure.op is None or figure.bound is None:
        return ""
    op = {"<=": "≤", ">=": "≥"}[figure.op]
    return f"{op} {value_text(figure.bound, figure.unit)}"


def mark(figure: Figure) -> str:
    passed = figure.passed
    return "" if passed is None else (PASS if passed else FAIL)


def run_text(result: Result) -> str:
    busy = result.machine.get("cpu_busy_share_during_run")
    cpus = result.machine.get("cpus")
    load = result.machine.get("load_average_before", [None])[0]
    commit = result.commit[:10] + (" (uncommitted changes)" if result.dirty else "")
    busy_text = f", CPUs {busy:.0%} busy during the run" if busy is not None else ""
    return f"{result.date[:10]}, commit {commit}, {cpus} CPUs, load average {load} before{busy_text}"


def all_results(directory: Path = RESULTS_DIR) -> list[tuple[str, Result | None]]:
    return [(name, load(name, directory)) for name in BENCHMARKS]


def terminal_table(results: Results) -> str:
    lines = []
    for name, result in results:
        if result is None:
            lines.append(f"{name}: not measured yet (python -m bench {name})")
            continue
        lines.append(f"{name}: {result.title}  [{run_text(result)}]")
        width = max((len(f.label) for f in result.figures), default=0)
        for figure in result.figures:
            note = f"  ({figure.note})" if figure.note else ""
            lines.append(
                f"  {mark(figure) or ' '} {figure.label:<{width}}  {value_text(figure.value, figure.unit):>12}"
                f"  {target_text(figure):<14}{note}"
            )
    return "\n".join(lines)


def markdown_table(results: Results) -> str:
    rows = ["| benchmark | figure | measured | target | |", "|---|---|---|---|---|"]
    runs = []
    for name, result in results:
        if result is None:
            rows.append(f"| `{name}` | not measured yet | | | |")
            continue
        for figure in result.figures:
            measured = value_text(figure.value, figure.unit) + (f" ({figure.note})" if figure.note else "")
            rows.append(f"| `{name}` | {figure.label} | {measured} | {target_text(figure)} | {mark(figure)} |")
        runs.append(f"- `{name}`: {run_text(result)}")
    return "\n".join([*rows, "", "Runs (from `bench/results/<benchmark>.json`):", "", *runs])


def load_details(results: Results) -> str:
    """docs/load.md: the load benchmarks' figures and what is behind them."""
    chosen = [(n, r) for n, r in results if n in ("load_accuracy", "load_ceiling")]
    parts = [markdown_table(chosen)]
    accuracy = dict(chosen).get("load_accuracy")
    if accuracy is not None and {"stall", "fixed"} <= set(accuracy.details):
        stall = accuracy.details["stall"]
        parts += [
            "",
            f"Stall test ({stall['rate']:g}/s, {stall['connections']} connections to begin with, "
            f"{stall['stall_ms']:g} ms freeze every {stall['stall_every']}th request, {stall['seconds']:g} s):",
            "",
            "| | p50 | p90 | p99 |",
            "|---|---|---|---|",
            "| ideal open-loop client (from the endpoint's schedule) | "
            + " | ".join(value_text(stall["truth_ms"][q], "ms") for q in ("p50", "p90", "p99"))
            + " |",
        ]
        for tool in ("inferbox", "wrk"):
            values, errors = stall[tool]["latency_ms"], stall[tool]["error_pct"]
            cells = [f"{value_text(values[q], 'ms')} ({errors[q]:+.1f} %)" for q in ("p50", "p90", "p99")]
            parts.append(f"| {tool} | " + " | ".join(cells) + " |")
        fixed = accuracy.details["fixed"]
        parts += [
            "",
            f"Fixed delay ({fixed['delay_ms']:g} ms endpoint, {fixed['rate']:g}/s, {fixed['rounds']} rounds of "
            f"{fixed['seconds_per_round']:g} s, alternating), measured minus the true delay:",
            "",
            "| | p50 | p90 | p99 |",
            "|---|---|---|---|",
        ]
        for tool in ("inferbox", "wrk"):
            error = fixed[tool]["error_ms"]
            parts.append(f"| {tool} | " + " | ".join(f"{error[q]:+.3f} ms" for q in ("p50", "p90", "p99")) + " |")
    ceiling = dict(chosen).get("load_ceiling")
    if ceiling is not None and "steps" in ceiling.details:
        details = ceiling.details
        parts += [
            "",
            f"Ceiling steps ({details['workers']} Locust workers, {details['step_s']:g} s per rate, "
            f"{details['warmup_s']:g} s warm-up, a second run when the first misses; lateness = sent minus "
            "intended time):",
            "",
            "| requested | sent | on time and answered | lateness p50 | p99 | max | generator CPU per request | "
            "earlier run | |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for step in details["steps"]:
            late = step["lateness_ms"]
            cells = [
                f"{step['rate']:,}/s",
                f"{step['sent'] / step['scheduled']:.1%}",
                f"{step['on_time_and_ok_share']:.1%}",
                *(value_text(late[k], "ms") if k in late else "" for k in ("p50", "p99", "max")),
                value_text(step.get("cpu_us_per_request", 0.0), "µs"),
                ", ".join(f"{x:.1%} on time" for x in step.get("earlier_on_time_shares", [])),
                PASS if step["sustained"] else FAIL,
            ]
            parts.append("| " + " | ".join(cells) + " |")
        noise = details.get("machine_wake_lateness_ms")
        if noise:
            parts += ["", machine_noise_text(noise["before"], noise["after"])]
    return "\n".join(parts)


def machine_noise_text(before: dict[str, float], after: dict[str, float]) -> str:
    below = [share < 0.95 for share in (before["within_1ms"], after["within_1ms"])]
    if all(below):
        verdict = "below 95 % both times: no generator could meet the rule on this machine then, whatever its speed"
    elif any(below):
        verdict = (
            "the machine's own noise changed during the steps: at one reading below 95 %, when no generator "
            "could meet the rule"
        )
    else:
        verdict = "the machine itself allowed the rule at both readings"
    return (
        "A bare timer loop (`bench/waker.py`, 1,000 wake-ups/s, nothing else to do) woke within 1 ms "
        f"{before['within_1ms']:.1%} of the time just before these steps and {after['within_1ms']:.1%} just "
        f"after (lateness p99 {value_text(before['p99'], 'ms')} and {value_text(after['p99'], 'ms')}); {verdict}."
    )


# file -> block name -> generator
BLOCKS: dict[str, dict[str, Callable[[Results], str]]] = {
    "README.md": {"all": markdown_table},
    "docs/load.md": {"load": load_details},
}


def _pattern(block: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- bench-results:{block}:start[^>]*-->\n)(.*?)(<!-- bench-results:{block}:end -->)", re.DOTALL
    )


def current_block(text: str, block: str) -> str | None:
    match = _pattern(block).search(text)
    return match.group(2) if match else None


def expected_blocks(results: Results) -> dict[str, dict[str, str]]:
    return {file: {block: make(results) + "\n" for block, make in blocks.items()} for file, blocks in BLOCKS.items()}


def rewrite(results: Results, repo: Path = REPO) -> list[Path]:
    """Rewrites every generated block from ``results``; returns the files that changed."""
    changed = []
    for file, blocks in expected_blocks(results).items():
        path = repo / file
        text = path.read_text()
        new = text
        for block, body in blocks.items():
            if current_block(new, block) is None:
                raise SystemExit(f"{file} has no block <!-- bench-results:{block}:start --> ... :end -->")
            match = _pattern(block).search(new)
            assert match is not None
            new = new[: match.start(2)] + body + new[match.end(2) :]
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def differences(results: Results, repo: Path = REPO) -> list[str]:
    """Blocks whose text is not what the saved results generate."""
    out = []
    for file, blocks in expected_blocks(results).items():
        text = (repo / file).read_text()
        for block, body in blocks.items():
            if current_block(text, block) != body:
                out.append(f"{file}: block {block}")
    return out
