"""Knative's config-defaults: the revision timeouts are interpreted, validated as Knative validates
them; keys without an embedded counterpart, and ConfigMaps nothing reads, are refused by name."""

from __future__ import annotations

import pytest

from inferbox.embedded.knative_defaults import RevisionTimeouts, revision_timeouts
from inferbox.embedded.subset import check_all_supported
from inferbox.errors import ManifestError
from inferbox.manifests import DEFAULT_MANIFEST_DIR, K8sObject, ManifestSet, load_manifests

MANIFESTS = load_manifests(DEFAULT_MANIFEST_DIR)


def _with_configmap(namespace: str, name: str, data: dict[str, str]) -> ManifestSet:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}
    return ManifestSet(MANIFESTS.root, (*MANIFESTS, K8sObject("v1", "ConfigMap", name, namespace, body, "extra.yaml")))


def test_without_config_defaults_knatives_defaults_apply() -> None:
    assert revision_timeouts(MANIFESTS) == RevisionTimeouts(300, 0)


def test_the_revision_timeouts_are_interpreted() -> None:
    manifests = _with_configmap(
        "knative-serving",
        "config-defaults",
        {"revision-timeout-seconds": "1", "revision-idle-timeout-seconds": "1", "_example": "ignored"},
    )
    check_all_supported(manifests)
    assert revision_timeouts(manifests) == RevisionTimeouts(1, 1)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"revision-timeout-seconds": "700"}, "cannot be greater than max-revision-timeout-seconds"),
        ({"revision-timeout-seconds": "10", "revision-idle-timeout-seconds": "20"}, "revision-idle-timeout-seconds"),
        ({"revision-cpu-request": "100m"}, "revision-cpu-request"),
        ({"container-concurrency": "1"}, "container-concurrency"),
        ({"revision-timout-seconds": "1"}, "revision-timout-seconds"),
        ({"revision-response-start-timeout-seconds": "5"}, "time to first byte"),
    ],
)
def test_config_defaults_that_would_be_ignored_or_refused_by_knative_are_refused(
    data: dict[str, str], named: str
) -> None:
    with pytest.raises(ManifestError, match=named):
        check_all_supported(_with_configmap("knative-serving", "config-defaults", data))


def test_a_configmap_nothing_reads_is_refused() -> None:
    with pytest.raises(ManifestError, match="knative-serving/config-network is not interpreted"):
        check_all_supported(_with_configmap("knative-serving", "config-network", {"ingress-class": "x"}))
