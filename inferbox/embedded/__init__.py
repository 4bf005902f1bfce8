"""The embedded target: the platform's manifests interpreted into local processes."""
