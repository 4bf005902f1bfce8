"""Faults are bounded and always rolled back by the process that owns the platform: a stalled
replica resumes at its bound even when whoever stalled it is gone, and a gateway that exits is
restarted by the supervisor's restart policy (the kubelet's), unless the policy is Never."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from inferbox.contract import FaultKind
from inferbox.embedded.chaos import ChaosControl, heal_script, partition_script
from inferbox.embedded.netpol import nft_available, nft_binary
from inferbox.embedded.network import Network, Pod
from inferbox.embedded.processes import ManagedProcess, RestartPolicy, Supervisor
from inferbox.errors import PlatformError
from inferbox.waiting import eventually

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


@pytest.fixture
def supervisor(tmp_path: Path) -> Any:
    sup = Supervisor(tmp_path / "state", tmp_path / "logs")
    yield sup
    sup.stop_all(grace_s=2)


def _control(supervisor: Supervisor, process: ManagedProcess) -> ChaosControl:
    replica = SimpleNamespace(process=process, sidecar=None, serving=True, index=0, name="tenant-c.m-0")
    deployer = SimpleNamespace(replicas=lambda component: [replica], all_replicas=lambda: [replica])
    return ChaosControl(
        cast(Any, SimpleNamespace()),
        Network("t"),
        supervisor,
        cast(Any, deployer),
        cast(Any, SimpleNamespace(process=None)),
        cast(Any, SimpleNamespace(components=dict)),
        lambda: None,
    )


def test_a_stalled_replica_resumes_at_its_bound_without_anyone_asking(supervisor: Supervisor) -> None:
    process = supervisor.start("m-0", SLEEPER, Pod("m-0", "127.0.0.1"))
    control = _control(supervisor, process)
    fault = control.inject(FaultKind.REPLICA_PAUSE, {"tenant": "tenant-c", "model": "m"}, 0.5)
    # SIGSTOP is delivered asynchronously: the replica is stopped shortly after the fault starts.
    eventually(lambda: _assert(_state(process.pid) == "T"), timeout_s=0.4, interval_s=0.01)
    assert [f.id for f in control.active()] == [fault.id]
    # Nobody heals it (the chaos run that asked may have crashed): the owner's timer does.
    eventually(lambda: _assert(_state(process.pid) != "T"), timeout_s=5, interval_s=0.05)
    assert control.active() == []


def test_heal_all_rolls_back_what_is_in_force(supervisor: Supervisor) -> None:
    process = supervisor.start("m-0", SLEEPER, Pod("m-0", "127.0.0.1"))
    control = _control(supervisor, process)
    control.inject(FaultKind.REPLICA_PAUSE, {"tenant": "tenant-c", "model": "m"}, 60)
    control.heal_all()
    assert _state(process.pid) != "T"
    assert control.active() == []


def test_faults_are_bounded(supervisor: Supervisor) -> None:
    process = supervisor.start("m-0", SLEEPER, Pod("m-0", "127.0.0.1"))
    with pytest.raises(PlatformError, match="outside"):
        _control(supervisor, process).inject(FaultKind.REPLICA_PAUSE, {"tenant": "t", "model": "m"}, 3600)


def _assert(condition: bool) -> None:
    assert condition


def test_the_supervisor_restarts_a_process_that_exits(supervisor: Supervisor) -> None:
    pod = Pod("gw", "127.0.0.1")
    process = supervisor.start("gw", SLEEPER, pod)
    seen: list[ManagedProcess] = []
    watch = supervisor.keep_running(process, lambda: supervisor.start("gw", SLEEPER, pod), seen.append, RestartPolicy())
    assert process.popen is not None
    process.popen.kill()
    eventually(lambda: _assert(len(seen) == 1 and seen[0].alive()), timeout_s=5, interval_s=0.05)
    assert watch.current is seen[0]
    assert len(watch.restarts) == 1


def test_restart_policy_never_leaves_it_down(supervisor: Supervisor) -> None:
    pod = Pod("gw", "127.0.0.1")
    process = supervisor.start("gw", SLEEPER, pod)
    seen: list[ManagedProcess] = []
    supervisor.keep_running(
        process, lambda: supervisor.start("gw", SLEEPER, pod), seen.append, RestartPolicy(never=True)
    )
    assert process.popen is not None
    process.popen.kill()
    time.sleep(0.5)  # long enough for a restart to have happened: here nothing may happen
    assert seen == []


def test_kubelet_back_off() -> None:
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(7)] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0]


def test_partition_rules_live_in_their_own_table() -> None:
    script = partition_script(["198.18.0.2", "198.18.0.3"])
    assert "table inet inferbox_chaos" in script
    assert "ip saddr { 198.18.0.2, 198.18.0.3 } drop" in script
    assert "priority -10" in script, "before the NetworkPolicy table, so policies cannot let traffic through"
    assert heal_script().strip().endswith("delete table inet inferbox_chaos")


def _nft_table_in(netns: str) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, nft_binary(), "list", "table", "inet", "inferbox_chaos"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or not nft_available(), reason="needs root and nftables (network namespaces)")
def test_a_partition_is_lifted_at_its_bound_without_anyone_asking(supervisor: Supervisor) -> None:
    netns = f"ib-chaostest-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        network = Network("t")
        network.isolated = True
        pod = Pod("tenant-c.m-0", "198.18.0.9", netns)
        network.pods[pod.name] = pod
        replica = SimpleNamespace(pod=pod, workload=SimpleNamespace(namespace="tenant-c"))
        deployer = SimpleNamespace(all_replicas=lambda: [replica])
        gateway = SimpleNamespace(pod=Pod("gw", "198.18.0.2", None))
        control = ChaosControl(
            cast(Any, SimpleNamespace()),
            network,
            supervisor,
            cast(Any, deployer),
            cast(Any, gateway),
            cast(Any, SimpleNamespace(components=dict)),
            lambda: None,
        )
        control.inject(FaultKind.PARTITION, {"tenant": "tenant-c"}, 0.5)
        assert _nft_table_in(netns), "the partition's rules are in the pod's namespace"
        # The run that asked for it may be gone: the owner's timer lifts it at the bound.
        eventually(lambda: _assert(not _nft_table_in(netns)), timeout_s=5, interval_s=0.05)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
