"""Targets the suites can run against, each a context manager yielding a ``Platform``.

``embedded`` is always available. Cluster targets register themselves here when their module is
importable, so suites and fixtures never import a target directly.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferbox.contract import Platform
from inferbox.errors import InferboxError
from inferbox.profile import ConformanceProfile


@dataclass
class TargetOptions:
    """Everything a target needs to stand up or find a platform."""

    manifests_dir: Path
    profile: ConformanceProfile
    report_dir: Path
    keep: bool = False
    network: str = "auto"
    gateway_port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # target-specific options (kube context, ...)
    progress: Callable[[str], None] = lambda _: None


TargetFactory = Callable[[TargetOptions], AbstractContextManager[Platform]]
TARGETS: dict[str, TargetFactory] = {}


def register(name: str, factory: TargetFactory) -> None:
    TARGETS[name] = factory


@contextlib.contextmanager
def embedded_target(options: TargetOptions) -> Iterator[Platform]:
    from inferbox.embedded.lifecycle import default_state_dir, running_state, start_daemon
    from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
    from inferbox.embedded.reaper import private_state_dir
    from inferbox.embedded.route_status import route_report, route_report_for
    from inferbox.embedded.target import EmbeddedTarget

    if options.keep:
        state_dir = default_state_dir()
        state = running_state(state_dir)
        if state is not None and Path(state["manifests_dir"]) != options.manifests_dir.resolve():
            raise InferboxError(
                f"the running embedded platform uses manifests from {state['manifests_dir']}, "
                f"not {options.manifests_dir.resolve()}",
                "stop it with `inferbox down`, or run without --keep-platform",
            )
        if state is None:
            options.progress("starting a kept embedded platform (stop it with `inferbox down`)")
            state = start_daemon(
                options.manifests_dir,
                state_dir,
                options.gateway_port,
                network=options.network,
                progress=options.progress,
            )
        for line in route_report_for(options.manifests_dir):
            options.progress(line)
        target = EmbeddedTarget(state, options.profile)
        try:
            yield target
        finally:
            target.close()
            logs = Path(state["log_dir"])
            if logs.is_dir():
                shutil.copytree(logs, options.report_dir / "logs", dirs_exist_ok=True)
        return

    # A private platform for this run: secrets in a private temporary folder, logs in the report.
    state_dir = private_state_dir()  # the reaper removes it if this run is killed
    try:
        platform = EmbeddedPlatform(
            EmbeddedOptions(
                options.manifests_dir.resolve(),
                state_dir,
                options.report_dir / "logs",
                options.gateway_port,
                network=options.network,
            )
        )
    except BaseException:
        shutil.rmtree(state_dir, ignore_errors=True)  # a manifest refused: nothing may stay behind
        raise
    try:
        options.progress("starting the embedded platform")
        platform.start()
        for line in route_report(platform.plan):
            options.progress(line)
        target = EmbeddedTarget(platform.state(), options.profile)
        target.live = platform  # type: ignore[attr-defined]  # the control plane, for later extensions
        try:
            yield target
        finally:
            target.close()
    finally:
        platform.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


register("embedded", embedded_target)


def load_optional_targets() -> None:
    """Imports cluster targets that register themselves (absent modules are simply not offered)."""
    with contextlib.suppress(ModuleNotFoundError):
        importlib.import_module("inferbox.kind.target")
