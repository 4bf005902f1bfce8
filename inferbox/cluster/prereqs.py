"""Command-line tools the cluster targets need, checked all at once before anything runs."""

from __future__ import annotations

import json
import platform
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from inferbox.cluster.commands import CommandRunner, SubprocessRunner
from inferbox.cluster.kindcluster import KIND_EXTRA_INSTALL, pytest_kind_installed
from inferbox.cluster.versions import Versions
from inferbox.errors import ToolMissingError


@dataclass(frozen=True)
class Finding:
    tool: str
    problem: str
    hint: str
    fatal: bool = True

    def line(self) -> str:
        return f"{self.tool}: {self.problem}\n    install: {self.hint}"


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _os() -> str:
    return platform.system().lower()


def _minor(version: str) -> tuple[int, int]:
    match = re.search(r"v?(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _hints(versions: Versions) -> dict[str, str]:
    kind_version = versions.get("kubernetes", "kind")
    kube = versions.get("kubernetes")
    os_, arch = _os(), _arch()
    return {
        "docker": "Docker Engine (or Docker Desktop) with a running daemon: https://docs.docker.com/engine/install/",
        "kind": f"curl -Lo kind https://kind.sigs.k8s.io/dl/{kind_version}/kind-{os_}-{arch} "
        "&& chmod +x kind && sudo mv kind /usr/local/bin/",
        "kubectl": f"curl -LO https://dl.k8s.io/release/{kube}/bin/{os_}/{arch}/kubectl "
        "&& chmod +x kubectl && sudo mv kubectl /usr/local/bin/",
        "helm": "Helm 3 (3.8 or later, not 4): https://helm.sh/docs/intro/install/ "
        f"e.g. curl -fsSL https://get.helm.sh/helm-v3.18.4-{os_}-{arch}.tar.gz | tar xz",
    }


def _run(runner: CommandRunner, argv: list[str]) -> tuple[int, str]:
    result = runner.run(argv, 30)
    return result.returncode, (result.stdout + result.stderr).strip()


def check_tools(
    target: str,
    versions: Versions,
    runner: CommandRunner | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> list[Finding]:
    """What is missing or unusable for ``target`` (kind or existing); empty means all good."""
    runner = runner or SubprocessRunner()
    find = which
    hints = _hints(versions)
    needed = ["docker", "kind", "kubectl", "helm"] if target == "kind" else ["kubectl"]
    findings = [
        Finding(
            tool,
            f"not found on PATH: pytest-kind will fetch the pinned kind {versions.get('kubernetes', 'kind')} "
            "into the state folder, and it is used only if its sha256 is the pinned one",
            hints[tool],
            fatal=False,
        )
        if tool == "kind"
        else Finding(tool, "not found on PATH", hints[tool])
        for tool in needed
        if find(tool) is None
    ]
    if target == "kind" and not pytest_kind_installed():
        findings.append(
            Finding(
                "pytest-kind-ng",
                "the Python package the Kind cluster's lifecycle runs through is not installed "
                "(inferbox's optional extra 'kind')",
                KIND_EXTRA_INSTALL,
            )
        )
    present = [tool for tool in needed if find(tool) is not None]
    if "docker" in present:
        code, out = _run(runner, ["docker", "info", "--format", "{{.ServerVersion}}"])
        if code != 0:
            findings.append(
                Finding(
                    "docker",
                    f"the daemon does not answer: {out[-200:]}",
                    "start Docker (or add your user to the docker group)",
                )
            )
    if "kind" in present:
        want = versions.get("kubernetes", "kind")
        _, out = _run(runner, ["kind", "version"])
        found = re.search(r"v\d+\.\d+\.\d+", out)
        if not found or found.group(0) != want:
            findings.append(
                Finding(
                    "kind",
                    f"version {found.group(0) if found else out[:80]!r}, but the node image is pinned for kind {want} "
                    "(a node image is supported only by the kind release it shipped with)",
                    hints["kind"] + "   (or set INFERBOX_VERSION_KUBERNETES_KIND and a matching node image)",
                )
            )
    if "kubectl" in present:
        _, out = _run(runner, ["kubectl", "version", "--client", "-o", "json"])
        try:
            client = json.loads(out)["clientVersion"]["gitVersion"]
        except (ValueError, KeyError):
            client = "unknown"
        server = _minor(versions.get("kubernetes"))
        if abs(_minor(client)[1] - server[1]) > 1 or _minor(client)[0] != server[0]:
            findings.append(
                Finding(
                    "kubectl",
                    f"client {client} is more than one minor version away from Kubernetes {versions.get('kubernetes')}",
                    hints["kubectl"],
                    fatal=False,
                )
            )
    if "helm" in present:
        _, out = _run(runner, ["helm", "version", "--template", "{{.Version}}"])
        major, minor = _minor(out)
        if major != 3 or minor < 8:
            findings.append(
                Finding(
                    "helm",
                    f"version {out[:40]!r}: the pinned charts need Helm 3.8+ (OCI) and are not tested with Helm 4",
                    hints["helm"],
                )
            )
    return findings


def require_tools(
    target: str,
    versions: Versions,
    runner: CommandRunner | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> list[Finding]:
    """Raises listing every fatal finding; returns the warnings."""
    findings = check_tools(target, versions, runner, which)
    fatal = [f for f in findings if f.fatal]
    if fatal:
        raise ToolMissingError(
            f"the {target} target needs tools that are missing or unusable:\n  " + "\n  ".join(f.line() for f in fatal),
            "install them (commands above) and run again; `inferbox up --platform kind --dry-run` shows the plan",
        )
    return [f for f in findings if not f.fatal]
