"""The ``embedded`` target: a private platform for one run, or a kept one (``inferbox up``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from inferbox.contract import Platform
from inferbox.embedded.control import remote
from inferbox.embedded.lifecycle import default_state_dir, running_state, start_daemon
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.embedded.reaper import private_state_dir
from inferbox.embedded.route_status import route_report, route_report_for
from inferbox.embedded.target import EmbeddedTarget
from inferbox.errors import InferboxError
from inferbox.targets import TargetOptions


@contextlib.contextmanager
def embedded_target(options: TargetOptions) -> Iterator[Platform]:
    if options.keep:
        state_dir = default_state_dir()
        state = running_state(state_dir)
        if state is not None and Path(state.manifests_dir) != options.manifests_dir.resolve():
            raise InferboxError(
                f"the running embedded platform uses manifests from {state.manifests_dir}, "
                f"not {options.manifests_dir.resolve()}",
                "stop it with `inferbox down`, or run without --inferbox-keep-platform",
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
        kept = EmbeddedTarget(state, options.profile, remote(Path(state.state_dir)))
        try:
            yield kept
        finally:
            kept.close()
            kept.copy_logs(options.report_dir / "logs")
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
        target = EmbeddedTarget(platform.state(), options.profile, platform.control())
        try:
            yield target
        finally:
            target.close()
    finally:
        platform.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
