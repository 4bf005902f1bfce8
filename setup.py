"""Packaging beyond what pyproject.toml can say: the suites ship as the package ``inferbox_suites``,
and the wheel carries inferbox's data folders (manifests, profiles, mutants, load profiles) under
``inferbox/_data``, so an installed inferbox runs the suites from any directory without a checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA_FOLDERS = ("manifests", "profiles", "mutants", "load")


class BuildWithData(build_py):
    """Copies the data folders into the built package (wheels; an editable install reads the checkout)."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "inferbox" / "_data"
        for name in DATA_FOLDERS:
            shutil.copytree(
                HERE / name, target / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )


suites = ["inferbox_suites"] + [f"inferbox_suites.{p}" for p in find_packages(where="suites")]
setup(
    packages=find_packages(include=["inferbox", "inferbox.*"]) + suites,
    package_dir={"inferbox_suites": "suites"},
    package_data={"inferbox_suites": ["**/*.json", "**/*.yaml"]},
    cmdclass={"build_py": BuildWithData},
)
