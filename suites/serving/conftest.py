"""Runs the serverless checks marked ``overlap`` side by side across models (see ``_overlap.py``)."""

from __future__ import annotations

import pytest

from inferbox.contract import Platform
from inferbox.pytest_plugin.core import FOLDER_KEY

from ._overlap import OVERLAP_KEY, SESSION_FIXTURES, Overlap, stage_of


@pytest.fixture(autouse=True)
def _overlapped_checks(request: pytest.FixtureRequest) -> None:
    """At the first overlapped check of the session, plans and starts all of them."""
    config = request.config
    if stage_of(request.node) is None or OVERLAP_KEY in config.stash:
        return
    platform: Platform = request.getfixturevalue("platform")
    overlap = Overlap.plan(request.session.items, platform.capabilities)
    config.stash[OVERLAP_KEY] = overlap
    fixtures = {name: request.getfixturevalue(name) for name in SESSION_FIXTURES}
    overlap.start(fixtures, config.stash.get(FOLDER_KEY, None))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """An overlapped check already ran (or runs) in its model's thread: report how it ended."""
    overlap = pyfuncitem.config.stash.get(OVERLAP_KEY, None)
    if overlap is None or not overlap.has(pyfuncitem):
        return None
    overlap.outcome(pyfuncitem)
    return True
