"""Load profiles, SLO files and run plans: parsing, clear errors, and the per-tenant budget rule."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from inferbox.contract import LoadClientPlace
from inferbox.load.plan import build_plan, resolve_targets, tenant_peak_rates
from inferbox.load.profiles import LoadProfileError, MixEntry, get_profile, load_profiles, load_slo
from inferbox.manifests import ManifestSet
from inferbox.profile import ConformanceProfile
from inferbox.topology import read_topology

PLACE = LoadClientPlace((), "http://127.0.0.1:18080", {"tenant-a/sklearn-iris": ("http://198.18.0.3:8080",)})


def _write(path: Path, body: Mapping[str, object]) -> Path:
    path.write_text(yaml.safe_dump(body))
    return path


def _profiles(tmp_path: Path, **profiles: object) -> Path:
    return _write(tmp_path / "profiles.yaml", {"kind": "LoadProfiles", "profiles": profiles})


def _slo(tmp_path: Path, name: str, **spec: object) -> Path:
    directory = tmp_path / "slo"
    directory.mkdir(exist_ok=True)
    body = {"kind": "LoadSLO", "metadata": {"name": name}, "spec": spec}
    return _write(directory / f"{name}.yaml", body).parent


def test_every_shipped_profile_has_a_valid_slo_file() -> None:
    profiles = load_profiles()
    assert {"smoke", "steady", "step", "spike", "soak", "overhead"} <= set(profiles)
    for name in profiles:
        slo = load_slo(name)
        assert {"latency-p50", "latency-p99", "error-ratio", "achieved-ratio", "rate-limited-ratio"} <= set(slo.names())
    assert "gateway-overhead-p50" in load_slo("overhead").names()
    assert get_profile("overhead").overhead
    assert not get_profile("smoke").overhead


def test_shipped_profiles_fit_the_tenant_budgets(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    topology = read_topology(manifests)
    for name, load in load_profiles().items():
        # raises when over a budget (requests/s at the gateway, tokens per minute at the AI Gateway)
        build_plan(load, load_slo(name), topology, profile, PLACE, tmp_path, ai_gateway_url="http://127.0.0.1:18081")


def test_requested_requests_follow_the_stages(tmp_path: Path) -> None:
    path = _profiles(tmp_path, p={"stages": [{"seconds": 10, "rate": 10}, {"seconds": 5, "rate": 40, "users": 4}]})
    profile = get_profile("p", path)
    assert profile.total_s == 15
    assert profile.peak_rate == 40
    assert profile.requested(0, 15) == pytest.approx(300)
    assert profile.requested(8, 12) == pytest.approx(2 * 10 + 2 * 40)
    assert profile.stages[0].users == 10


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"stages": []}, "has no stages"),
        ({"stages": [{"seconds": 10, "rate": -1}]}, "rate must be at least 0"),
        ({"stages": [{"seconds": 10, "rate": 5, "users": 1.5}]}, "users must be an integer"),
        ({"stages": [{"seconds": 10, "rate": 5, "user": 3}]}, "unknown field"),
        ({"stages": [{"seconds": 10, "rate": 5}], "mode": "half-open"}, "use one of open, closed"),
        ({"stages": [{"seconds": 2, "rate": 5}], "warmupSeconds": 5}, "warm-up"),
        ({"stages": [{"seconds": 10, "rate": 5, "users": 1}], "workers": 2}, "fewer users than the 2 workers"),
        ({"stages": [{"seconds": 10, "rate": 5}], "mix": [{"via": "sideways"}]}, "use one of gateway, direct"),
    ],
)
def test_bad_profiles_are_refused_with_the_field_named(
    tmp_path: Path, profile: dict[str, object], message: str
) -> None:
    with pytest.raises(LoadProfileError, match=message):
        get_profile("p", _profiles(tmp_path, p=profile))


def test_an_unknown_profile_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LoadProfileError, match="known profiles: p"):
        get_profile("nope", _profiles(tmp_path, p={"stages": [{"seconds": 10, "rate": 5}]}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"latencyMs": {"p50": 5}, "maxErrorRatio": 0, "minAchievedRatio": 0.95}, "needs at least p50 and p99"),
        ({"latencyMs": {"p50": 5, "p99": 9}, "minAchievedRatio": 0.95}, "maxErrorRatio is required"),
        ({"latencyMs": {"p50": 5, "p99": 9}, "maxErrorRatio": 0, "minAchievedRatio": 0.8}, "below 0.95"),
        ({"latencyMs": {"p50": 5, "p99": 9, "p42": 1}, "maxErrorRatio": 0, "minAchievedRatio": 1}, "unknown field"),
    ],
)
def test_bad_slo_files_are_refused(tmp_path: Path, spec: dict[str, object], message: str) -> None:
    with pytest.raises(LoadProfileError, match=message):
        load_slo("p", _slo(tmp_path, "p", **spec))


def test_slo_file_must_name_its_profile(tmp_path: Path) -> None:
    directory = _slo(tmp_path, "other", latencyMs={"p50": 1, "p99": 2}, maxErrorRatio=0, minAchievedRatio=1)
    (directory / "other.yaml").rename(directory / "p.yaml")
    with pytest.raises(LoadProfileError, match=r"metadata\.name is 'other'"):
        load_slo("p", directory)


def test_default_mix_covers_every_model_and_protocol(manifests: ManifestSet) -> None:
    targets = resolve_targets(get_profile("smoke"), read_topology(manifests))
    assert {(t.tenant, t.model, t.protocol, t.via) for t in targets} == {
        ("tenant-a", "sklearn-iris", "v1", "gateway"),
        ("tenant-a", "sklearn-iris", "v2", "gateway"),
        ("tenant-c", "pytorch-resnet", "v1", "gateway"),
        ("tenant-c", "pytorch-resnet", "v2", "gateway"),
    }
    assert tenant_peak_rates(get_profile("smoke"), targets) == {"tenant-a": 20.0, "tenant-c": 20.0}


def test_a_mix_naming_a_missing_model_is_refused(manifests: ManifestSet, tmp_path: Path) -> None:
    path = _profiles(tmp_path, p={"stages": [{"seconds": 10, "rate": 5}], "mix": [{"tenant": "tenant-b"}]})
    with pytest.raises(LoadProfileError, match="tenant tenant-b"):
        resolve_targets(get_profile("p", path), read_topology(manifests))


def test_a_profile_over_a_tenant_budget_is_refused_unless_429s_are_allowed(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    topology = read_topology(manifests)
    path = _profiles(tmp_path, p={"stages": [{"seconds": 10, "rate": 190, "users": 10}]})  # 95/s per tenant
    spec = {"latencyMs": {"p50": 5, "p99": 9}, "maxErrorRatio": 0, "minAchievedRatio": 0.95}
    with pytest.raises(LoadProfileError, match=r"sends tenant-a up to 95 requests/s .* budget of 100/s"):
        build_plan(
            get_profile("p", path), load_slo("p", _slo(tmp_path, "p", **spec)), topology, profile, PLACE, tmp_path
        )
    allowed = load_slo("p", _slo(tmp_path, "p", **spec, maxRateLimitedRatio=0.2))
    build_plan(get_profile("p", path), allowed, topology, profile, PLACE, tmp_path)


def test_poisson_arrivals_need_more_headroom(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    topology = read_topology(manifests)
    spec = {"latencyMs": {"p50": 5, "p99": 9}, "maxErrorRatio": 0, "minAchievedRatio": 0.95}
    slo = load_slo("p", _slo(tmp_path, "p", **spec))
    constant = _profiles(tmp_path, p={"stages": [{"seconds": 10, "rate": 160}]})
    build_plan(get_profile("p", constant), slo, topology, profile, PLACE, tmp_path)  # 80/s each: fine
    poisson = _profiles(tmp_path, p={"stages": [{"seconds": 10, "rate": 160}], "arrival": "poisson"})
    with pytest.raises(LoadProfileError, match="Poisson arrivals at 80/s"):
        build_plan(get_profile("p", poisson), slo, topology, profile, PLACE, tmp_path)


def test_plan_targets_carry_known_bodies_answers_and_hosts(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    overhead = get_profile("overhead")
    plan = build_plan(overhead, load_slo("overhead"), read_topology(manifests), profile, PLACE, tmp_path)
    by_via = {t["via"]: t for t in plan["targets"]}
    assert by_via["direct"]["url"] == "http://198.18.0.3:8080/v1/models/sklearn-iris:predict"
    assert not by_via["direct"]["auth"]
    assert by_via["gateway"]["url"] == "http://127.0.0.1:18080/v1/models/sklearn-iris:predict"
    assert by_via["gateway"]["host"] == "sklearn-iris.tenant-a.inference.example"
    assert by_via["gateway"]["auth"]
    assert by_via["gateway"]["expect"] == [1, 1]
    assert plan["token"]["host"] == profile.token_host
    assert "client_secret" not in str(plan)


def test_direct_paths_need_a_place_that_reaches_replicas(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    with pytest.raises(LoadProfileError, match="reaches no replica"):
        build_plan(
            get_profile("overhead"),
            load_slo("overhead"),
            read_topology(manifests),
            profile,
            LoadClientPlace((), "http://127.0.0.1:1"),
            tmp_path,
        )


def test_mix_weights_split_evenly_over_what_an_entry_covers(manifests: ManifestSet, tmp_path: Path) -> None:
    path = _profiles(
        tmp_path,
        p={"stages": [{"seconds": 10, "rate": 5}], "mix": [{"tenant": "tenant-a", "weight": 3}, {"weight": 1}]},
    )
    targets = {
        (t.tenant, t.protocol): t.weight for t in resolve_targets(get_profile("p", path), read_topology(manifests))
    }
    assert targets[("tenant-a", "v1")] == pytest.approx(1.5 + 0.25)
    assert targets[("tenant-c", "v2")] == pytest.approx(0.25)
    assert MixEntry().via == "gateway"


def test_direct_paths_through_a_mesh_sidecar_carry_the_identity_and_a_token(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    place = LoadClientPlace(
        ("ip", "netns", "exec", "probe"),
        "http://198.18.0.9:80",
        {"tenant-a/sklearn-iris": ("https://198.18.0.3:8080",)},
        ("/m/probe.pem", "/m/probe-key.pem", "/m/bundle.pem"),
    )
    plan = build_plan(get_profile("overhead"), load_slo("overhead"), read_topology(manifests), profile, place, tmp_path)
    direct = next(t for t in plan["targets"] if t["via"] == "direct")
    assert direct["url"].startswith("https://198.18.0.3:8080/")
    assert direct["auth"], "the sidecar checks tokens too"
    assert plan["tls"] == {"cert": "/m/probe.pem", "key": "/m/probe-key.pem", "ca": "/m/bundle.pem"}
