"""Cluster targets (Kind and existing clusters)."""
