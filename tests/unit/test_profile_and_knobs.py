from __future__ import annotations

from pathlib import Path

import pytest

from inferbox.embedded.knobs import read_knobs
from inferbox.errors import PlatformError, ProfileError
from inferbox.profile import DEFAULT_PROFILE, load_profile


def test_the_profile_promises_the_host_scheme() -> None:
    profile = load_profile()
    assert profile.model_host("sklearn-iris", "tenant-a") == "sklearn-iris.tenant-a.inference.example"


def test_a_profile_missing_a_promise_names_it(tmp_path: Path) -> None:
    text = DEFAULT_PROFILE.read_text().replace("    audience: inference-gateway\n", "")
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=r"authentication\.audience"):
        load_profile(path)


def test_a_profile_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text("spec: [")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(path)


def test_unknown_knobs_are_refused() -> None:
    assert read_knobs('{"gateway.jwtClockSkewSeconds": 1}') == {"gateway.jwtClockSkewSeconds": 1}
    with pytest.raises(PlatformError, match="unknown target knob"):
        read_knobs('{"gateway.bogus": 1}')
    with pytest.raises(PlatformError, match="not valid JSON"):
        read_knobs("{")
