"""Cluster targets (Kind, an existing cluster)."""
