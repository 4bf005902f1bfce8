"""Runs the JWT server: ``python -m inferbox.jwtserver --port 8080`` (settings from JWT_* variables;
the token endpoint's abuse limits are described in limits.py)."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from inferbox.jwtserver.app import IssuerSettings, create_app
from inferbox.jwtserver.clients import ClientRegistry
from inferbox.jwtserver.keystore import KeyStore
from inferbox.jwtserver.limits import LimitSettings


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"jwt-server: environment variable {name} is required")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(prog="jwt-server")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a pod's address; the embedded target passes its own
    args = parser.parse_args()
    try:
        limits = LimitSettings.from_env(os.environ)
    except ValueError as exc:
        sys.exit(f"jwt-server: {exc}")
    if limits.failures_before_backoff is None and os.environ.get("JWT_AUTH_BACKOFF_SECONDS"):
        print(
            "jwt-server: JWT_AUTH_BACKOFF_SECONDS has no effect without JWT_AUTH_FAILURES_BEFORE_BACKOFF",
            file=sys.stderr,
        )
    settings = IssuerSettings(
        issuer=_env("JWT_ISSUER"),
        audience=_env("JWT_AUDIENCE"),
        token_ttl_s=int(_env("JWT_TOKEN_TTL_SECONDS")),
        rotation_grace_s=int(os.environ.get("JWT_ROTATION_GRACE_SECONDS", "900")),
        anonymous_tenant=os.environ.get("JWT_ANONYMOUS_TENANT") or None,
        limits=limits,
    )
    keys = KeyStore(_env("JWT_KEY_DIR"))
    keys.reload()
    app = create_app(settings, keys, ClientRegistry(_env("JWT_CLIENTS_FILE")))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
