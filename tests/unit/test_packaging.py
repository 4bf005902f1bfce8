"""A wheel of inferbox is enough to run the suites from any directory: it ships the plugin, the
suites (``inferbox_suites``) and the data they read, and installs no top-level package with a
generic name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("inferbox-*.whl")
    return found


def test_the_wheel_holds_only_inferbox_packages_and_the_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"inferbox", "inferbox_suites"}, top
    for data in ("manifests/versions.yaml", "profiles/conformance.yaml", "mutants/security.yaml", "load/profiles.yaml"):
        assert f"inferbox/_data/{data}" in names, f"the wheel lacks {data}"
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[pytest11]\ninferbox = inferbox.pytest_plugin" in entry_points


def test_an_installed_wheel_collects_the_suites_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first on the path; the test's own dependencies come from this environment.
    env = {**os.environ, "PYTHONPATH": str(site)}
    collect = [sys.executable, "-m", "pytest", "--pyargs", "inferbox_suites", "-m", "conformance", "--collect-only"]
    done = subprocess.run(
        [*collect, "-q", "-p", "no:cacheprovider"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "test_jwt_authentication.py::" in done.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import inferbox.data as d; print(d.data_root())"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where == str(site / "inferbox" / "_data"), "the installed copy must read its own data"


def test_suites_import_each_other_relatively() -> None:
    """A suite module reaches its siblings relatively, so it imports the same in a checkout (``suites``)
    and installed (``inferbox_suites``)."""
    absolute = []
    for path in (REPO / "suites").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "suites" and not node.level:
                absolute.append(f"{path.relative_to(REPO)}: from {node.module}")
    assert absolute == []
