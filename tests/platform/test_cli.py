"""`inferbox up`, `status`, `token` and `down` on the embedded target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from inferbox.embedded.network import free_port

pytestmark = pytest.mark.slow


def _inferbox(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INFERBOX_STATE_DIR": str(state), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "inferbox.cli", *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )


def test_up_status_token_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    up = _inferbox("up", "--gateway-port", str(port), state=state)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
        again = _inferbox("up", "--gateway-port", str(port), state=state)
        assert "already running" in again.stdout
        status = _inferbox("status", state=state)
        assert status.returncode == 0
        assert "gateway" in status.stdout
        assert "gone" not in status.stdout
        token = _inferbox("token", "tenant-c", state=state)
        assert token.returncode == 0, token.stderr
        assert jwt.decode(token.stdout.strip(), options={"verify_signature": False})["tenant"] == "tenant-c"
        unknown = _inferbox("token", "tenant-x", state=state)
        assert unknown.returncode == 2
        assert "unknown tenant" in unknown.stderr
    finally:
        down = _inferbox("down", state=state)
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert _inferbox("status", state=state).returncode == 1


def test_up_names_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _inferbox("up", "--gateway-port", str(busy.getsockname()[1]), state=tmp_path / "state")
    assert result.returncode == 2
    assert "already in use" in result.stderr
    assert "--gateway-port" in result.stderr


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
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 0, done.stdout[-2000:]
        from inferbox.report.model import load_report

        assert load_report(report)["platform"]["gateway_url"] == f"http://127.0.0.1:{port}"
        assert (report / "logs" / "gateway.log").exists(), "the kept platform's logs are copied into the report"
    finally:
        _inferbox("down", state=state)
