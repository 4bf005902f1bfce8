"""Envoy Gateway's own configuration (the EnvoyGateway resource the installer gives the controller),
shared by the Kind installer, which writes it into the Helm values, and the embedded target, which
behaves as a controller with this configuration would."""

from __future__ import annotations

# EnvoyGateway.extensionApis: EnvoyPatchPolicy and Backend resources are translated (Envoy Gateway
# ignores them otherwise, marking an EnvoyPatchPolicy Accepted=False, reason Disabled).
EXTENSION_APIS: dict[str, bool] = {"enableEnvoyPatchPolicy": True, "enableBackend": True}


def envoy_patch_policy_enabled() -> bool:
    return EXTENSION_APIS["enableEnvoyPatchPolicy"]
