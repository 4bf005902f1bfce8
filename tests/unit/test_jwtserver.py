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
