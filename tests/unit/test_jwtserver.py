"""The JWT server: persisted keys with staged rotation, client credentials, and its HTTP API."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import jwt
import pytest
from starlette.testclient import TestClient

from inferbox.jwtserver.app import IssuerSettings, create_app
from inferbox.jwtserver.clients import ClientRegistry, generate_clients, write_clients
from inferbox.jwtserver.keystore import KeyStore
from inferbox.jwtserver.limits import MAX_BACKOFF_S, FailureBackoff, IssueBudget, LimitSettings

SETTINGS = IssuerSettings(issuer="issuer-x", audience="aud-x", token_ttl_s=300, rotation_grace_s=900)


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore.initialise(tmp_path / "keys")


@pytest.fixture
def clients(tmp_path: Path) -> tuple[ClientRegistry, dict[str, tuple[str, str]]]:
    registry, creds = generate_clients(["tenant-a", "tenant-c"])
    write_clients(tmp_path / "clients.json", registry)
    return ClientRegistry(tmp_path / "clients.json"), {c.tenant: (c.client_id, c.client_secret) for c in creds}


def test_keys_survive_a_restart(tmp_path: Path, keys: KeyStore) -> None:
    first = keys.active()
    again = KeyStore.initialise(tmp_path / "keys").active()
    assert again.kid == first.kid
    assert again.pem == first.pem


def test_rotation_keeps_the_old_key_published_for_the_grace_period(keys: KeyStore) -> None:
    old = keys.active().kid
    staged = keys.stage()
    assert {k.kid for k in keys.published(grace_s=60)} == {old, staged}
    assert keys.active().kid == old, "a staged key does not sign yet"
    new = keys.rotate(now=1000.0)
    assert new == staged
    assert keys.active().kid == new
    assert {k.kid for k in keys.published(grace_s=60, now=1030.0)} == {old, new}
    assert {k.kid for k in keys.published(grace_s=60, now=1061.0)} == {new}


def test_credentials_are_checked(clients: tuple[ClientRegistry, dict[str, tuple[str, str]]]) -> None:
    registry, creds = clients
    client_id, secret = creds["tenant-a"]
    assert registry.authenticate(client_id, secret) is not None
    assert registry.authenticate(client_id, secret + "x") is None
    assert registry.authenticate("nobody", secret) is None
    assert registry.authenticate(client_id, creds["tenant-c"][1]) is None


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_token_endpoint_issues_verifiable_short_lived_tokens(
    keys: KeyStore, clients: tuple[ClientRegistry, dict[str, tuple[str, str]]]
) -> None:
    registry, creds = clients
    app = TestClient(create_app(SETTINGS, keys, registry))
    response = app.post("/token", data={"grant_type": "client_credentials"}, headers=_basic(*creds["tenant-c"]))
    assert response.status_code == 200
    token = response.json()["access_token"]
    jwks = app.get("/.well-known/jwks.json").json()
    [jwk] = [k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"]]
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience="aud-x", issuer="issuer-x")
    assert claims["tenant"] == "tenant-c"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] <= time.time()


@pytest.mark.parametrize("case", ["none", "wrong", "form-wrong"])
def test_token_endpoint_refuses_unauthenticated_clients(
    keys: KeyStore, clients: tuple[ClientRegistry, dict[str, tuple[str, str]]], case: str
) -> None:
    registry, creds = clients
    app = TestClient(create_app(SETTINGS, keys, registry))
    client_id, _ = creds["tenant-a"]
    data = {"grant_type": "client_credentials"}
    headers = {}
    if case == "wrong":
        headers = _basic(client_id, "nope")
    elif case == "form-wrong":
        data |= {"client_id": client_id, "client_secret": "nope"}
    response = app.post("/token", data=data, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_the_anonymous_development_switch_hands_out_tokens(
    keys: KeyStore, clients: tuple[ClientRegistry, dict[str, tuple[str, str]]]
) -> None:
    registry, _ = clients
    settings = IssuerSettings("issuer-x", "aud-x", 300, 900, anonymous_tenant="tenant-a")
    response = TestClient(create_app(settings, keys, registry)).post("/token", data={})
    assert response.status_code == 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_issue_budget_is_per_client_and_refills() -> None:
    clock = FakeClock()
    budget = IssueBudget(per_minute=6, clock=clock)
    assert [budget.take("a") for _ in range(6)] == [0.0] * 6
    assert budget.take("a") == pytest.approx(10.0), "one token every 60/6 s"
    assert budget.take("b") == 0.0, "another client has its own bucket"
    clock.now += 10.0
    assert budget.take("a") == 0.0
    assert budget.take("a") > 0


def test_failed_authentications_earn_a_growing_backoff_and_a_success_clears_it() -> None:
    clock = FakeClock()
    backoff = FailureBackoff(threshold=3, backoff_s=2.0, clock=clock)
    for _ in range(2):
        backoff.failed("a")
        assert backoff.blocked_for("a") == 0.0
    backoff.failed("a")
    assert backoff.blocked_for("a") == pytest.approx(2.0)
    assert backoff.blocked_for("b") == 0.0, "other ids are not affected"
    clock.now += 2.0
    assert backoff.blocked_for("a") == 0.0
    backoff.failed("a")
    assert backoff.blocked_for("a") == pytest.approx(4.0), "each further failure doubles the wait"
    clock.now += 4.0
    backoff.succeeded("a")
    backoff.failed("a")
    assert backoff.blocked_for("a") == 0.0, "a success clears the count"


def test_a_long_quiet_spell_forgives_failures() -> None:
    clock = FakeClock()
    backoff = FailureBackoff(threshold=2, backoff_s=1.0, clock=clock)
    backoff.failed("a")
    clock.now += MAX_BACKOFF_S + 1
    backoff.failed("a")
    assert backoff.blocked_for("a") == 0.0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, LimitSettings(None, None, 1.0)),
        (
            {
                "JWT_CLIENT_TOKENS_PER_MINUTE": "20",
                "JWT_AUTH_FAILURES_BEFORE_BACKOFF": "5",
                "JWT_AUTH_BACKOFF_SECONDS": "2",
            },
            LimitSettings(20, 5, 2.0),
        ),
    ],
)
def test_limit_settings_come_from_the_environment(env: dict[str, str], expected: LimitSettings) -> None:
    assert LimitSettings.from_env(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"JWT_CLIENT_TOKENS_PER_MINUTE": "many"},
        {"JWT_AUTH_FAILURES_BEFORE_BACKOFF": "0"},
        {"JWT_AUTH_BACKOFF_SECONDS": "-1"},
    ],
)
def test_malformed_limit_settings_are_named(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(env))):
        LimitSettings.from_env(env)


def test_the_token_endpoint_enforces_its_budget_per_client(
    keys: KeyStore, clients: tuple[ClientRegistry, dict[str, tuple[str, str]]]
) -> None:
    registry, creds = clients
    settings = IssuerSettings("issuer-x", "aud-x", 300, 900, limits=LimitSettings(tokens_per_minute=3))
    app = TestClient(create_app(settings, keys, registry))
    form = {"grant_type": "client_credentials"}
    codes = [app.post("/token", data=form, headers=_basic(*creds["tenant-a"])).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = app.post("/token", data=form, headers=_basic(*creds["tenant-a"]))
    assert refused.json()["error"] == "slow_down"
    assert int(refused.headers["retry-after"]) >= 1
    assert "access_token" not in refused.text
    assert app.post("/token", data=form, headers=_basic(*creds["tenant-c"])).status_code == 200


def test_the_token_endpoint_stops_checking_secrets_during_a_backoff(
    keys: KeyStore, clients: tuple[ClientRegistry, dict[str, tuple[str, str]]]
) -> None:
    registry, creds = clients
    limits = LimitSettings(failures_before_backoff=3, backoff_s=60.0)
    app = TestClient(create_app(IssuerSettings("issuer-x", "aud-x", 300, 900, limits=limits), keys, registry))
    client_id, secret = creds["tenant-a"]
    form = {"grant_type": "client_credentials"}
    wrong = [app.post("/token", data=form, headers=_basic(client_id, "guess")).status_code for _ in range(5)]
    assert wrong == [401, 401, 401, 429, 429]
    right = app.post("/token", data=form, headers=_basic(client_id, secret))
    assert right.status_code == 429, "the right secret is not checked during a backoff either"
    assert int(right.headers["retry-after"]) >= 59
    assert app.post("/token", data=form, headers=_basic(*creds["tenant-c"])).status_code == 200


def test_without_settings_there_is_no_limit(
    keys: KeyStore, clients: tuple[ClientRegistry, dict[str, tuple[str, str]]]
) -> None:
    registry, creds = clients
    app = TestClient(create_app(SETTINGS, keys, registry))
    form = {"grant_type": "client_credentials"}
    client_id, secret = creds["tenant-a"]
    assert {app.post("/token", data=form, headers=_basic(client_id, "x")).status_code for _ in range(8)} == {401}
    assert {app.post("/token", data=form, headers=_basic(client_id, secret)).status_code for _ in range(8)} == {200}
