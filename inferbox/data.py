"""Where inferbox's own files are: the manifests, the conformance profile, the mutants, the load
profiles and the suites.

In a checkout they are the repository's folders. An installed wheel carries copies under
``inferbox/_data`` (and the suites as the package ``inferbox_suites``), so a platform team can run
the suites against an existing cluster from any directory without a checkout.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@cache
def data_root() -> Path:
    """The checkout this package runs from, or the copies shipped in the wheel."""
    checkout = PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "manifests").is_dir():
        return checkout
    return PACKAGE / "_data"


def data_path(*parts: str) -> Path:
    return data_root().joinpath(*parts)


def suites_root() -> Path:
    """The suites: the checkout's ``suites/``, or the installed package ``inferbox_suites``."""
    root = data_root()
    if root != PACKAGE / "_data":
        return root / "suites"
    import importlib.util

    spec = importlib.util.find_spec("inferbox_suites")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else root / "suites"
