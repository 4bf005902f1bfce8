"""The mesh's moving parts on real processes: sidecars own the pods' service ports, NetworkPolicy
rules live only in pod namespaces, quota admission holds while scaling, and nothing remains after a
run: no namespace, veth, nftables rule or process, after a clean stop and after the owner is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from inferbox.embedded import netpol
from inferbox.embedded.network import list_netns, netns_supported
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.embedded.processes import is_same_process
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.waiting import eventually

pytestmark = pytest.mark.slow
NETNS, WHY_NOT = netns_supported()
needs_netns = pytest.mark.skipif(not NETNS, reason=f"network namespaces unavailable here: {WHY_NOT}")
needs_nft = pytest.mark.skipif(not netpol.nft_available(), reason="nftables (nft) is not installed")


def host_ruleset() -> str:
    if not netpol.nft_available():
        return ""
    return subprocess.run([netpol.nft_binary(), "list", "ruleset"], capture_output=True, text=True, check=False).stdout


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip() for line in out.splitlines()}


def listening_in(netns: str, pid: int) -> list[str]:
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-ltnpH"], capture_output=True, text=True, check=True)
    return [line.split()[3] for line in out.stdout.splitlines() if f"pid={pid}," in line]


def leftovers(instance: str, pids: list[tuple[int, float]]) -> list[str]:
    found = [f"process {pid}" for pid, start in pids if is_same_process(pid, start)]
    return found + list_netns(f"ib-{instance}-")


@needs_netns
@needs_nft
def test_sidecars_own_the_service_ports_and_everything_goes_away(tmp_path: Path) -> None:
    ruleset_before, links_before = host_ruleset(), host_links()
    platform = EmbeddedPlatform(EmbeddedOptions(DEFAULT_MANIFEST_DIR, tmp_path / "state", tmp_path / "logs"))
    platform.start()
    try:
        assert platform.mesh.enforcing
        models = [r for r in platform.deployer.all_replicas() if r.workload.kind == "InferenceService"]
        assert models
        for replica in models:
            assert replica.sidecar is not None, f"{replica.name} has no sidecar"
            netns = replica.pod.netns
            assert netns
            app = listening_in(netns, replica.process.pid)
            assert app, f"{replica.name} listens nowhere"
            assert all(a.startswith("127.0.0.1:") for a in app), f"{replica.name} bypasses its sidecar: {app}"
            sidecar = sorted(listening_in(netns, replica.sidecar.pid))
            # Envoy's admin on the pod's loopback, the inbound listener on the pod's address, and
            # Istio's merged-metrics port (plaintext GET /stats/prometheus only) when Prometheus scrapes.
            expected = ["127.0.0.1:15000", f"{replica.pod.ip}:{replica.workload.port}"]
            if platform.observability.metrics:
                expected.append(f"{replica.pod.ip}:15020")
            assert sidecar == sorted(expected), sidecar
            rules = subprocess.run(
                ["ip", "netns", "exec", netns, netpol.nft_binary(), "list", "table", "inet", netpol.TABLE],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert "policy drop" in rules
        # Scaling past the quota: the deployer stops at the refusal and records an event.
        outcome = platform.scale("tenant-a", "sklearn-iris", 10)
        assert outcome.running < 10
        assert any("exceeded quota" in r for r in outcome.refusals), outcome.refusals
        assert "exceeded quota" in (tmp_path / "logs" / "events.log").read_text()
        scaled = platform.deployer.replicas("tenant-a.sklearn-iris")
        assert all(r.sidecar is not None for r in scaled), "a replica added later has no sidecar"
        # One replica for each revision that receives traffic (sklearn-iris rolls out a canary).
        routed = [r for r in platform.serving.revision_status("tenant-a", "sklearn-iris") if r.traffic_percent]
        assert platform.scale("tenant-a", "sklearn-iris", 1).running == len(routed)
        pids = [(p.pid, p.start_time) for p in platform.supervisor.processes]
        assert len(pids) >= 2 * len(models) + 2  # models, their sidecars, JWT server, gateway
    finally:
        platform.stop()
    assert not leftovers(platform.instance, pids)
    assert host_ruleset() == ruleset_before, "nftables rules were left in the host's namespace"
    assert host_links() == links_before, "network interfaces were left in the host's namespace"


OWNER = """
import json, sys, time
from pathlib import Path
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.manifests import DEFAULT_MANIFEST_DIR
state = Path(sys.argv[1])
platform = EmbeddedPlatform(EmbeddedOptions(DEFAULT_MANIFEST_DIR, state, state / "logs"))
platform.start()
platform.scale("tenant-a", "sklearn-iris", 2)
pids = [[p.pid, p.start_time, p.name] for p in platform.supervisor.processes]
print(json.dumps({"instance": platform.instance, "pids": pids}), flush=True)
time.sleep(600)
"""


@needs_netns
@needs_nft
def test_a_crashed_owner_leaves_no_sidecar_namespace_or_rule(tmp_path: Path) -> None:
    ruleset_before, links_before = host_ruleset(), host_links()
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, "the owner process did not start the platform"
        started = json.loads(line)
        assert any(name.endswith("-sidecar") for _, _, name in started["pids"]), started["pids"]
    finally:
        os.kill(owner.pid, signal.SIGKILL)  # no chance to clean up: the reaper must
        owner.wait()

    def nothing_left() -> None:
        left = leftovers(started["instance"], [(int(p[0]), float(p[1])) for p in started["pids"]])
        assert not left, f"still there: {left}"

    eventually(nothing_left, timeout_s=20, interval_s=0.2)
    assert host_ruleset() == ruleset_before
    assert host_links() == links_before
