"""Filesystem xDS: how the embedded control plane changes a running Envoy without restarting it.

Envoy watches a directory; replacing a resource file atomically (a rename) makes it apply the new
version. Endpoints of model clusters (EDS) and the gateway's routes (RDS) are served this way.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from typing import Any

import yaml

from inferbox.embedded.envoy_common import TYPES, Endpoint, lb_endpoints


def write_discovery_file(directory: Path, path: Path, resource: dict[str, Any], version: int) -> None:
    """Atomically replaces one filesystem xDS file (Envoy reacts to the rename in its watched directory)."""
    body = {"version_info": str(version), "resources": [resource]}
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(yaml.safe_dump(body))
    os.replace(tmp, path)


def eds_path(directory: Path, cluster: str) -> Path:
    return directory / f"eds-{cluster}.yaml"


def rds_path(directory: Path, name: str) -> Path:
    # Route configurations are named like their listener (namespace/gateway/listener).
    return directory / f"rds-{name.replace('/', '_')}.yaml"


def path_config_source(path: Path, directory: Path) -> dict[str, Any]:
    return {
        "resource_api_version": "V3",
        "path_config_source": {"path": str(path), "watched_directory": {"path": str(directory)}},
    }


class RoutesFile:
    """The gateway's route configuration as filesystem RDS: rewritten when traffic splits change
    (a canary promoted), applied by Envoy without a restart, like EDS for endpoints."""

    def __init__(self, directory: Path, name: str = "gateway") -> None:
        self.directory = directory
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        self._version = 0
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return rds_path(self.directory, self.name)

    def write(self, route_config: dict[str, Any]) -> int:
        """Publishes a route configuration; returns its version (Envoy's config dump shows it once applied)."""
        with self._lock:
            self._version += 1
            write_discovery_file(self.directory, self.path, {"@type": TYPES["route"], **route_config}, self._version)
            return self._version

    def config_source(self) -> dict[str, Any]:
        return {"route_config_name": self.name, "config_source": path_config_source(self.path, self.directory)}


class EdsFiles:
    """Writes ClusterLoadAssignments into the directory Envoy watches."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._version = 0
        self._lock = threading.Lock()

    def path(self, cluster: str) -> Path:
        return eds_path(self.directory, cluster)

    def config_source(self, cluster: str) -> dict[str, Any]:
        return path_config_source(self.path(cluster), self.directory)

    def write(self, cluster: str, endpoints: list[Endpoint], match: dict[str, str] | None = None) -> None:
        with self._lock:
            self._version += 1
            resource = {
                "@type": TYPES["cla"],
                "cluster_name": cluster,
                "endpoints": [{"lb_endpoints": lb_endpoints(endpoints, match)}],
            }
            write_discovery_file(self.directory, self.path(cluster), resource, self._version)

    def ensure(self, cluster: str) -> None:
        """An empty assignment for a cluster nobody has published yet (Envoy needs the file to exist)."""
        if not self.path(cluster).exists():
            self.write(cluster, [])
