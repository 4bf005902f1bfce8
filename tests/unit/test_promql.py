"""Metric and label names read from PromQL."""

from __future__ import annotations

import pytest

from inferbox.observability.promql import names, tokens


def test_names_in_a_nested_expression() -> None:
    found = names(
        "histogram_quantile(0.99, sum by (le, tenant) (rate(envoy_cluster_upstream_rq_time_bucket"
        '{namespace="x",tenant=~"a|b"}[5m]))) / 1000 or count(up{model!=""} == 1) > time() - 30'
    )
    assert found.metrics == {"envoy_cluster_upstream_rq_time_bucket", "up"}
    assert found.matcher_labels["envoy_cluster_upstream_rq_time_bucket"] == {"namespace", "tenant"}
    assert found.matcher_labels["up"] == {"model"}
    assert found.grouping_labels == {"le", "tenant"}


@pytest.mark.parametrize(
    ("expr", "metrics"),
    [
        ("sum without (pod) (rate(a_total[1m] offset 5m))", {"a_total"}),
        ('a / on (tenant) group_left (model) b{x="sum(by)"}', {"a", "b"}),
        ("max by (pod) (process_start_time_seconds) > time() - $__range_s", {"process_start_time_seconds"}),
        ('count_values("v", build_info)', {"build_info"}),
        ("rate(x[$__rate_interval]) and bool 1", {"x"}),
    ],
)
def test_functions_keywords_and_strings_are_not_metrics(expr: str, metrics: set[str]) -> None:
    assert names(expr).metrics == metrics


def test_comments_are_skipped() -> None:
    assert names("up # not_a_metric").metrics == {"up"}


def test_unreadable_text_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot read PromQL"):
        tokens("up ~ 1")
