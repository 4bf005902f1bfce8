"""RS256 signing keys kept in a directory, so a restart does not invalidate issued tokens.

Layout (also the layout of the ``jwt-server-keys`` Secret on a cluster):
``keys.json`` names the active key id and the retired ones with their retirement time;
``<kid>.pem`` holds each private key. A rotation can be staged: the next key is published in the
JWKS before it signs anything, so gateways that cache the JWKS learn it first. Activating it makes
it the signing key and retires the previous one, which stays published for a grace period so tokens
signed just before the rotation stay valid.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inferbox.contract_types import SigningKey

INDEX = "keys.json"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_kid() -> str:
    return f"ib-{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}"


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_jwk(key: rsa.RSAPublicKey, kid: str) -> dict[str, str]:
    numbers = key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }


def _write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


class KeyStore:
    """Reads and writes the key directory; re-reads it when the index changes on disk."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._loaded_stamp: tuple[float, int] | None = None
        self._index: dict[str, Any] = {}
        self._keys: dict[str, rsa.RSAPrivateKey] = {}

    # -- writing (the installer, `inferbox up`, rotation) ------------------------------------
    @classmethod
    def initialise(cls, directory: Path | str) -> KeyStore:
        """Creates the directory with one active key unless it already holds keys."""
        store = cls(directory)
        store.directory.mkdir(parents=True, exist_ok=True)
        if not (store.directory / INDEX).exists():
            kid = new_kid()
            _write_atomic(store.directory / f"{kid}.pem", private_pem(generate_private_key()))
            _write_atomic(store.directory / INDEX, json.dumps({"active": kid, "retired": {}}).encode())
        return store

    def _write_index(self, index: dict[str, Any]) -> None:
        _write_atomic(self.directory / INDEX, json.dumps(index).encode())
        self.reload(force=True)

    def stage(self) -> str:
        """Publishes a new key that does not sign yet; returns its kid."""
        self.reload(force=True)
        if self._index.get("next"):
            return str(self._index["next"])
        kid = new_kid()
        _write_atomic(self.directory / f"{kid}.pem", private_pem(generate_private_key()))
        self._write_index({**self._index, "next": kid})
        return kid

    def rotate(self, now: float | None = None) -> str:
        """Makes the staged (or a fresh) key the signing key and retires the previous one."""
        kid = self.stage()
        now = time.time() if now is None else now
        retired = dict(self._index.get("retired", {}))
        retired[self._index["active"]] = now
        self._write_index({"active": kid, "next": None, "retired": retired})
        return kid

    def withdraw(self, kid: str) -> None:
        """Ends a retired key's grace period now: it is no longer published (it cannot be the active key)."""
        self.reload(force=True)
        if kid == self._index["active"]:
            raise ValueError(f"key {kid} signs tokens now; activate another key before withdrawing it")
        retired = {k: at for k, at in self._index.get("retired", {}).items() if k != kid}
        self._write_index({**self._index, "retired": retired})

    # -- reading (the server, token crafting in tests) ---------------------------------------
    def reload(self, force: bool = False) -> None:
        index_path = self.directory / INDEX
        try:
            stat = index_path.stat()
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"no key index at {index_path}; create keys with `inferbox up` or the installer"
            ) from exc
        stamp = (stat.st_mtime, stat.st_size)
        if not force and stamp == self._loaded_stamp:
            return
        index = json.loads(index_path.read_text())
        keys: dict[str, rsa.RSAPrivateKey] = {}
        staged = [index["next"]] if index.get("next") else []
        for kid in [index["active"], *staged, *index.get("retired", {})]:
            loaded = serialization.load_pem_private_key((self.directory / f"{kid}.pem").read_bytes(), None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"key {kid} is not an RSA key")
            keys[kid] = loaded
        self._index, self._keys, self._loaded_stamp = index, keys, stamp

    def active(self) -> SigningKey:
        self.reload()
        kid = self._index["active"]
        return SigningKey(kid, self._keys[kid])

    def published(self, grace_s: float, now: float | None = None) -> list[SigningKey]:
        """The active key, the staged key, and every retired key still inside its grace period."""
        self.reload()
        now = time.time() if now is None else now
        keys = [self.active()]
        if self._index.get("next"):
            keys.append(SigningKey(self._index["next"], self._keys[self._index["next"]]))
        for kid, retired_at in self._index.get("retired", {}).items():
            if now - float(retired_at) < grace_s:
                keys.append(SigningKey(kid, self._keys[kid]))
        return keys

    def jwks(self, grace_s: float, now: float | None = None) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(k.key.public_key(), k.kid) for k in self.published(grace_s, now)]}
