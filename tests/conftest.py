"""Fixtures for the suite's own tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inferbox.manifests import DEFAULT_MANIFEST_DIR, ManifestSet, load_manifests
from inferbox.profile import ConformanceProfile, load_profile


@pytest.fixture(scope="session")
def manifests() -> ManifestSet:
    return load_manifests(DEFAULT_MANIFEST_DIR)


@pytest.fixture(scope="session")
def profile() -> ConformanceProfile:
    return load_profile()


@pytest.fixture
def manifest_copy(tmp_path: Path) -> Path:
    """A writable copy of manifests/ for tests that break it."""
    target = tmp_path / "manifests"
    shutil.copytree(DEFAULT_MANIFEST_DIR, target)
    return target
