"""Target-agnostic clients and helpers for the observability checks: Prometheus's HTTP API,
Jaeger's query API, PromQL names, and the dashboards shipped under manifests/."""
