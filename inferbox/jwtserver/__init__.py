"""The platform's JWT server: client-credentials token endpoint and JWKS, with persisted, rotating keys."""
