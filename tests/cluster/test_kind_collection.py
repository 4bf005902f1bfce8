"""The conformance suites are target-agnostic: they collect identically on kind and existing, and
no suite reaches into a target's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _collected(*args: str) -> list[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "conformance",
            *args,
            "suites",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return sorted(line for line in result.stdout.splitlines() if "::" in line)


def test_the_same_checks_collect_on_every_target() -> None:
    embedded = _collected("--inferbox-platform", "embedded")
    assert len(embedded) > 20
    assert _collected("--inferbox-platform", "kind") == embedded
    assert _collected("--inferbox-platform", "existing", "--inferbox-kube-context", "staging") == embedded


def test_no_suite_imports_a_target() -> None:
    offenders = []
    for path in (ROOT / "suites").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.startswith(("inferbox.embedded", "inferbox.cluster"))
            ]
    assert offenders == []
