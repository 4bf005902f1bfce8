"""The embedded target's serving control plane: what KServe's controller, Knative's autoscaler (KPA),
activator and route controller do on a cluster.

- **Revisions.** Every InferenceService has numbered revisions (``serving_plan.py``); each runs its
  own replicas (model server and, in an injected namespace, a sidecar), started by the platform's
  deployer with quota admission.
- **How the gateway learns about replicas.** Every revision is an Envoy cluster on the gateway whose
  endpoints come from a file (filesystem EDS, replaced atomically): the revision's ready replicas
  (reached over mutual TLS), or the activator while it has none. The gateway's routes split a
  model's traffic between revision clusters by percentage, and come from a file too (filesystem
  RDS), so promoting a canary changes the split without restarting Envoy.
- **Autoscaler.** A thread reads a few times a second, per revision, the requests in flight at its
  ready replicas' sidecars (as Knative's KPA counts them at each pod's queue-proxy: every caller's,
  the gateway's and those of workloads inside the mesh) plus those the activator holds, and the
  gateway's request counter (requests seen); it lets each revision's KPA decider (``autoscaler.py``)
  choose its replicas, starts replicas (quota admission first) and removes surplus ones: out of the gateway's
  endpoints first, then it waits until the gateway has dropped the endpoint and the replica's sidecar
  has no request in flight (drain), then stops it.
- **Activator** (``activator.py``): holds requests for a revision without a ready replica, pokes
  the autoscaler, forwards once a replica is ready.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from inferbox.embedded.activator import Activator, Upstream, activator_tls, listening_socket
from inferbox.embedded.autoscaler import Activity, Decider, LoadWindow
from inferbox.embedded.deployer import Deployer, Replica
from inferbox.embedded.envoy_common import ISTIO_TLS_MODE
from inferbox.embedded.events import EventLog
from inferbox.embedded.gateway_config import cluster_name, render_routes
from inferbox.embedded.gateway_plan import GatewayPlan, ModelBackend
from inferbox.embedded.knobs import Knobs
from inferbox.embedded.mesh_plan import PodMeta
from inferbox.embedded.mesh_runtime import MeshControlPlane
from inferbox.embedded.netns import connect_in_netns
from inferbox.embedded.network import Network, Pod, free_port
from inferbox.embedded.quota import QuotaExceeded
from inferbox.embedded.workloads import WorkloadSpec, revision_workload
from inferbox.embedded.xds_files import EdsFiles, RoutesFile
from inferbox.errors import PlatformError
from inferbox.manifests import ManifestSet
from inferbox.mesh import ScaleOutcome
from inferbox.serving import AutoscalingSettings, ReplicaTiming, RevisionStatus
from inferbox.serving_plan import ModelServingPlan, RevisionPlan, plan_serving
from inferbox.waiting import eventually

ACTIVATOR_META = PodMeta("knative-serving", "activator", "activator", {"app": "activator"})
ACTIVATOR_PORT = 8012  # Knative's activator port
TICK_S = 0.25  # how often the autoscaler samples the gateway and decides (Knative ticks every 2 s)
REFUSAL_BACKOFF_S = 2.0  # after a quota refusal, how long before the autoscaler asks again
DRAIN_TIMEOUT_S = 30.0  # longest a replica may finish its in-flight requests before it is stopped
ENDPOINT_REMOVAL_S = 5.0  # longest the gateway may take to drop an endpoint
ACTIVATOR_TIMEOUT_S = 50.0  # below the gateway's 60 s route timeout, so the client sees the activator's 504
SIDECAR_ADMIN_PORT = 15000
# A sidecar's admin answers within milliseconds on this machine; one that does not within this is
# stopped or frozen, and must not hold up the tick.
IN_FLIGHT_READ_S = 0.5
IN_FLIGHT_READERS = 4  # sidecars read at once per tick


def wall(monotonic: float) -> float:
    """A monotonic instant on the wall clock (the contract's time axis)."""
    return monotonic + (time.time() - time.monotonic())


@dataclass
class RevisionState:
    model: ModelServingPlan
    plan: RevisionPlan
    spec: WorkloadSpec
    decider: Decider
    load: LoadWindow
    activator_endpoint: tuple[str, int]
    activator_in_path: bool = False
    desired: int = 0
    pending: int = 0  # replicas being created (decided, not yet in the platform's list)
    refused_at: float | None = None  # last quota refusal (monotonic)
    last_total: int = 0  # the gateway's request counter for this revision
    timings: dict[str, ReplicaTiming] = field(default_factory=dict)
    leaving: set[str] = field(default_factory=set)  # replicas draining or stopping, until fully gone

    @property
    def key(self) -> str:
        return f"{self.model.namespace}/{self.plan.name}"

    @property
    def backend(self) -> ModelBackend:
        return ModelBackend(self.model.namespace, self.model.name, self.plan.suffix)

    @property
    def cluster(self) -> str:
        return cluster_name(self.backend)


class ServingControlPlane:
    """Revisions, autoscaler and activator of the InferenceServices; replicas come from the deployer,
    endpoints and routes go to the gateway's xDS files."""

    def __init__(
        self,
        manifests: ManifestSet,
        gateway_plan: GatewayPlan,
        deployer: Deployer,
        mesh: MeshControlPlane,
        eds: EdsFiles,
        routes: RoutesFile,
        knobs: Knobs,
        events: EventLog,
        log_dir: Path,
    ) -> None:
        self.manifests = manifests
        self.gateway_plan = gateway_plan
        self.deployer = deployer
        self.mesh = mesh
        self.eds = eds
        self.routes_file = routes
        self.events = events
        self.plans = plan_serving(manifests)
        self.knobs = knobs
        self.log_path = log_dir / "autoscaler.log"
        self.revisions: dict[str, RevisionState] = {}
        self.promoted: set[tuple[str, str]] = set()
        self.bounds: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        self.activator: Activator | None = None
        self.activator_pod: Pod | None = None
        # The deployer's lock: a replica appears in the deployer's list and leaves this plane's
        # pending count atomically, so no tick counts it twice.
        self._lock = deployer.lock
        self._eds_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._admin: httpx.Client | None = None
        self._workers: list[threading.Thread] = []
        # How one replica's in-flight requests are read (its sidecar's admin); replaceable in tests.
        self.read_in_flight: Callable[[Pod], int] = lambda pod: sidecar_in_flight(pod, IN_FLIGHT_READ_S)
        self._readers = ThreadPoolExecutor(IN_FLIGHT_READERS, thread_name_prefix="in-flight")
        # A model replica on its way out leaves the gateway's endpoints before its process stops.
        deployer.when_removing(self._replica_removing)

    # -- set-up ----------------------------------------------------------------------------------
    def create_revisions(self, network: Network) -> None:
        """The activator pod and every revision's listening socket; nothing is routed yet."""
        pod = network.add_pod("knative-serving.activator")
        self.mesh.register(pod, ACTIVATOR_META)
        self.activator_pod = pod
        listeners: dict[str, socket.socket] = {}
        now = time.monotonic()
        port = ACTIVATOR_PORT
        for (namespace, name), model in sorted(self.plans.items()):
            isvc = self.manifests.get("InferenceService", name, namespace)
            assert isvc is not None
            for rev in model.revisions:
                spec = revision_workload(isvc, rev.predictor, rev.suffix)
                listen_port = port if pod.netns else free_port()
                port += 1
                state = RevisionState(
                    model,
                    rev,
                    spec,
                    Decider(model.settings, now),
                    LoadWindow(horizon_s=model.settings.stable_window_s + 5),
                    (pod.ip, listen_port),
                )
                self.revisions[state.key] = state
                listeners[state.key] = listening_socket(pod.netns_path, pod.ip, listen_port)
        cert = self.mesh.pki.issue(ACTIVATOR_META.namespace, ACTIVATOR_META.service_account, "activator")
        tls = activator_tls(str(cert.cert), str(cert.key), str(self.mesh.pki.bundle_path))
        self.activator = Activator(
            self._upstreams,
            self._poke,
            tls,
            pod.netns_path,
            lambda key: self.revisions[key].model.activator_capacity,
            ACTIVATOR_TIMEOUT_S,
            drop_held=self.knobs.activator_drops_held_requests,
        )
        self.activator.start(listeners)

    def start_initial(self) -> list[Replica]:
        """Every new revision starts ``initial-scale`` replicas (Knative); the caller waits on them
        and then calls ``initial_ready``."""
        started = []
        for state in self.revisions.values():
            for _ in range(state.model.settings.initial_scale):
                requested = time.time()
                replica = self.deployer.start_replica(state.spec)
                self._timing(state, replica, requested)
                started.append(replica)
        return started

    def initial_ready(self, replicas: list[Replica]) -> None:
        for replica in replicas:
            state = self._state_of(replica)
            self._timing(state, replica)
        for state in self.revisions.values():
            self._publish(state)

    def start_autoscaler(self, admin_url: str) -> None:
        self._admin = httpx.Client(base_url=admin_url, timeout=2.0)
        now = time.monotonic()
        for state in self.revisions.values():
            # Knative counts a revision's active time from when it became ready (routed), not from
            # when it was created: the stable window of idleness starts now.
            state.decider.active_since = now
        self._thread = threading.Thread(target=self._loop, name="autoscaler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for worker in list(self._workers):
            worker.join(timeout=DRAIN_TIMEOUT_S)
        self._readers.shutdown(wait=True, cancel_futures=True)
        if self.activator is not None:
            self.activator.stop()
        if self._admin is not None:
            self._admin.close()

    def replan(self, gateway_plan: GatewayPlan, knobs: Knobs) -> None:
        """The gateway's routes change (it is restarting with a new plan); so may the knobs its
        routes read. Revisions, replicas and the activator stay as they are."""
        with self._lock:
            self.gateway_plan = gateway_plan
            self.knobs = replace(self.knobs, canary_weight_offset=knobs.canary_weight_offset)

    def retune(self, manifests: ManifestSet, knobs: Knobs) -> None:
        """New autoscaling settings (config-autoscaler, bounds, targets) and activator knob, in
        place: the deciders take them at their next tick; revisions and replicas stay."""
        plans = plan_serving(manifests)
        for key, plan in plans.items():
            current = self.plans.get(key)
            if current is None or [r.name for r in current.revisions] != [r.name for r in plan.revisions]:
                raise PlatformError(
                    f"the revisions of {key[0]}/{key[1]} changed; settings alone can be changed in place",
                    "start a new platform with these manifests",
                )
        assert self.activator is not None
        with self._lock:
            self.manifests, self.plans = manifests, plans
            for state in self.revisions.values():
                model = plans[(state.model.namespace, state.model.name)]
                state.model, state.plan = model, model.revision(state.plan.suffix)
                state.decider.settings = model.settings
                state.load.horizon_s = model.settings.stable_window_s + 5
            self.knobs = replace(self.knobs, activator_drops_held_requests=knobs.activator_drops_held_requests)
            self.activator.drop_held_requests(knobs.activator_drops_held_requests)
        self._wake.set()

    # -- what the gateway is told ----------------------------------------------------------------
    def revisions_for(self, backend: ModelBackend) -> list[tuple[ModelBackend, int]]:
        """The revisions of a model and their share of its traffic (for the gateway's routes)."""
        model = self.plans.get((backend.namespace, backend.name))
        if model is None:
            return [(backend, 100)]
        offset = self.knobs.canary_weight_offset
        shares = model.traffic((model.namespace, model.name) in self.promoted, offset)
        return [(ModelBackend(model.namespace, model.name, rev.suffix), shares[rev.suffix]) for rev in model.revisions]

    def identities(self) -> dict[str, str]:
        """Per revision cluster, the SPIFFE ID its replicas present."""
        pki = self.mesh.pki
        return {s.cluster: pki.spiffe_id(s.spec.namespace, s.spec.service_account) for s in self.revisions.values()}

    def publish_model(self, namespace: str, name: str) -> None:
        for state in self.revisions.values():
            if (state.model.namespace, state.model.name) == (namespace, name):
                self._publish(state)

    def _publish(self, state: RevisionState) -> None:
        ready = self._ready(state)
        with self._eds_lock:
            if state.activator_in_path or not ready:
                self.eds.write(state.cluster, [state.activator_endpoint], None)
            else:
                sidecar = ready[0].sidecar is not None
                match = ISTIO_TLS_MODE if sidecar else None
                self.eds.write(state.cluster, [r.endpoint for r in ready], match)

    def _replica_removing(self, replica: Replica) -> None:
        if replica.workload.kind == "InferenceService":
            with self._lock:
                self.publish_model(replica.workload.namespace, replica.workload.name)

    def _write_routes(self) -> int:
        return self.routes_file.write(render_routes(self.gateway_plan, self.revisions_for))

    # -- replicas of a revision ------------------------------------------------------------------
    def _replicas(self, state: RevisionState) -> list[Replica]:
        all_of_model = self.deployer.replicas(state.spec.component)
        return [r for r in all_of_model if r.workload.revision == state.plan.suffix]

    def _ready(self, state: RevisionState) -> list[Replica]:
        return [r for r in self._replicas(state) if r.ready_at is not None and not r.draining]

    def _current(self, state: RevisionState) -> int:
        return sum(1 for r in self._replicas(state) if not r.draining) + state.pending

    def _state_of(self, replica: Replica) -> RevisionState:
        spec = replica.workload
        return self.revisions[f"{spec.namespace}/{spec.name}-predictor-{spec.revision}"]

    def _upstreams(self, key: str) -> list[Upstream]:
        state = self.revisions[key]
        identity = self.mesh.pki.spiffe_id(state.spec.namespace, state.spec.service_account)
        return [Upstream(r.name, r.endpoint, identity if r.sidecar is not None else None) for r in self._ready(state)]

    def _poke(self, key: str, held: int) -> None:
        self._log(f"{key}: activator holds {held} request(s)")
        self._wake.set()

    def _timing(self, state: RevisionState, replica: Replica, requested: float | None = None) -> None:
        old = state.timings.get(replica.name)
        state.timings[replica.name] = ReplicaTiming(
            revision=state.plan.name,
            replica=replica.name,
            requested_at=requested if requested is not None else (old.requested_at if old else time.time()),
            started_at=wall(replica.process.started_at),
            ready_at=wall(replica.ready_at) if replica.ready_at is not None else None,
        )
        if len(state.timings) > 500:
            state.timings.pop(next(iter(state.timings)))

    # -- the autoscaler loop ---------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile()
            except Exception as exc:  # the loop must survive a bad tick; the log says why
                self._log(f"reconcile failed: {type(exc).__name__}: {exc}")

    def gateway_counters(self) -> dict[str, tuple[int, int]]:
        """Per revision cluster: (requests in flight, requests seen) at the gateway."""
        assert self._admin is not None
        response = self._admin.get(
            "/stats", params={"format": "json", "filter": r"^cluster\.isvc__.*\.upstream_rq_(active|total)$"}
        )
        response.raise_for_status()
        found: dict[str, list[int]] = {}
        for stat in response.json().get("stats", []):
            name = str(stat.get("name", ""))
            cluster, _, metric = name.removeprefix("cluster.").rpartition(".")
            counts = found.setdefault(cluster, [0, 0])
            counts[0 if metric == "upstream_rq_active" else 1] = int(stat.get("value", 0))
        return {k: (v[0], v[1]) for k, v in found.items()}

    def replica_in_flight(self) -> dict[str, int]:
        """Per revision whose ready replicas have sidecars: the requests in flight at them.

        Knative's KPA counts a revision's concurrency at its pods' queue-proxies, so a request counts
        once its headers reached the pod, whoever sent it. The gateway's own gauge does not do: it
        buffers a request's whole body before sending it on (the routes' requestBuffer), and
        callers inside the mesh do not pass it at all."""
        with self._lock:
            pods = {
                state.key: [r.pod for r in ready]
                for state in self.revisions.values()
                if (ready := self._ready(state)) and all(r.sidecar is not None for r in ready)
            }
        return {key: sum(self._readers.map(self._read_or_zero, found)) for key, found in pods.items()}

    def _read_or_zero(self, pod: Pod) -> int:
        try:
            return self.read_in_flight(pod)
        except (OSError, http.client.HTTPException, ValueError):
            # The replica is going away between the list and the read (its sidecar stopped), or is
            # frozen (no answer within the read's timeout). A stopping replica was drained first, so
            # it has nothing to count; a frozen one counts 0 for this tick, which the stable and panic
            # windows average out. Either way the tick goes on.
            return 0

    def reconcile(self) -> None:
        counters = self.gateway_counters()
        at_replicas = self.replica_in_flight()
        now = time.monotonic()
        with self._lock:
            for state in self.revisions.values():
                assert self.activator is not None
                gateway_in_flight, total = counters.get(state.cluster, (0, state.last_total))
                state.last_total = total
                in_flight = revision_in_flight(
                    at_replicas.get(state.key), self.activator.held(state.key), gateway_in_flight
                )
                state.load.record(now, in_flight, total)
                self._decide(state, now)

    def _decide(self, state: RevisionState, now: float) -> None:
        assert self.activator is not None
        model_key = (state.model.namespace, state.model.name)
        low, high = self.bounds.get(model_key, (None, None))
        shares = dict(self.revisions_for(ModelBackend(*model_key)))
        reachable = shares.get(state.backend, 0) > 0
        ready = len(self._ready(state))
        current = self._current(state)
        decision = state.decider.decide(
            now, state.load, ready, current, reachable, self.activator.held(state.key), low, high
        )
        if decision.desired != state.desired or decision.activator_in_path != state.activator_in_path:
            self._log(
                f"{state.key}: {decision.activity} desired={decision.desired} ready={ready} current={current} "
                f"load stable={decision.stable_load:.2f} panic={decision.panic_load:.2f} "
                f"panicking={decision.panicking} activator={'in' if decision.activator_in_path else 'out'}"
            )
        state.desired = decision.desired
        if decision.activator_in_path != state.activator_in_path:
            state.activator_in_path = decision.activator_in_path
            self._publish(state)
        refused_recently = state.refused_at is not None and now - state.refused_at < REFUSAL_BACKOFF_S
        if decision.desired > current and not refused_recently:
            for _ in range(decision.desired - current):
                state.pending += 1
                self._spawn(self._start_one, state, time.time())
        elif decision.desired < current:
            surplus = current - decision.desired
            candidates = [r for r in self._replicas(state) if not r.draining]
            # Not-yet-ready replicas go first, then the newest (Kubernetes' ReplicaSet prefers those too).
            candidates.sort(key=lambda r: (r.ready_at is not None, -r.index))
            for replica in candidates[:surplus]:
                replica.draining = True
                state.leaving.add(replica.name)
                self._spawn(self._drain, state, replica)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        worker = threading.Thread(target=self._run_worker, args=(target, *args), daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()

    def _run_worker(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except Exception as exc:  # a failed replica must not take the control plane down
            self._log(f"{target.__name__} failed: {type(exc).__name__}: {exc}")

    def _start_one(self, state: RevisionState, requested: float) -> None:
        with self._lock:
            try:
                if self._stopping.is_set():
                    return
                replica = self.deployer.start_replica(state.spec)
            except QuotaExceeded as exc:
                state.refused_at = time.monotonic()
                self._log(f"{state.key}: replica refused: {exc.problem}")
                return
            finally:
                state.pending -= 1
        self._timing(state, replica, requested)
        self._log(f"{state.key}: starting {replica.name}")
        try:
            self.deployer.wait_ready(replica)
        except PlatformError as exc:
            if replica.draining:
                return  # removed while starting (the load went away); the drain stops it
            self._log(f"{state.key}: {replica.name} did not become ready: {exc.problem}")
            self.events.record(state.model.namespace, "ReplicaFailed", f"{replica.name}: {exc.problem}")
            replica.draining = True
            self.deployer.stop_replica(replica)
            return
        self._timing(state, replica)
        self._log(f"{state.key}: {replica.name} ready")
        with self._lock:
            self._publish(state)
        assert self.activator is not None
        self.activator.replicas_changed(state.key)

    def _drain(self, state: RevisionState, replica: Replica) -> None:
        """Out of the gateway's endpoints, in-flight requests finished, then stopped."""
        self._log(f"{state.key}: draining {replica.name}")
        with self._lock:
            self._publish(state)
        assert self.activator is not None
        self.activator.replicas_changed(state.key)
        try:
            if replica.ready_at is not None:
                self._wait_endpoint_removed(state, replica)
                self._wait_idle(replica)
            self.deployer.stop_replica(replica)
        finally:
            state.leaving.discard(replica.name)  # gone, its scrape target and counters with it
        self._log(f"{state.key}: stopped {replica.name}")

    def _wait_endpoint_removed(self, state: RevisionState, replica: Replica) -> None:
        host, port = replica.endpoint

        def gone() -> None:
            assert self._admin is not None
            clusters = self._admin.get("/clusters", params={"format": "json"}).json()
            for cluster in clusters.get("cluster_statuses", []):
                if cluster.get("name") != state.cluster:
                    continue
                for status in cluster.get("host_statuses", []):
                    address = status.get("address", {}).get("socket_address", {})
                    assert (address.get("address"), address.get("port_value")) != (host, port), "still routed"

        try:
            eventually(gone, ENDPOINT_REMOVAL_S, 0.02)
        except (AssertionError, httpx.HTTPError) as exc:
            self._log(f"{state.key}: the gateway still routes to {replica.name}: {exc}")

    def _wait_idle(self, replica: Replica) -> None:
        if replica.sidecar is None:
            return  # the model server finishes in-flight requests on SIGTERM itself (uvicorn)

        def idle() -> None:
            assert sidecar_in_flight(replica.pod) == 0, "requests in flight"

        try:
            eventually(idle, DRAIN_TIMEOUT_S, 0.05)
        except (AssertionError, OSError, http.client.HTTPException) as exc:
            self._log(f"{replica.name} did not drain: {exc}")

    def _log(self, line: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {line}\n")

    # -- the contract ----------------------------------------------------------------------------
    def model_plan(self, namespace: str, name: str) -> ModelServingPlan:
        plan = self.plans.get((namespace, name))
        if plan is None:
            raise PlatformError(f"no InferenceService {namespace}/{name}", "name a model of the manifests")
        return plan

    def settings(self, namespace: str, name: str) -> AutoscalingSettings:
        return self.model_plan(namespace, name).settings

    def revision_status(self, namespace: str, name: str) -> list[RevisionStatus]:
        model = self.model_plan(namespace, name)
        promoted = (namespace, name) in self.promoted
        shares = model.traffic(promoted)  # what the platform is configured to do, not a knob's skew
        out = []
        with self._lock:
            for rev in model.revisions:
                state = self.revisions[f"{namespace}/{rev.name}"]
                out.append(
                    RevisionStatus(
                        name,
                        namespace,
                        rev.name,
                        shares[rev.suffix],
                        len(self._ready(state)),
                        self._current(state),
                        rev.latest,
                        len(state.leaving),
                    )
                )
        return out

    def timings(self, namespace: str, name: str, since: float) -> list[ReplicaTiming]:
        model = self.model_plan(namespace, name)
        found = []
        for rev in model.revisions:
            state = self.revisions[f"{namespace}/{rev.name}"]
            # A replica is ready the moment the platform sees it so; its timing is written just after.
            live = {r.name: r.ready_at for r in self._replicas(state) if r.ready_at is not None}
            found += [
                replace(t, ready_at=wall(live[t.replica])) if t.ready_at is None and t.replica in live else t
                for t in list(state.timings.values())
                if t.requested_at >= since
            ]
        return sorted(found, key=lambda t: t.requested_at)

    def served(self, namespace: str, name: str) -> dict[str, int]:
        model = self.model_plan(namespace, name)
        counters = self.gateway_counters()
        return {
            rev.name: counters.get(self.revisions[f"{namespace}/{rev.name}"].cluster, (0, 0))[1]
            for rev in model.revisions
        }

    def set_bounds(self, namespace: str, name: str, low: int | None, high: int | None, settle_s: float) -> ScaleOutcome:
        """Overrides the model's replica bounds (each revision that receives traffic); returns once
        every such revision has its replicas ready within the bounds, or a replica was refused."""
        model = self.model_plan(namespace, name)
        mark = self.events.mark()
        since = time.monotonic()
        with self._lock:
            self.bounds[(namespace, name)] = (low, high)
        self._wake.set()
        routed = [self.revisions[f"{namespace}/{rev.name}"] for rev in model.revisions]
        routed = [s for s in routed if dict(self.revisions_for(ModelBackend(namespace, name))).get(s.backend, 0) > 0]

        def settled() -> None:
            for state in routed:
                replicas = [r for r in self._replicas(state) if not r.draining]
                refused = state.refused_at is not None and state.refused_at >= since
                if high is not None:
                    assert len(replicas) <= high, f"{state.key} has {len(replicas)} replicas, above {high}"
                    # A replica on its way out still serves and is still scraped: the set of
                    # replicas (and the counters they keep) is fixed only once it is gone.
                    assert not state.leaving, f"{state.key}: {', '.join(sorted(state.leaving))} still leaving"
                if low is not None and not refused:
                    assert state.pending == 0, f"{state.key} is creating replicas"
                    assert len(replicas) >= low, f"{state.key}: {len(replicas)} of {low}"
                assert all(r.ready_at is not None for r in replicas) or refused, f"{state.key} is starting"

        try:
            eventually(settled, settle_s, 0.05)
        except AssertionError as exc:
            raise PlatformError(f"{namespace}/{name} did not settle within {settle_s:.0f}s: {exc}", "see logs") from exc
        refusals = tuple(e.message for e in self.events.since(mark, namespace))
        running = sum(len([r for r in self._replicas(s) if not r.draining]) for s in routed)
        return ScaleOutcome(low if low is not None else (high or 0), running, refusals)

    def promote(self, namespace: str, name: str, settle_s: float) -> None:
        """Promotes the latest revision to all of the model's traffic (canaryTrafficPercent removed)."""
        self.model_plan(namespace, name)
        with self._lock:
            self.promoted.add((namespace, name))
            version = self._write_routes()
        self._wait_routes(version, settle_s)
        self._wake.set()

    def restore(self, namespace: str, name: str, settle_s: float) -> None:
        """Back to what the manifests declare: their bounds and traffic split."""
        self.model_plan(namespace, name)
        with self._lock:
            self.bounds.pop((namespace, name), None)
            changed = (namespace, name) in self.promoted
            self.promoted.discard((namespace, name))
            version = self._write_routes() if changed else None
        if version is not None:
            self._wait_routes(version, settle_s)
        self._wake.set()

    def _wait_routes(self, version: int, settle_s: float) -> None:
        """Until the gateway runs route configuration ``version`` (its config dump says so)."""

        def applied() -> None:
            assert self._admin is not None
            dump = self._admin.get("/config_dump", params={"resource": "dynamic_route_configs"}).json()
            versions = [c.get("version_info") for c in dump.get("configs", [])]
            assert str(version) in versions, f"gateway runs route versions {versions}, not {version}"

        eventually(applied, settle_s, 0.02)

    def activity(self, namespace: str, name: str) -> dict[str, Activity]:
        model = self.model_plan(namespace, name)
        return {rev.name: self.revisions[f"{namespace}/{rev.name}"].decider.activity for rev in model.revisions}


def revision_in_flight(at_replicas: int | None, held: int, gateway_in_flight: int) -> int:
    """A revision's concurrency for one tick: the requests in flight at its replicas' sidecars plus
    those the activator holds for it (not yet at a replica). ``at_replicas`` is None when its replicas
    have no sidecar to ask (a namespace without injection): the gateway's gauge is all there is then.
    """
    if at_replicas is None:
        return gateway_in_flight
    return at_replicas + held


def sidecar_in_flight(pod: Pod, timeout: float = 1.0) -> int:
    """Requests the pod's sidecar is serving right now (Envoy's inbound downstream_rq_active)."""
    port = pod.port(SIDECAR_ADMIN_PORT)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if pod.netns_path:
        conn.sock = connect_in_netns(pod.netns_path, "127.0.0.1", port, timeout)
    try:
        conn.request("GET", "/stats?filter=%5Ehttp%5C.inbound%5C.downstream_rq_active%24")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "http.inbound.downstream_rq_active":
            return int(value.strip())
    raise OSError(f"the sidecar reports no inbound request gauge: {text[:200]!r}")
