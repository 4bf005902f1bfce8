"""inferbox's pytest options cannot clash with other plugins': each is ``--inferbox-*`` (dest
``inferbox_*``), and pytest starts with stand-ins of widely used plugins that register the very
option strings those plugins register (read from their sources; pytest-profiling's ``--profile``
once stopped pytest with "option dest 'profile' already used")."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import pytest

REPO = Path(__file__).resolve().parents[2]

# Option strings of widely used plugins, as their pytest_addoption registers them.
WIDELY_USED: dict[str, list[str]] = {
    "pytest-profiling": ["--profile", "--profile-svg", "--pstats-dir", "--element-number", "--strip-dirs"],
    "pytest-kind": ["--cluster-name", "--keep-cluster"],
    "pytest-helm-charts": ["--cluster-type", "--kube-config", "--values-file", "--chart-path"],
    "pytest-xdist": ["--numprocesses", "--maxprocesses", "--max-worker-restart", "--dist", "--tx", "--px"],
    "pytest-cov": ["--cov", "--cov-report", "--cov-config", "--no-cov-on-fail", "--no-cov", "--cov-fail-under"],
    "pytest-html": ["--html", "--self-contained-html", "--css"],
    "pytest-metadata": ["--metadata", "--metadata-from-json", "--metadata-from-json-file"],
    "pytest-timeout": ["--timeout", "--timeout-method"],
    "pytest-randomly": ["--randomly-seed", "--randomly-dont-reset-seed", "--randomly-dont-reorganize"],
    "pytest-benchmark": ["--benchmark-min-time", "--benchmark-only", "--benchmark-json", "--benchmark-compare"],
    "pytest-rerunfailures": ["--reruns", "--reruns-delay", "--only-rerun"],
    "pytest-base-url": ["--base-url", "--verify-base-url"],
    "pytest-playwright": ["--browser", "--headed", "--browser-channel", "--slowmo", "--device", "--output"],
    "pytest-django": ["--ds", "--dc", "--reuse-db", "--create-db", "--nomigrations", "--migrations"],
    "pytest-repeat": ["--count", "--repeat-scope"],
    "pytest-testinfra": ["--connection", "--hosts", "--ssh-config", "--ssh-identity-file", "--sudo", "--sudo-user"],
    "pytest-operator": ["--cloud", "--controller", "--model", "--keep-models", "--no-deploy", "--model-config"],
    "pytest-json-report": ["--json-report", "--json-report-file", "--json-report-omit"],
    "pytest-reportlog": ["--report-log"],
}


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


class _Recorder:
    """Stands in for pytest's parser: records what inferbox's plugins register."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], str]] = []
        self.helps: dict[str, str] = {}

    def getgroup(self, *args: Any, **kwargs: Any) -> _Recorder:
        return self

    def addoption(self, *opts: str, **attrs: Any) -> None:
        long = next(o for o in opts if o.startswith("--"))
        self.options.append((opts, attrs.get("dest") or _dest(long)))
        self.helps[long] = str(attrs.get("help") or "")

    def addini(self, *args: Any, **kwargs: Any) -> None:
        return None


def _recorded() -> _Recorder:
    from inferbox.pytest_plugin import core, kind, load

    recorder = _Recorder()
    for module in (core, kind, load):
        module.pytest_addoption(cast(pytest.Parser, recorder))
    return recorder


def _inferbox_options() -> list[tuple[tuple[str, ...], str]]:
    return _recorded().options


def test_every_inferbox_option_has_help() -> None:
    missing = [option for option, text in _recorded().helps.items() if not text.strip()]
    assert not missing, missing


def test_every_inferbox_option_is_prefixed() -> None:
    options = _inferbox_options()
    assert len(options) >= 18
    for strings, dest in options:
        assert all(s.startswith("--inferbox-") for s in strings), strings
        assert dest.startswith("inferbox_"), (strings, dest)


def test_no_option_string_or_dest_of_a_widely_used_plugin_is_taken() -> None:
    theirs = {s for options in WIDELY_USED.values() for s in options}
    their_dests = {_dest(s) for s in theirs}
    for strings, dest in _inferbox_options():
        assert not set(strings) & theirs, strings
        assert dest not in their_dests, dest


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_pytest_starts_beside_those_plugins(tmp_path: Path) -> None:
    lines = ["def pytest_addoption(parser):"]
    # A plugin that is installed registers its options itself; its stand-in would register them twice.
    for plugin, options in ((p, o) for p, o in WIDELY_USED.items() if not _installed(p)):
        group = f"    group = parser.getgroup({plugin!r})"
        lines.append(group)
        lines += [f"    group.addoption({option!r}, action='store_true', help={plugin!r})" for option in options]
    (tmp_path / "widely_used_plugins.py").write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "widely_used_plugins", "--help"],
        cwd=REPO,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--profile " in done.stdout
    assert "--inferbox-conformance-profile" in done.stdout
    assert "--inferbox-platform" in done.stdout
