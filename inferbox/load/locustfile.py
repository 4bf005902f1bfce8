"""inferbox's locustfile: model requests through the gateway (or directly to replicas), measured honestly.

It depends on the standard library and Locust only, so the same file runs in the official Locust
image as a worker inside a cluster. Everything it does comes from a run plan (JSON) named by
``INFERBOX_LOAD_PLAN``; tenants' client credentials come from the file named by
``INFERBOX_LOAD_CREDENTIALS`` (never from the plan, which is copied into the report).

Two modes:

- ``open``: requests follow a fixed timeline (constant spacing or Poisson arrivals) computed from
  the plan's stages; Locust users are only the pool of connections that serve it. A user takes the
  next slot of the timeline, waits for its intended time and sends. When every user is busy (a
  stalled backend), slots wait and are sent late, and their latency is measured from the *intended*
  time, so a stall is not hidden (coordinated omission). Locust's own statistics receive the same
  latency. Slots the generator never sent count against the achieved rate.
- ``closed``: ordinary Locust users, each pacing itself to its share of the stage's rate; latency
  is measured from the actual send, as Locust always does. Kept to show what closed loop hides.

Every request is also recorded raw (intended, sent and done times, status, outcome, target) so
percentiles are exact, not Locust's rounded buckets. Workers ship their records to the master with
their regular reports. When the run ends, the master asks each worker for the rest: the worker
waits until none of its requests is in flight, then sends its last records and the count of its
timeline's slots (the master waits for every worker, bounded; Locust itself would give workers
half a second). The local runner or the master writes them to ``samples.bin`` and
``samples.json`` in the plan's output folder when Locust quits.
"""

from __future__ import annotations

import array
import base64
import json
import os
import random
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, events, task
from locust.runners import MasterRunner, WorkerRunner

# Outcome codes of a recorded request (inferbox.load.records reads the same codes).
OK, RATE_LIMITED, HTTP_ERROR, WRONG_ANSWER, CONNECTION = 0, 1, 2, 3, 4
COLUMNS = (("intended", "d"), ("sent", "d"), ("done", "d"), ("status", "h"), ("outcome", "b"), ("target", "h"))

with open(os.environ["INFERBOX_LOAD_PLAN"], encoding="utf-8") as _plan_file:
    PLAN: dict[str, Any] = json.load(_plan_file)

STAGES: list[dict[str, Any]] = PLAN["stages"]
TOTAL_S = float(sum(stage["seconds"] for stage in STAGES))
OPEN = PLAN["mode"] == "open"
TARGETS: list[dict[str, Any]] = PLAN["targets"]
END_GRACE_S = 2.0
FINAL_REPORT_TIMEOUT_S = 30.0


def stage_at(offset: float) -> dict[str, Any] | None:
    elapsed = 0.0
    for stage in STAGES:
        elapsed += float(stage["seconds"])
        if offset < elapsed:
            return stage
    return None


class Schedule:
    """The open-loop timeline of this process: its share of the plan's rate, as offsets from t0.

    Constant arrivals: in a stage starting at S with rate R, the whole run's slots are S + k/R, and
    worker i of N takes every N-th of them starting at the i-th, so workers interleave exactly.
    Poisson arrivals: each worker draws exponential gaps at R/N (independent Poisson streams add up
    to one at R); at a stage boundary it restarts at the new rate, which memorylessness allows.
    """

    def __init__(self, share: float, index: int, seed: int) -> None:
        count = max(1, round(1.0 / share))
        self.slots = (
            self._poisson(count, random.Random(seed * 1_000_003 + index))
            if PLAN["arrival"] == "poisson"
            else self._constant(count, index)
        )
        self.issued = 0
        self.over = False

    @staticmethod
    def _constant(count: int, index: int) -> Iterator[float]:
        begin = 0.0
        for stage in STAGES:
            seconds, rate = float(stage["seconds"]), float(stage["rate"])
            k = index
            while rate > 0 and k / rate < seconds - 1e-9:
                yield begin + k / rate
                k += count
            begin += seconds

    @staticmethod
    def _poisson(count: int, rng: random.Random) -> Iterator[float]:
        begin = 0.0
        for stage in STAGES:
            seconds, rate = float(stage["seconds"]), float(stage["rate"]) / count
            t = rng.expovariate(rate) if rate > 0 else seconds
            while t < seconds:
                yield begin + t
                t += rng.expovariate(rate)
            begin += seconds

    def take(self) -> float | None:
        """The next slot's offset, or None when the timeline is over."""
        slot = next(self.slots, None)
        if slot is None:
            self.over = True
            return None
        self.issued += 1
        return slot

    def drain(self) -> int:
        """Counts every slot of the whole timeline, also those never taken (the generator fell behind)."""
        while self.take() is not None:
            pass
        return self.issued


