from __future__ import annotations

from pathlib import Path

import pytest

from inferbox.embedded.knobs import Knobs, parse_knobs
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
    assert parse_knobs('{"gateway.jwtClockSkewSeconds": 1}') == Knobs(jwt_clock_skew_s=1)
    assert parse_knobs("") == Knobs()
    with pytest.raises(PlatformError, match="unknown target knob"):
        parse_knobs('{"gateway.bogus": 1}')
    with pytest.raises(PlatformError, match="not valid JSON"):
        parse_knobs("{")


def test_knob_values_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(PlatformError, match=r"mesh\.rogueIssuer must be true or false"):
        parse_knobs('{"mesh.rogueIssuer": "yes"}')
    with pytest.raises(PlatformError, match=r"serving\.canaryWeightOffset must be an integer"):
        parse_knobs('{"serving.canaryWeightOffset": true}')
