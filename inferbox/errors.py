"""Errors users see: each names the problem and the fix."""

from __future__ import annotations


class InferboxError(Exception):
    """An error with a problem statement and a suggested fix, printed without a traceback by the CLI."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  fix: {fix}" if fix else problem)


class ManifestError(InferboxError):
    """A manifest file that cannot be read, or that uses a field the target does not support."""


class ProfileError(InferboxError):
    """A conformance profile that cannot be read."""


class PlatformError(InferboxError):
    """The platform could not be started, reached or stopped."""


class ToolMissingError(InferboxError):
    """A command-line tool the chosen target needs is not installed."""
