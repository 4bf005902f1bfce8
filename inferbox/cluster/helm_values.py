"""The Helm values the installer sets, checked against the pinned charts' own values.

Helm does not complain about a values key a chart never reads: a misspelt key is silently ignored,
and the setting it meant to change keeps the chart's default. So every key the installer sets must
exist in the chart's ``values.yaml`` (or under a map the chart leaves open, such as
``podAnnotations: {}``), sub-chart keys in the sub-chart's values, and where a chart publishes a
``values.schema.json`` the values must also hold against it, as ``helm install`` would check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from inferbox.cluster.actions import HelmChartCrds, HelmRelease
from inferbox.cluster.plan import Plan
from inferbox.cluster.upstream import UpstreamData

# Istio's charts keep their defaults under this key and lift them at render time (their values.yaml
# says so); what a user sets is the key without it.
ISTIO_DEFAULTS_WRAPPER = "_internal_defaults_do_not_set"
# Charts whose values hold a sub-chart's block: the sub-chart's own values describe it.
SUBCHARTS = {"kube-prometheus-stack": ("grafana",)}
# Values a chart hands on whole to the program it installs, whose keys the chart's values.yaml only
# samples: their keys are that program's configuration, not the chart's (docs/kind.md lists them
# among what stays unverified without a cluster).
PASSTHROUGH: dict[tuple[str, str], str] = {
    ("istiod", "meshConfig"): "Istio's MeshConfig, rendered into the mesh ConfigMap",
    ("gateway-helm", "config.envoyGateway"): "Envoy Gateway's EnvoyGateway configuration, merged into its ConfigMap",
    ("kiali-server", "external_services"): "Kiali's configuration, rendered into its ConfigMap",
}
# Maps whose keys are free (labels, annotations), whatever examples the chart's defaults hold.
OPEN_MAPS = frozenset({"annotations", "labels", "podAnnotations", "podLabels", "nodeSelector", "matchLabels"})


def chart_name(chart: str) -> str:
    """``oci://ghcr.io/kserve/charts/kserve`` -> ``kserve``; ``base`` -> ``base``."""
    return chart.rstrip("/").rsplit("/", 1)[-1]


def defaults(data: UpstreamData, chart: str) -> dict[str, Any]:
    values = data.chart_values(chart)
    if set(values) == {ISTIO_DEFAULTS_WRAPPER}:
        return dict(values[ISTIO_DEFAULTS_WRAPPER])
    return values


def _missing(given: Any, known: Any, path: str, out: list[str], chart: str, base: str = "") -> None:
    if not isinstance(given, Mapping) or not isinstance(known, Mapping) or not known:
        return  # a scalar, a list, or a map the chart leaves open: nothing more to compare
    if path.rsplit(".", 1)[-1] in OPEN_MAPS or (base or chart, path) in PASSTHROUGH:
        return
    for key, value in given.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in known:
            near = ", ".join(sorted(str(k) for k in known)[:12])
            out.append(f"{where} is not a value of chart {chart} (its keys there: {near})")
            continue
        _missing(value, known[key], where, out, chart, base)


def check_values(chart: str, values: Mapping[str, Any], data: UpstreamData) -> list[str]:
    """Problems with ``values`` for the pinned ``chart`` (empty: every key exists and the schema holds)."""
    known = defaults(data, chart)
    subcharts = SUBCHARTS.get(chart, ())
    problems: list[str] = []
    own = {k: v for k, v in values.items() if k not in subcharts}
    _missing(own, known, "", problems, chart)
    for sub in subcharts:
        if sub in values:
            merged = {**defaults(data, sub), **(known.get(sub) or {})}
            _missing(values[sub], merged, sub, problems, f"{chart} (sub-chart {sub})", chart)
    schema = data.chart_schema(chart)
    if schema is not None:
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(dict(values)), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path) or "(top level)"
            problems.append(f"{where}: {error.message} (chart {chart}'s values.schema.json)")
    return problems


def set_values(pairs: Mapping[str, str]) -> dict[str, Any]:
    """``{"a.b": "x"}`` (``--set``) -> ``{"a": {"b": "x"}}``."""
    out: dict[str, Any] = {}
    for dotted, value in pairs.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def plan_values(plan: Plan) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(release, chart name, values) of every Helm install and CRD rendering in the plan."""
    out: list[tuple[str, str, Mapping[str, Any]]] = []
    for step in plan:
        for item in step.items:
            if isinstance(item, HelmRelease):
                out.append((item.release, chart_name(item.chart.name), item.values))
            elif isinstance(item, HelmChartCrds) and item.set_values:
                out.append((item.release, chart_name(item.chart.name), set_values(item.set_values)))
    return out


def check_plan_values(plan: Plan, data: UpstreamData) -> list[str]:
    return [
        f"release {release} ({chart}): {problem}"
        for release, chart, values in plan_values(plan)
        for problem in check_values(chart, values, data)
    ]
