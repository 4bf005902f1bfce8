"""A kept platform (another process) offers the serving contract through its control channel: live
revisions and replica counts, bounds that can be raised and restored, replica timings."""

from __future__ import annotations

import time
from pathlib import Path

from inferbox.contract import Capability
from inferbox.embedded.control import control_socket, remote
from inferbox.embedded.lifecycle import start_daemon, stop_daemon
from inferbox.embedded.target import EmbeddedTarget
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.observability.prometheus import PrometheusClient
from inferbox.profile import load_profile
from inferbox.waiting import eventually


def test_a_kept_platform_is_scaled_through_its_control_channel(tmp_path: Path) -> None:
    state_dir = tmp_path / "kept"
    state = start_daemon(DEFAULT_MANIFEST_DIR, state_dir)
    try:
        target = EmbeddedTarget(state, load_profile(), remote(state_dir))
        assert control_socket(state_dir).stat().st_mode & 0o077 == 0, "the control socket is the owner's only"
        assert {Capability.AUTOSCALING, Capability.RESOURCE_QUOTA} <= target.capabilities
        model = target.topology.model("pytorch-resnet")
        assert target.autoscaling(model).min_replicas == 0
        since = time.time()
        outcome = target.set_scale_bounds(model, 2, None, 90)
        assert outcome.running == 2
        [revision] = target.revisions(model)
        assert (revision.ready, revision.total, revision.traffic_percent) == (2, 2, 100)
        assert len([w for w in target.workloads() if w.model == "pytorch-resnet"]) == 2
        replicas = [c for c in target.components() if c.name.startswith("tenant-c.pytorch-resnet-")]
        assert len([c for c in replicas if not c.name.endswith("-sidecar")]) == 2, replicas
        assert all(c.healthy for c in replicas), "components come from the live control plane, not the start"
        started = target.replica_timings(model, since)
        assert started, "the replica started for the raised minimum has no timing"
        assert all(t.ready_at is not None and t.ready_at >= t.requested_at for t in started)
        # Every ready replica is a scrape target: its requests would otherwise go uncounted.
        prometheus = PrometheusClient(target.observability().prometheus_url)

        def both_scraped() -> None:
            pods = {t["labels"].get("pod") for t in prometheus.targets() if t["labels"].get("namespace") == "tenant-c"}
            assert len(pods) == 2, f"scraped pods of tenant-c: {pods}"

        eventually(both_scraped, timeout_s=30, interval_s=0.5)
        quota = target.resource_quota("tenant-c")
        assert quota is not None
        assert quota.pods_used >= 2
        target.restore_model(model, 90)
        target.close()
    finally:
        assert stop_daemon(state_dir)
    assert not control_socket(state_dir).exists()
