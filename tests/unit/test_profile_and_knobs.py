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


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        # a wrong type, at any depth
        ("maxTokenLifetimeSeconds: 900", "maxTokenLifetimeSeconds: 15m", r"authentication\.maxTokenLifetimeSeconds"),
        ("algorithms: [RS256]", "algorithms: RS256", r"authentication\.algorithms must be a list"),
        ("scaleToZero: true", "scaleToZero: 'yes please'", r"serving\.scaleToZero must be true or false"),
        ("budgetSeconds: 10", "budgetSeconds: true", r"serving\.coldStart\.budgetSeconds must be a number"),
        # an unknown section, and a misspelt field inside a known one
        ("  quota:\n", "  quotas:\n    x: 1\n  quota:\n", r"spec\.quotas is not a field"),
        ("maxPodsPerTenant: 8", "maxPodPerTenant: 8", r"spec\.quota\.maxPodPerTenant is not a field"),
        # a promise that cannot be kept by anything
        (
            "maxTokensPerClientPerMinute: 60",
            "maxTokensPerClientPerMinute: 0",
            r"maxTokensPerClientPerMinute must be at least 1",
        ),
        # a key set twice: the second would silently replace the first
        (
            "    audience: inference-gateway\n",
            "    audience: inference-gateway\n    audience: any\n",
            r"line \d+.*'audience' already defined",
        ),
    ],
)
def test_profile_mistakes_are_named(tmp_path: Path, old: str, new: str, named: str) -> None:
    text = DEFAULT_PROFILE.read_text()
    assert old in text
    path = tmp_path / "profile.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ProfileError, match=named) as caught:
        load_profile(path)
    assert str(path) in caught.value.problem
    assert caught.value.fix


def test_the_profile_promises_token_endpoint_limits() -> None:
    promise = load_profile().require_token_endpoint()
    assert promise.max_tokens_per_client_per_minute >= 1
    assert promise.max_failed_authentications_before_backoff >= 1


def test_a_broken_profile_is_a_usage_error_before_any_test_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "profile.yaml"
    path.write_text(DEFAULT_PROFILE.read_text().replace("maxPodsPerTenant: 8", "maxPodsPerTenant: eight"))
    ran = tmp_path / "ran"
    test = tmp_path / "test_never.py"
    test.write_text(f"def test_never():\n    open({str(ran)!r}, 'w').close()\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(test),
            "--inferbox-conformance-profile",
            str(path),
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "spec.quota.maxPodsPerTenant must be a whole number" in done.stderr
    assert not ran.exists(), "a test ran although the profile is broken"


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
