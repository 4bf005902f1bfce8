"""Crafted tokens are broken in exactly the way their name says, and only that way."""

from __future__ import annotations

import base64
import hashlib
import hmac

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from inferbox.contract import SigningKey
from inferbox.jwtserver.keystore import generate_private_key
from inferbox.profile import ConformanceProfile
from inferbox.tokens import TokenForge, decode_unverified, split


@pytest.fixture(scope="module")
def forge(profile: ConformanceProfile) -> TokenForge:
    return TokenForge(SigningKey("kid-1", generate_private_key()), profile)


def _verify(forge: TokenForge, token: str) -> dict[str, object]:
    public = forge.key.key.public_key()
    return jwt.decode(
        token, public, algorithms=["RS256"], audience=forge.profile.auth.audience, issuer=forge.profile.auth.issuer
    )


def test_a_valid_token_carries_the_profiles_claims(forge: TokenForge) -> None:
    claims = _verify(forge, forge.valid("tenant-a"))
    assert claims["tenant"] == "tenant-a"
    assert claims["iss"] == forge.profile.auth.issuer


def test_overrides_replace_or_remove_claims(forge: TokenForge) -> None:
    _, claims = decode_unverified(forge.valid("tenant-a", tenant=None, aud="other"))
    assert "tenant" not in claims
    assert claims["aud"] == "other"


def test_broken_signatures_fail_verification(forge: TokenForge) -> None:
    for token in (forge.foreign_key("tenant-a"), forge.tampered_payload("tenant-a", sub="x")):
        with pytest.raises(jwt.InvalidSignatureError):
            _verify(forge, token)


def test_unsigned_tokens_have_no_signature(forge: TokenForge) -> None:
    token = forge.unsigned("tenant-a", "nOnE")
    header, _ = decode_unverified(token)
    assert header["alg"] == "nOnE"
    assert split(token)[2] == ""


def test_algorithm_confusion_token_is_an_hmac_over_the_public_key(forge: TokenForge) -> None:
    token = forge.hs256_with_public_key("tenant-a")
    head, body, signature = split(token)
    pem = forge.key.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


def test_unknown_kid_is_otherwise_valid(forge: TokenForge) -> None:
    token = forge.unknown_kid("tenant-a")
    assert jwt.get_unverified_header(token)["kid"] == "no-such-key"
    assert _verify(forge, token)["tenant"] == "tenant-a"