class Recorder:
    """Raw per-request records of this process, with the part not yet shipped to the master."""

    def __init__(self) -> None:
        self.columns: dict[str, array.array[Any]] = {name: array.array(code) for name, code in COLUMNS}
        self.shipped = 0
        self.t0_mono = time.monotonic()
        self.t0_wall = time.time()
        self.scheduled: int | None = None

    def add(self, intended: float, sent: float, done: float, status: int, outcome: int, target: int) -> None:
        row = (intended - self.t0_mono, sent - self.t0_mono, done - self.t0_mono, status, outcome, target)
        for (name, _), value in zip(COLUMNS, row, strict=True):
            self.columns[name].append(value)

    def __len__(self) -> int:
        return len(self.columns["done"])

    def unshipped(self) -> dict[str, list[Any]]:
        end = len(self)
        rows = {name: self.columns[name][self.shipped : end].tolist() for name, _ in COLUMNS}
        self.shipped = end
        return rows


class Tokens:
    """Real tokens of each tenant from the platform's token endpoint, renewed before they expire."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.tokens: dict[str, tuple[str, float]] = {}
        path = os.environ.get("INFERBOX_LOAD_CREDENTIALS", "")
        self.credentials: dict[str, dict[str, str]] = {}
        if path:
            with open(path, encoding="utf-8") as handle:
                self.credentials = json.load(handle)
        self.tenants = sorted({t.get("token_tenant") or t["tenant"] for t in TARGETS if t["auth"]})
        missing = [t for t in self.tenants if t not in self.credentials]
        if missing:
            raise RuntimeError(f"no client credentials for tenant(s) {missing} in INFERBOX_LOAD_CREDENTIALS")

    def fetch(self, tenant: str) -> None:
        token = PLAN["token"]
        creds = self.credentials[tenant]
        basic = base64.b64encode(f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - the plan's gateway URL
            token["base_url"].rstrip("/") + token["path"],
            data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
            headers={"Host": token["host"], "Authorization": f"Basic {basic}"},
            method="POST",
        )
        start = time.perf_counter()
        error: Exception | None = None
        length = 0
        try:
            with urllib.request.urlopen(request, timeout=PLAN["timeout_s"]) as response:  # noqa: S310
                body = response.read()
            length = len(body)
            value = json.loads(body)["access_token"]
            claims = json.loads(base64.urlsafe_b64decode(value.split(".")[1] + "=="))
            self.tokens[tenant] = (value, float(claims["exp"]))
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            error = exc
        self.environment.events.request.fire(
            request_type="TOKEN",
            name=f"token {tenant}",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=length,
            exception=error,
            context={"tenant": tenant},
        )

    def due(self, tenant: str) -> bool:
        _, expires = self.tokens.get(tenant, ("", 0.0))
        return time.time() > expires - float(PLAN["token"]["refresh_before_expiry_s"])

    def start(self) -> None:
        for tenant in self.tenants:
            self.fetch(tenant)
        gevent.spawn(self._renew)

    def _renew(self) -> None:
        # Bounded by the run: the process ends with the test.
        while True:
            for tenant in self.tenants:
                if self.due(tenant):
                    self.fetch(tenant)
            gevent.sleep(1.0)

    def get(self, tenant: str) -> str:
        if tenant not in self.tokens or self.due(tenant):
            self.fetch(tenant)
        return self.tokens.get(tenant, ("", 0.0))[0]


class Mix:
    """Smooth weighted round robin over the plan's targets: exact shares, evenly interleaved."""

    def __init__(self, offset: int) -> None:
        self.weights = [float(t["weight"]) for t in TARGETS]
        self.total = sum(self.weights)
        self.current = [0.0] * len(TARGETS)
        for _ in range(offset % max(1, len(TARGETS))):
            self.next()

    def next(self) -> int:
        best = 0
        for index, weight in enumerate(self.weights):
            self.current[index] += weight
            if self.current[index] > self.current[best]:
                best = index
        self.current[best] -= self.total
        return best


