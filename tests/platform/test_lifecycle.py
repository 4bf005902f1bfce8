"""The embedded platform starts, keeps models off the host network, and leaves nothing behind:
not after a clean stop, not after a failed start, not after its owner is killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inferbox.embedded.network import list_netns, netns_supported
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.embedded.processes import is_same_process
from inferbox.errors import ManifestError, PlatformError
from inferbox.waiting import eventually

pytestmark = pytest.mark.slow
NETNS, WHY_NOT = netns_supported()


def _listening(pid: int) -> list[str]:
    """Local addresses ``pid`` listens on in this (the host's) network namespace."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def _options(tmp_path: Path, manifests: Path | None = None, **kw: object) -> EmbeddedOptions:
    from inferbox.manifests import DEFAULT_MANIFEST_DIR

    return EmbeddedOptions(manifests or DEFAULT_MANIFEST_DIR, tmp_path / "state", tmp_path / "logs", **kw)  # type: ignore[arg-type]


def _leftovers(instance: str, pids: list[tuple[int, float]]) -> list[str]:
    found = [f"process {pid}" for pid, start in pids if is_same_process(pid, start)]
    return found + list_netns(f"ib-{instance}-")


@pytest.mark.parametrize("network", ["netns", "loopback"])
def test_start_serve_and_stop_cleanly(tmp_path: Path, network: str) -> None:
    if network == "netns" and not NETNS:
        pytest.skip(f"network namespaces unavailable here: {WHY_NOT}")
    platform = EmbeddedPlatform(_options(tmp_path, network=network))
    platform.start()
    try:
        assert platform.network.kind == network
        models = [r for r in platform.deployer.all_replicas() if r.workload.kind == "InferenceService"]
        assert models
        for replica in models:
            addresses = _listening(replica.process.pid)
            if network == "netns":
                assert addresses == [], f"{replica.name} listens in the host namespace: {addresses}"
            else:
                assert addresses, f"{replica.name} listens nowhere"
                assert all(a.startswith("127.0.0.1:") for a in addresses), addresses
        gateway = platform.gateway.process
        assert gateway is not None
        assert f"127.0.0.1:{platform.gateway.public_port}" in _listening(gateway.pid)
        pids = [(p.pid, p.start_time) for p in platform.supervisor.processes]
    finally:
        platform.stop()
    assert not _leftovers(platform.instance, pids)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", platform.gateway.public_port)) != 0, "the gateway port is still open"


def test_a_port_in_use_is_named_with_the_option_to_change_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        platform = EmbeddedPlatform(_options(tmp_path, gateway_port=port))
        with pytest.raises(PlatformError) as caught:
            platform.start()
    assert str(port) in caught.value.problem
    assert "--gateway-port" in caught.value.fix
    assert not list_netns(f"ib-{platform.instance}-")


def test_a_model_that_cannot_start_is_named_and_everything_is_cleaned(tmp_path: Path, manifest_copy: Path) -> None:
    path = manifest_copy / "tenants" / "tenant-c" / "pytorch-resnet.yaml"
    isvc = yaml.safe_load(path.read_text())
    isvc["spec"]["predictor"]["containers"][0]["args"][1] = "--model=no-such-artifact"
    path.write_text(yaml.safe_dump(isvc))
    platform = EmbeddedPlatform(_options(tmp_path, manifest_copy))
    with pytest.raises(PlatformError) as caught:
        platform.start()
    assert "tenant-c.pytorch-resnet" in caught.value.problem
    assert "exited" in caught.value.problem
    assert not list_netns(f"ib-{platform.instance}-")
    assert not platform.supervisor or not platform.supervisor.processes


def test_an_unsupported_field_stops_before_anything_starts(tmp_path: Path, manifest_copy: Path) -> None:
    path = manifest_copy / "tenants" / "tenant-a" / "sklearn-iris.yaml"
    path.write_text(path.read_text().replace("    minReplicas: 0", "    minReplicas: 0\n    containerConcurrency: 10"))
    with pytest.raises(ManifestError, match=r"spec\.predictor\.containerConcurrency"):
        EmbeddedPlatform(_options(tmp_path, manifest_copy))


OWNER = """
import json, sys, time
from pathlib import Path
from inferbox.embedded.platform import EmbeddedOptions, EmbeddedPlatform
from inferbox.manifests import DEFAULT_MANIFEST_DIR
state = Path(sys.argv[1])
platform = EmbeddedPlatform(EmbeddedOptions(DEFAULT_MANIFEST_DIR, state, state / "logs"))
platform.start()
pids = [[p.pid, p.start_time] for p in platform.supervisor.processes]
print(json.dumps({"instance": platform.instance, "pids": pids}), flush=True)
time.sleep(600)
"""


def test_killing_the_owner_leaves_nothing_behind(tmp_path: Path) -> None:
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
        assert started["pids"]
    finally:
        os.kill(owner.pid, signal.SIGKILL)  # no chance to clean up: the reaper must
        owner.wait()

    def nothing_left() -> None:
        left = _leftovers(started["instance"], [(int(p[0]), float(p[1])) for p in started["pids"]])
        assert not left, f"still there: {left}"

    eventually(nothing_left, timeout_s=20, interval_s=0.2)


RUN = """
import json, sys, time
from pathlib import Path
from inferbox.manifests import DEFAULT_MANIFEST_DIR
from inferbox.profile import load_profile
from inferbox.embedded.factory import embedded_target
from inferbox.targets import TargetOptions
options = TargetOptions(DEFAULT_MANIFEST_DIR, load_profile(), Path(sys.argv[1]))
with embedded_target(options) as platform:
    state = platform.state
    pids = [[c.pid, c.start_time] for c in state.components.values()]
    print(json.dumps({"instance": state.instance, "state_dir": state.state_dir, "pids": pids}), flush=True)
    time.sleep(600)
"""


def test_a_killed_run_leaves_no_secret_behind(tmp_path: Path) -> None:
    """A test run's private platform (as the pytest session starts it) killed with SIGKILL: the
    reaper removes its processes, namespaces and its private folder, signing key included."""
    run = subprocess.Popen(
        [sys.executable, "-c", RUN, str(tmp_path / "report")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert run.stdout is not None
        line = run.stdout.readline()
        assert line, "the run did not start its platform"
        started = json.loads(line)
        state_dir = Path(started["state_dir"])
        keys = list(state_dir.rglob("*.pem"))
        assert keys, f"no signing key under {state_dir}: the check would prove nothing"
        assert (state_dir / "credentials.json").exists()
    finally:
        os.kill(run.pid, signal.SIGKILL)  # no chance to clean up: the reaper must
        run.wait()

    def nothing_left() -> None:
        left = _leftovers(started["instance"], [(int(p[0]), float(p[1])) for p in started["pids"]])
        assert not left, f"still there: {left}"
        assert not state_dir.exists(), f"the private folder is still there: {sorted(state_dir.rglob('*'))[:5]}"

    eventually(nothing_left, timeout_s=20, interval_s=0.2)


def _inferbox(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INFERBOX_STATE_DIR": str(state), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "inferbox.cli", *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )


def test_up_on_a_bad_manifest_shows_the_cause_and_the_fix(tmp_path: Path, manifest_copy: Path) -> None:
    """Not "the platform process exited with code 1" and a log path: the manifest's own error."""
    path = manifest_copy / "tenants" / "tenant-a" / "sklearn-iris-gateway.yaml"
    path.write_text(
        path.read_text().replace(
            "  authorization:\n", "  authorization:\n    defaultAction: Allow\n  authorization:\n", 1
        )
    )
    result = _inferbox("up", "--manifests", str(manifest_copy), state=tmp_path / "state")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert "tenants/tenant-a/sklearn-iris-gateway.yaml line" in lines[0]
    assert "'authorization' already defined" in lines[0]
    assert lines[1].lstrip().startswith("fix: ")
    assert "exited with code" not in result.stderr
    assert not (tmp_path / "state" / "state.json").exists()


def test_a_platform_that_dies_without_its_own_error_is_named_by_its_last_words(tmp_path: Path) -> None:
    """A crash before the daemon can write its error still shows its last line (the end of a
    traceback) and the log's path, not an exit code alone; earlier runs' lines do not count."""
    from inferbox.embedded.lifecycle import _start_failure

    log = tmp_path / "daemon.log"
    log.write_text("an earlier run's last words\n")
    start = log.stat().st_size
    with open(log, "a") as out:
        out.write("Traceback (most recent call last):\n  ...\nImportError: cannot import name 'x'\n\n")
    error = _start_failure(tmp_path / "error.json", 1, log, start)
    assert error.problem == "the platform process exited with code 1: ImportError: cannot import name 'x'"
    assert str(log) in error.fix
    silent = _start_failure(tmp_path / "error.json", -9, log, log.stat().st_size)
    assert silent.problem == "the platform process exited with code -9 without a word"


def test_up_reports_a_route_whose_backend_does_not_resolve(tmp_path: Path, manifest_copy: Path) -> None:
    """Accepted, as on a cluster (its requests get 500), but said at `up` the way Gateway API says it."""
    route = manifest_copy / "tenants" / "tenant-a" / "sklearn-iris-explainer.yaml"
    route.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "sklearn-iris-explainer", "namespace": "tenant-a"},
                "spec": {
                    "parentRefs": [{"name": "inference-gateway", "namespace": "envoy-gateway-system"}],
                    "hostnames": ["sklearn-iris-explainer.tenant-a.inference.example"],
                    "rules": [{"backendRefs": [{"name": "sklearn-iris-explainer", "port": 80}]}],
                },
            }
        )
    )
    state = tmp_path / "state"
    up = _inferbox("up", "--manifests", str(manifest_copy), "--network", "loopback", state=state)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert (
            "HTTPRoute tenant-a/sklearn-iris-explainer: ResolvedRefs=False, reason BackendNotFound: "
            "Service tenant-a/sklearn-iris-explainer not found"
        ) in " ".join(up.stdout.split()), up.stdout
    finally:
        assert _inferbox("down", state=state).returncode == 0
