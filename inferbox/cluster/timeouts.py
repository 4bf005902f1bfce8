"""Named, overridable timeouts for every wait and long command of the installer.

Each wait names the timeout it uses, so a slow machine raises exactly the one it needs:
``--kube-timeout inference-service-ready=1800`` or ``INFERBOX_TIMEOUT_INFERENCE_SERVICE_READY=1800``
(the command-line option wins over the environment).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from inferbox.errors import InferboxError

ENV_PREFIX = "INFERBOX_TIMEOUT_"

# Seconds. Why each default: image pulls on a fresh Kind node dominate, so everything that starts
# pods gets minutes; API-only conditions (CRDs, routes) settle in seconds once their controller runs.
DEFAULTS: dict[str, float] = {
    "cluster-create": 600,  # `kind create cluster`: pulls the node image the first time
    "nodes-ready": 300,
    "image-build": 1800,  # `docker build` of our images, cold pip cache
    "image-load": 600,  # `kind load docker-image` into every node
    "download": 120,  # fetching one release YAML
    "helm": 900,  # one `helm upgrade --install`, including its hook Jobs
    "crds-established": 180,
    "deployment-available": 600,
    "workload-ready": 600,  # StatefulSets and DaemonSets
    "webhook-answering": 300,
    "certificate-ready": 300,
    "gateway-programmed": 300,
    "route-accepted": 180,
    "policy-accepted": 180,
    "inference-service-ready": 1200,  # model download (sklearn) or image start, plus Knative rollout
    "port-forward": 30,
}


@dataclass(frozen=True)
class Timeouts:
    values: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULTS))

    def __getitem__(self, name: str) -> float:
        if name not in self.values:
            raise KeyError(f"unknown timeout {name!r}; known: {', '.join(sorted(self.values))}")
        return self.values[name]

    @staticmethod
    def env_name(name: str) -> str:
        return ENV_PREFIX + name.replace("-", "_").upper()


def _seconds(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InferboxError(f"{where}: {text!r} is not a number of seconds", "write it as e.g. 600") from None
    if value <= 0:
        raise InferboxError(f"{where}: a timeout must be positive, got {text}", "use a number of seconds above 0")
    return value


def load_timeouts(options: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> Timeouts:
    """Defaults, then ``INFERBOX_TIMEOUT_*`` variables, then ``NAME=SECONDS`` options."""
    env = os.environ if environ is None else environ
    values = dict(DEFAULTS)
    known_env = {Timeouts.env_name(n): n for n in DEFAULTS}
    for key, text in env.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX:
            if key not in known_env:
                raise InferboxError(
                    f"environment variable {key} names no timeout",
                    f"known: {', '.join(sorted(known_env))}",
                )
            values[known_env[key]] = _seconds(text, key)
    for option in options:
        name, sep, text = option.partition("=")
        if not sep or name not in DEFAULTS:
            raise InferboxError(
                f"--kube-timeout {option!r}: expected NAME=SECONDS with a known NAME",
                f"known names: {', '.join(sorted(DEFAULTS))}",
            )
        values[name] = _seconds(text, f"--kube-timeout {name}")
    return Timeouts(values)