STATE: dict[str, Any] = {}


def _answer_ok(target: dict[str, Any], body: Any) -> bool:
    expect = target["expect"]
    if expect is None:
        return True
    if target["protocol"] == "v1":
        return isinstance(body, dict) and bool(body.get("predictions") == expect)
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
        return False
    return bool([int(v) for v in outputs[0].get("data", [])] == expect)


def classify(target: dict[str, Any], status: int, content: bytes, body: Any) -> tuple[int, str]:
    if status == 0:
        return CONNECTION, "no response (connection error or timeout)"
    if status == 429 and b"local_rate_limited" in content:
        return RATE_LIMITED, "429 from the gateway's rate limiter"
    if status != 200:
        return HTTP_ERROR, f"HTTP {status}"
    if not _answer_ok(target, body):
        return WRONG_ANSWER, "wrong answer"
    return OK, ""


def _mesh_tls(*args: Any, **kwargs: Any) -> Any:
    """Mutual TLS with the plan's mesh identity, for replicas behind a sidecar (identities are URI SANs)."""
    tls = PLAN["tls"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(tls["ca"])
    context.load_cert_chain(tls["cert"], tls["key"])
    return context


class ModelUser(FastHttpUser):
    """One connection of the load generator; in open mode it serves the shared timeline."""

    host = PLAN["token"]["base_url"]
    ssl_context_factory = staticmethod(_mesh_tls) if PLAN.get("tls") else None
    network_timeout = float(PLAN["timeout_s"])
    connection_timeout = float(PLAN["timeout_s"])

    def on_start(self) -> None:
        self.last_start = time.monotonic()

    def wait_time(self) -> float:
        if OPEN:
            return 0.0
        stage = stage_at(time.monotonic() - STATE["recorder"].t0_mono)
        if stage is None or stage["rate"] <= 0:
            return 1.0
        interval = float(stage["users"]) / float(stage["rate"])
        return max(0.0, self.last_start + interval - time.monotonic())

    @task
    def request(self) -> None:
        recorder: Recorder = STATE["recorder"]
        intended = time.monotonic()
        if not OPEN and stage_at(intended - recorder.t0_mono) is None:
            gevent.sleep(0.5)  # the stages are over; the shape stops the run
            return
        if OPEN:
            slot = STATE["schedule"].take()
            if slot is None:
                gevent.sleep(0.5)  # the timeline is over; the shape stops the run
                return
            intended = recorder.t0_mono + slot
            delay = intended - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
        self.last_start = time.monotonic()
        index = STATE["mix"].next()
        target = TARGETS[index]
        headers = {"Host": target["host"], "Content-Type": "application/json"}
        if target["auth"]:
            # A chaos probe stream may send another tenant's valid token ("token_tenant").
            tenant = target.get("token_tenant") or target["tenant"]
            headers["Authorization"] = f"Bearer {STATE['tokens'].get(tenant)}"
        elif target.get("token"):
            headers["Authorization"] = f"Bearer {target['token']}"  # a fixed (e.g. forged) token
        sent = time.monotonic()
        STATE["in_flight"] = STATE.get("in_flight", 0) + 1
        try:
            self._send(target, index, headers, intended, sent, recorder)
        except Exception:
            # Not an HTTP answer (e.g. a TLS setup failure): recorded as a request without a response,
            # so it counts as an error instead of vanishing from the run; Locust logs the exception.
            recorder.add(intended, sent, time.monotonic(), 0, CONNECTION, index)
            raise
        finally:
            STATE["in_flight"] -= 1

    def _send(
        self,
        target: dict[str, Any],
        index: int,
        headers: dict[str, str],
        intended: float,
        sent: float,
        recorder: Recorder,
    ) -> None:
        with self.client.request(
            target["method"],
            target["url"],
            name=target["label"],
            data=target["body"],
            headers=headers,
            catch_response=True,
            context={"tenant": target["tenant"], "via": target["via"]},
        ) as response:
            done = time.monotonic()
            status = int(response.status_code or 0)
            content = response.content or b""
            try:
                body = json.loads(content) if status == 200 else None
            except ValueError:
                body = None
            outcome, reason = classify(target, status, content, body)
            if OPEN:
                response.request_meta["response_time"] = (done - intended) * 1000
            if outcome == OK:
                response.success()
            else:
                response.failure(reason)
        recorder.add(intended, sent, done, status, outcome, index)


class ProfileShape(LoadTestShape):
    """The plan's stages: users per stage. The run stops END_GRACE_S after the last stage, so workers
    that started their timeline a little after the master still finish theirs."""

    def tick(self) -> tuple[int, float] | None:
        offset = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if offset >= TOTAL_S + END_GRACE_S:
            return None
        stage = stage_at(min(offset, TOTAL_S - 1e-6))
        if stage is None:
            return None
        users = int(stage["users"])
        return users, float(max(users, 1))


def _identity(environment: Any) -> tuple[int, int]:
    runner = environment.runner
    workers = int(PLAN.get("workers") or 0)
    if isinstance(runner, WorkerRunner):
        return max(0, int(runner.worker_index)), max(1, workers)
    return 0, 1


def _on_test_start(environment: Any, **kwargs: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        _write_json("started.json", {"t0_mono": time.monotonic(), "t0_wall": time.time()})
        return
    index, count = _identity(environment)
    STATE["tokens"] = Tokens(environment)
    STATE["tokens"].start()
    STATE["mix"] = Mix(index)
    recorder = Recorder()
    STATE["recorder"] = recorder
    if OPEN:
        STATE["schedule"] = Schedule(1.0 / count, index, int(PLAN["seed"]))
    if not isinstance(environment.runner, WorkerRunner):
        _write_json("started.json", {"t0_mono": recorder.t0_mono, "t0_wall": recorder.t0_wall})


def _on_test_stop(environment: Any, **kwargs: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message("inferbox_finish")  # to every worker
        _await_final_reports()
        return
    _finish(environment)


def _finish(environment: Any) -> None:
    """This process's records are complete: count the timeline; a worker sends the rest to the master."""
    recorder: Recorder | None = STATE.get("recorder")
    if recorder is None or STATE.get("finished"):
        return
    deadline = time.monotonic() + float(PLAN["timeout_s"])
    while STATE.get("in_flight", 0) and time.monotonic() < deadline:
        gevent.sleep(0.02)
    STATE["finished"] = True
    recorder.scheduled = STATE["schedule"].drain() if OPEN else None
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message("inferbox_final", _worker_part(environment, recorder))


def _on_finish_message(environment: Any, msg: Any, **kwargs: Any) -> None:
    gevent.spawn(_finish, environment)


def _worker_part(environment: Any, recorder: Recorder) -> dict[str, Any]:
    return {
        "worker": _identity(environment)[0],
        "t0_mono": recorder.t0_mono,
        "t0_wall": recorder.t0_wall,
        "scheduled": recorder.scheduled,
        "rows": recorder.unshipped(),
    }


def _await_final_reports() -> None:
    """On the master: waits (bounded) until every worker has sent its last rows."""
    expected = int(PLAN.get("workers") or 0)
    deadline = time.monotonic() + FINAL_REPORT_TIMEOUT_S
    while len(STATE.get("final", set())) < expected and time.monotonic() < deadline:
        gevent.sleep(0.05)


def _on_final_message(environment: Any, msg: Any, **kwargs: Any) -> None:
    STATE.setdefault("final", set()).add(msg.node_id)
    _on_worker_report(msg.node_id, {"inferbox": msg.data})


def _on_report_to_master(client_id: str, data: dict[str, Any], **kwargs: Any) -> None:
    recorder: Recorder | None = STATE.get("recorder")
    if recorder is None:
        return
    data["inferbox"] = _worker_part(STATE["environment"], recorder)


def _on_worker_report(client_id: str, data: dict[str, Any], **kwargs: Any) -> None:
    part = data.get("inferbox")
    if not part:
        return
    workers: dict[str, dict[str, Any]] = STATE.setdefault("workers", {})
    entry = workers.setdefault(
        client_id,
        {"worker": part["worker"], "t0_mono": part["t0_mono"], "t0_wall": part["t0_wall"], "scheduled": None},
    )
    if part["scheduled"] is not None:
        entry["scheduled"] = part["scheduled"]
    columns = entry.setdefault("columns", {name: array.array(code) for name, code in COLUMNS})
    for name, _ in COLUMNS:
        columns[name].extend(part["rows"][name])


def _on_init(environment: Any, **kwargs: Any) -> None:
    STATE["environment"] = environment
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("inferbox_final", _on_final_message)
    elif isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message("inferbox_finish", _on_finish_message)


def _on_quit(exit_code: int, **kwargs: Any) -> None:
    environment = STATE.get("environment")
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return
    parts: list[dict[str, Any]] = []
    if isinstance(environment.runner, MasterRunner):
        final = STATE.get("final", set())
        workers = STATE.get("workers", {})
        parts = sorted(({**part, "final": cid in final} for cid, part in workers.items()), key=lambda p: p["worker"])
    elif "recorder" in STATE:
        recorder: Recorder = STATE["recorder"]
        parts = [
            {
                "worker": 0,
                "t0_mono": recorder.t0_mono,
                "t0_wall": recorder.t0_wall,
                "scheduled": recorder.scheduled,
                "columns": recorder.columns,
            }
        ]
    _write_samples(parts)


# Registered here rather than with decorators: Locust's event hooks carry no types.
for _hook, _listener in (
    (events.test_start, _on_test_start),
    (events.test_stop, _on_test_stop),
    (events.report_to_master, _on_report_to_master),
    (events.worker_report, _on_worker_report),
    (events.init, _on_init),
    (events.quit, _on_quit),
):
    _hook.add_listener(_listener)  # type: ignore[no-untyped-call]


def _write_json(name: str, body: dict[str, Any]) -> None:
    folder = PLAN["output_dir"]
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(body, handle)
    os.replace(tmp, os.path.join(folder, name))


def _write_samples(parts: list[dict[str, Any]]) -> None:
    """samples.bin: per worker, each column's raw values in COLUMNS order; samples.json says where."""
    folder = PLAN["output_dir"]
    os.makedirs(folder, exist_ok=True)
    meta: dict[str, Any] = {"columns": [list(c) for c in COLUMNS], "byteorder": sys.byteorder, "workers": []}
    with open(os.path.join(folder, "samples.bin"), "wb") as out:
        for part in parts:
            columns = part["columns"]
            count = len(columns["done"])
            meta["workers"].append(
                {
                    "worker": part["worker"],
                    "t0_mono": part["t0_mono"],
                    "t0_wall": part["t0_wall"],
                    "scheduled": part["scheduled"],
                    "final": part.get("final", True),  # False: a worker's last rows never arrived
                    "count": count,
                    "offset": out.tell(),
                }
            )
            for name, _ in COLUMNS:
                columns[name][:count].tofile(out)
    _write_json("samples.json", meta)
