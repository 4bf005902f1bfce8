"""Targets the suites can run against, each a factory of a context manager yielding a ``Platform``.

Targets are found through the ``inferbox.targets`` entry points (see pyproject.toml), so suites,
fixtures and this module never import a target: an installation without the cluster targets' module
simply does not offer them, and another package can add a target of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from inferbox.contract import Platform
from inferbox.errors import InferboxError
from inferbox.profile import ConformanceProfile

ENTRY_POINT_GROUP = "inferbox.targets"


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


@cache
def target_names() -> tuple[str, ...]:
    """The targets this installation offers."""
    return tuple(sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)))


def target_factory(name: str) -> TargetFactory:
    """The factory of target ``name``; an InferboxError names the available ones."""
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise InferboxError(
            f"--platform {name} is not available in this installation",
            f"available: {', '.join(target_names()) or 'none (reinstall inferbox)'}",
        )
    try:
        loaded = found[0].load()
    except ModuleNotFoundError as exc:
        raise InferboxError(
            f"--platform {name} cannot be loaded: {exc}", "install inferbox with its dependencies (make setup)"
        ) from exc
    return cast(TargetFactory, loaded)
