"""A small trace store: OTLP/HTTP intake and the subset of Jaeger's query HTTP API the suite uses."""
