"""Load profiles: Locust runs with honest latency measurement, SLO verdicts and reports."""
