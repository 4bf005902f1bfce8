"""The pinned upstream schemas for the tests that need them, or a skip that says how to get them.

Upstream CRDs and chart values are never part of the repository: ``scripts/upstream-schemas``
fetches them into a cache outside it (docs/kind.md). The tests that compare inferbox's objects with
the real pinned APIs need that copy; where it is missing they are skipped with a reason naming the
folder looked in and the commands that fill it. ``INFERBOX_REQUIRE_UPSTREAM_SCHEMAS=1`` turns the
skip into a failure, for a CI job that has fetched them and must not silently lose those checks.
The validator itself is tested without them, against small CRDs of our own (``tests/cluster/schemas``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inferbox.cluster import upstream
from inferbox.cluster.versions import load_versions

REQUIRE_ENV = "INFERBOX_REQUIRE_UPSTREAM_SCHEMAS"
VERSIONS = load_versions(environ={})
# Small CRDs, chart values and a kind config schema written for these tests (not upstream material).
OWN_SCHEMAS_DIR = Path(__file__).with_name("schemas")


def own_schemas() -> upstream.UpstreamData:
    return upstream.read(OWN_SCHEMAS_DIR.resolve())


def pinned_schemas() -> upstream.UpstreamData:
    """The copy for the pins of manifests/versions.yaml; skips (or fails, see above) without it."""
    try:
        return upstream.load(VERSIONS)
    except upstream.UpstreamDataMissing as exc:
        reason = f"{exc.problem}; {exc.fix}"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{reason} ({REQUIRE_ENV} is set)")
        pytest.skip(reason)
