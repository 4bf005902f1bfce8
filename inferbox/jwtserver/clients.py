"""Per-tenant client credentials: only registered clients get tokens.

``clients.json`` (the ``jwt-server-clients`` Secret on a cluster) stores a SHA-256 of each secret;
secrets are 256-bit random values, so a plain hash is enough and comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from inferbox.contract_types import Credentials


@dataclass(frozen=True)
class Client:
    client_id: str
    tenant: str
    subject: str
    secret_sha256: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_clients(tenants: list[str]) -> tuple[list[Client], list[Credentials]]:
    clients, credentials = [], []
    for tenant in tenants:
        secret = secrets.token_urlsafe(32)
        client_id = f"{tenant}-client"
        clients.append(Client(client_id, tenant, f"{tenant}-service", _digest(secret)))
        credentials.append(Credentials(client_id, secret, tenant))
    return clients, credentials


def write_clients(path: Path, clients: list[Client]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"clients": [c.__dict__ for c in clients]}
    path.write_text(json.dumps(body, indent=2))
    path.chmod(0o600)


def write_credentials(path: Path, credentials: list[Credentials]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({c.tenant: c.__dict__ for c in credentials}, indent=2))
    path.chmod(0o600)


def read_credentials(path: Path) -> dict[str, Credentials]:
    data = json.loads(path.read_text())
    return {tenant: Credentials(**fields) for tenant, fields in data.items()}


class ClientRegistry:
    def __init__(self, path: Path | str) -> None:
        data = json.loads(Path(path).read_text())
        self._clients = {c["client_id"]: Client(**c) for c in data.get("clients", [])}

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        client = self._clients.get(client_id)
        # Hash even for unknown ids so timing does not reveal which ids exist.
        expected = client.secret_sha256 if client else _digest(secrets.token_hex(16))
        if hmac.compare_digest(_digest(secret), expected) and client is not None:
            return client
        return None
