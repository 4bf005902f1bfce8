"""Crafting tokens: valid ones signed with the platform's key, and deliberately broken ones.

Expected claims (issuer, audience, tenant claim) come from the conformance profile, never from the
manifests under test, so a manifest that stops checking the audience is caught.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inferbox.contract_types import SigningKey
from inferbox.profile import ConformanceProfile


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def split(token: str) -> tuple[str, str, str]:
    header, payload, signature = token.split(".")
    return header, payload, signature


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = split(token)
    return json.loads(_unb64(header)), json.loads(_unb64(payload))


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class TokenForge:
    """Signs tokens as the platform's issuer would, with any claim or header changed."""

    key: SigningKey
    profile: ConformanceProfile
    subject_prefix: str = "inferbox-suite"

    def claims(self, tenant: str, /, lifetime_s: int = 120, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.profile.auth.issuer,
            "aud": self.profile.auth.audience,
            "sub": f"{self.subject_prefix}-{tenant}",
            self.profile.auth.tenant_claim: tenant,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "jti": str(uuid.uuid4()),
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(
        self,
        claims: dict[str, Any],
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        headers = {"kid": self.key.kid if kid is None else kid, "typ": "JWT", **(header or {})}
        return jwt.encode(claims, key or self.key.key, algorithm="RS256", headers=headers)

    def valid(self, tenant: str, /, **overrides: Any) -> str:
        return self.sign(self.claims(tenant, **overrides))

    # -- broken tokens ---------------------------------------------------------------------
    def foreign_key(self, tenant: str) -> str:
        """Right kid and claims, signed by a key the platform never published."""
        return self.sign(self.claims(tenant), key=rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def unknown_kid(self, tenant: str) -> str:
        """Signed by the platform's key but naming a kid the JWKS does not hold."""
        return self.sign(self.claims(tenant), kid="no-such-key")

    def unsigned(self, tenant: str, alg: str = "none") -> str:
        """``alg: none`` (in any spelling) with an empty signature."""
        header = {"alg": alg, "typ": "JWT", "kid": self.key.kid}
        return f"{b64url_json(header)}.{b64url_json(self.claims(tenant))}."

    def hs256_with_public_key(self, tenant: str) -> str:
        """The algorithm-confusion attack: HMAC-SHA256 keyed with the RSA public key's PEM."""
        public_pem = self.key.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}
        signing_input = f"{b64url_json(header)}.{b64url_json(self.claims(tenant))}"
        digest = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(digest)}"

    def tampered_payload(self, tenant: str, /, **changes: Any) -> str:
        """A valid token whose payload was edited after signing (the signature no longer matches)."""
        header, _, signature = split(self.valid(tenant))
        return f"{header}.{b64url_json(self.claims(tenant, **changes))}.{signature}"
