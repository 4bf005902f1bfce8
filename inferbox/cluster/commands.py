"""Running the command-line tools the installer drives (kind, helm, docker), with a deadline.

Each command runs in its own process group, so a timeout stops the tool and anything it started
(docker build steps, helm's plugins) by that group's id, never by name.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inferbox.errors import InferboxError


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class CommandFailed(InferboxError):
    """A tool exited non-zero or ran past its deadline."""

    def __init__(self, argv: Sequence[str], detail: str, fix: str = "") -> None:
        super().__init__(f"`{shell_line(argv)}` failed: {detail}", fix)
        self.argv = list(argv)
        self.detail = detail


class CommandRunner(Protocol):
    def run(
        self, argv: Sequence[str], timeout_s: float, stdin: str | None = None, cwd: Path | None = None
    ) -> CommandResult: ...


def shell_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class SubprocessRunner:
    def run(
        self, argv: Sequence[str], timeout_s: float, stdin: str | None = None, cwd: Path | None = None
    ) -> CommandResult:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandFailed(
                argv, f"{argv[0]} is not installed", "see `inferbox up --dry-run` for prerequisites"
            ) from exc
        try:
            out, err = proc.communicate(stdin, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            out, err = proc.communicate()
            raise CommandFailed(
                argv,
                f"still running after {timeout_s:.0f}s (stopped); last output:\n{tail(err or out)}",
                "raise the step's timeout with --kube-timeout NAME=SECONDS",
            ) from None
        return CommandResult(proc.returncode, out, err)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_checked(
    runner: CommandRunner, argv: Sequence[str], timeout_s: float, stdin: str | None = None, cwd: Path | None = None
) -> CommandResult:
    result = runner.run(argv, timeout_s, stdin=stdin, cwd=cwd)
    if result.returncode != 0:
        raise CommandFailed(argv, f"exit code {result.returncode}:\n{tail(result.stderr or result.stdout)}")
    return result
