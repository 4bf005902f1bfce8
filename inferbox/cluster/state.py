"""What inferbox keeps on this machine about a cluster: the JWT signing keys and client
credentials it generated (so the suite can mint tokens), and what it installed.

The same material lives on the cluster as Secrets (``jwt-server-keys`` and ``jwt-server-clients``
for the JWT server, ``inferbox-client-credentials`` for suites run from another machine), so a
re-run converges to the keys already in use instead of replacing them.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferbox.cluster.kube import KubeApi
from inferbox.jwtserver.clients import generate_clients, write_clients, write_credentials
from inferbox.jwtserver.keystore import INDEX, KeyStore

# Names of Secrets, not secrets.
KEYS_SECRET = "jwt-server-keys"  # noqa: S105
CLIENTS_SECRET = "jwt-server-clients"  # noqa: S105
CREDENTIALS_SECRET = "inferbox-client-credentials"  # noqa: S105
JWT_NAMESPACE = "inference-system"
CLIENTS_FILE = "clients.json"
CREDENTIALS_FILE = "credentials.json"


def default_state_root() -> Path:
    return Path(os.environ.get("INFERBOX_STATE_DIR") or Path.cwd() / ".inferbox")


@dataclass(frozen=True)
class ClusterState:
    """``<root>/<target>/<name>/``: private to this user (mode 0700)."""

    root: Path

    @classmethod
    def for_cluster(cls, target: str, name: str, root: Path | None = None) -> ClusterState:
        # Context names can be ARNs or URLs ("arn:aws:eks:...:cluster/x"): one safe folder name.
        return cls((root or default_state_root()) / target / re.sub(r"[^A-Za-z0-9_.-]+", "_", name))

    @property
    def keys_dir(self) -> Path:
        return self.root / "jwt-keys"

    @property
    def clients_file(self) -> Path:
        return self.root / CLIENTS_FILE

    @property
    def credentials_file(self) -> Path:
        return self.root / CREDENTIALS_FILE

    @property
    def install_record(self) -> Path:
        return self.root / "installed.json"

    @property
    def work_dir(self) -> Path:
        """Files the commands read (Helm values): kept so a failed run can be repeated by hand."""
        return self.root / "work"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self.work_dir.mkdir(exist_ok=True)

    def has_jwt_material(self) -> bool:
        return (self.keys_dir / INDEX).exists() and self.clients_file.exists() and self.credentials_file.exists()

    def read_record(self) -> dict[str, Any]:
        if not self.install_record.exists():
            return {}
        data: dict[str, Any] = json.loads(self.install_record.read_text())
        return data

    def write_record(self, record: dict[str, Any]) -> None:
        self.install_record.write_text(json.dumps(record, indent=2, sort_keys=True))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _secret(name: str, files: dict[str, bytes], purpose: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": JWT_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "inference-in-a-box", "app.kubernetes.io/managed-by": "inferbox"},
            "annotations": {"inferbox.io/purpose": purpose},
        },
        "type": "Opaque",
        "data": {key: _b64(value) for key, value in sorted(files.items())},
    }


def jwt_secrets(state: ClusterState) -> list[dict[str, Any]]:
    """The three Secrets, rendered from the material in the state folder."""
    keys = {
        p.name: p.read_bytes() for p in sorted(state.keys_dir.iterdir()) if p.is_file() and not p.name.startswith(".")
    }
    return [
        _secret(KEYS_SECRET, keys, "the JWT server's signing keys (keys.json + <kid>.pem)"),
        _secret(CLIENTS_SECRET, {CLIENTS_FILE: state.clients_file.read_bytes()}, "registered clients (hashed)"),
        _secret(
            CREDENTIALS_SECRET,
            {CREDENTIALS_FILE: state.credentials_file.read_bytes()},
            "per-tenant test client credentials for the conformance suite; readable only by cluster admins",
        ),
    ]


def restore_from_cluster(state: ClusterState, api: KubeApi) -> bool:
    """Copies the material of an earlier install from the cluster's Secrets, if all are there."""
    found = {}
    for name in (KEYS_SECRET, CLIENTS_SECRET, CREDENTIALS_SECRET):
        secret = api.get("v1", "Secret", name, JWT_NAMESPACE)
        if secret is None or not secret.get("data"):
            return False
        found[name] = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    write_files(state.keys_dir, found[KEYS_SECRET])
    write_files(state.root, found[CLIENTS_SECRET])
    write_files(state.root, found[CREDENTIALS_SECRET])
    return True


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"refusing to write secret key {name!r} as a file")
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)


def ensure_jwt_material(state: ClusterState, api: KubeApi | None, tenants: list[str]) -> str:
    """Signing key and client credentials in the state folder: kept, restored, or generated.

    Returns which of the three happened, for the progress line.
    """
    state.create()
    if state.has_jwt_material():
        return "kept"
    if api is not None and restore_from_cluster(state, api):
        return "restored from the cluster"
    KeyStore.initialise(state.keys_dir)
    clients, credentials = generate_clients(tenants)
    write_clients(state.clients_file, clients)
    write_credentials(state.credentials_file, credentials)
    return "generated"
