"""The ``inferbox`` command: help and version, refused flags, tables that survive a pipe, and
`up`, `status`, `token` and `down` on the embedded target from any directory."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from inferbox.cli import build_parser, curl_hint
from inferbox.embedded.lifecycle import default_state_dir
from inferbox.embedded.network import free_port
from inferbox.mutants.model import load_mutants

REPO = Path(__file__).resolve().parents[2]


def _inferbox(
    *args: str, state: Path | None = None, cwd: Path = REPO, env: dict[str, str] | None = None, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, output piped (not a terminal)."""
    environment = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    environment.pop("INFERBOX_STATE_DIR", None)
    if state is not None:
        environment["INFERBOX_STATE_DIR"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "inferbox.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=180,
        check=False,
    )


def test_version() -> None:
    from importlib import metadata

    done = _inferbox("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"inferbox {metadata.version('inferbox')}"


def _walk(parser: argparse.ArgumentParser, path: str = "inferbox") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                assert helps.get(name), f"`{path} {name}` has no summary in `{path} --help`"
                assert child.description, f"`{path} {name} --help` has no description"
                found += _walk(child, f"{path} {name}")
    return found


def test_every_subcommand_and_option_has_help() -> None:
    commands = _walk(build_parser())
    assert {name for name, _ in commands} >= {
        "inferbox up",
        "inferbox down",
        "inferbox status",
        "inferbox token",
        "inferbox mutants",
        "inferbox report diff",
        "inferbox load",
    }
    for name, parser in commands:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction | argparse._VersionAction):
                continue
            assert action.help, f"`{name}`: {'/'.join(action.option_strings) or action.dest} has no help text"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "--platform", "kind", "tenant-a"], "invalid choice: 'kind'"),
        (["up", "--platform", "kind", "--gateway-port", "9090"], "--gateway-port does not apply to --platform kind"),
        (["up", "--dry-run"], "--dry-run does not apply to --platform embedded"),
        (["status", "--kube-context", "staging"], "--kube-context does not apply to --platform embedded"),
        (
            ["down", "--platform", "existing", "--state-dir", "state"],
            "--state-dir does not apply to --platform existing",
        ),
        (["load", "smoke", "--in-cluster"], "--in-cluster does not apply to --platform embedded"),
        (["status", "--platform", "kind", "-o", "json"], "-o/--output does not apply to --platform kind"),
    ],
)
def test_flags_that_do_not_apply_are_refused(args: list[str], message: str) -> None:
    done = _inferbox(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_load_options_name_what_they_are() -> None:
    text = _inferbox("load", "--help", columns=120).stdout
    assert "--conformance-profile" in text
    assert "--profiles-file" in text
    assert re.search(r"--profile\b(?!s)", text) is None, "a bare --profile reads as the load profile"


def test_tables_do_not_cut_names_when_piped() -> None:
    done = _inferbox("mutants", "list", columns=80)
    assert done.returncode == 0
    assert "…" not in done.stdout
    for mutant in load_mutants():
        if "embedded" not in mutant.targets:
            continue
        assert mutant.name in done.stdout
        for test in mutant.kills:
            assert test.split("::", 1)[1] in done.stdout, f"{test} is cut or read as markup"


@pytest.mark.parametrize("platform", ["embedded", "kind"])
def test_mutants_list_as_json(platform: str) -> None:
    done = _inferbox("mutants", "list", "--platform", platform, "-o", "json")
    rows = json.loads(done.stdout)
    expected = [m for m in load_mutants() if platform in m.targets]
    assert [r["name"] for r in rows] == [m.name for m in expected]
    assert rows[0]["kills"] == list(expected[0].kills)


def test_the_curl_hint_keeps_every_argument_on_one_line_at_80_columns() -> None:
    lines = curl_hint("http://127.0.0.1:8080", ".venv/bin/inferbox")
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert '       -H "Authorization: Bearer $TOKEN" \\' in lines
    for line in lines:
        assert line.count("'") % 2 == 0, f"a quote opens and closes on {line!r}"
        assert line.count('"') % 2 == 0, f"a quote opens and closes on {line!r}"


def test_the_state_folder_is_per_user_unless_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("INFERBOX_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "inferbox" / "embedded"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "inferbox" / "embedded"
    monkeypatch.setenv("INFERBOX_STATE_DIR", str(tmp_path / "mine"))
    assert default_state_dir() == tmp_path / "mine"


@pytest.mark.slow
def test_up_status_token_down_from_any_directory(tmp_path: Path) -> None:
    """`up` in one directory; `status`, `token` and `down` from another find it (a per-user state folder)."""
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    port = free_port()
    up = _inferbox("up", "--gateway-port", str(port), cwd=here, env=env, columns=80)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
        state = tmp_path / "xdg" / "inferbox" / "embedded"
        assert f"state: {state}" in up.stdout
        # At 80 columns the hint still holds each quoted argument on one line.
        assert '       -H "Authorization: Bearer $TOKEN" \\' in up.stdout.splitlines()
        assert "       -H 'content-type: application/json' \\" in up.stdout.splitlines()
        again = _inferbox("up", "--gateway-port", str(port), cwd=elsewhere, env=env)
        assert "already running" in again.stdout
        status = _inferbox("status", cwd=elsewhere, env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert "gateway" in status.stdout
        assert "gone" not in status.stdout
        as_json = json.loads(_inferbox("status", "-o", "json", cwd=elsewhere, env=env).stdout)
        assert as_json["gateway_url"] == f"http://127.0.0.1:{port}"
        assert as_json["components"]
        assert all(c["state"] == "running" for c in as_json["components"].values())
        token = _inferbox("token", "tenant-c", cwd=elsewhere, env=env)
        assert token.returncode == 0, token.stderr
        assert jwt.decode(token.stdout.strip(), options={"verify_signature": False})["tenant"] == "tenant-c"
        unknown = _inferbox("token", "tenant-x", cwd=elsewhere, env=env)
        assert unknown.returncode == 2
        assert "unknown tenant" in unknown.stderr
    finally:
        down = _inferbox("down", cwd=elsewhere, env=env)
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert _inferbox("status", cwd=elsewhere, env=env).returncode == 1


@pytest.mark.slow
def test_up_names_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _inferbox("up", "--gateway-port", str(busy.getsockname()[1]), state=tmp_path / "state")
    assert result.returncode == 2
    assert "already in use" in result.stderr
    assert "--gateway-port" in result.stderr


@pytest.mark.slow
def test_pytest_keep_platform_reuses_the_running_platform(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    assert _inferbox("up", "--gateway-port", str(port), state=state).returncode == 0
    try:
        report = tmp_path / "report"
        env = {**os.environ, "INFERBOX_STATE_DIR": str(state)}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-m",
                "conformance",
                "-p",
                "no:cacheprovider",
                "-q",
                "--inferbox-keep-platform",
                "--inferbox-report-dir",
                str(report),
                "suites/serving/test_inference_protocols.py::test_metadata_and_readiness_answer",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stdout[-2000:]
        from inferbox.report.model import load_report

        assert load_report(report)["platform"]["gateway_url"] == f"http://127.0.0.1:{port}"
        assert (report / "logs" / "gateway.log").exists(), "the kept platform's logs are copied into the report"
    finally:
        _inferbox("down", state=state)
