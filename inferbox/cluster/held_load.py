"""Held load on a cluster (``Platform.hold_requests``): slow predict requests sent from the tenant's
probe pod, in rounds.

Each round is one program run in the probe through the exec API (the probe image has Python, not
curl): ``count`` threads, each sending one request after another to the model's cluster-local
address (``<isvc>-predictor.<namespace>.svc.cluster.local``, what KServe publishes for callers
inside the cluster) until the round's time is up, every body uploaded in pieces over ``seconds``.
The probe's sidecar sends them with the tenant's mesh identity through Knative's local gateway,
which splits them between revisions as the route says (through the activator while a revision has
none ready). The tenants' AuthorizationPolicies admit that hop with a token of the tenant. One JSON
line per request says how it ended.
"""

from __future__ import annotations

import json
from typing import Any

from inferbox.cluster.mesh import PROBE_NAME, Exec, Probe, classify
from inferbox.held_load import BODY_PIECES
from inferbox.mesh import Outcome, ProbeResult
from inferbox.topology import Model

ROUND_S = 5.0  # one exec's length: how late the hold stops after it is asked to
CLUSTER_LOCAL_PORT = 80
READ_TIMEOUT_S = 60.0  # the model's answer after the body (a cold start through the activator included)

HOLD_PROGRAM = r"""
import http.client, json, sys, threading, time
a = json.loads(sys.argv[1])
body = a["body"].encode()
step = max(1, -(-len(body) // a["pieces"]))
parts = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
pause = a["seconds"] / max(1, len(parts) - 1)
end = time.monotonic() + a["run_s"]
lock = threading.Lock()
def out(d):
    with lock:
        print(json.dumps(d), flush=True)
def one():
    conn = http.client.HTTPConnection(a["host"], a["port"], timeout=a["timeout"])
    try:
        try:
            conn.putrequest("POST", a["path"], skip_host=True)
            for k, v in a["headers"].items():
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
        except OSError as exc:
            out({"stage": "connect", "error": str(exc)})
            time.sleep(a["seconds"])  # no tight loop of refused connections
            return
        try:
            for i, p in enumerate(parts):
                if i:
                    time.sleep(pause)  # the caller's upload speed
                conn.send(p)
            r = conn.getresponse()
            text = r.read().decode(errors="replace")
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
            out({"stage": "http", "error": type(exc).__name__ + ": " + str(exc)})
            return
        except OSError as exc:
            out({"stage": "timeout", "error": str(exc)})
            return
        out({"stage": "response", "status": r.status, "body": text[:2000],
             "headers": {k.lower(): v for k, v in r.getheaders()}})
    finally:
        conn.close()
def worker():
    while time.monotonic() < end:
        one()
threads = [threading.Thread(target=worker) for _ in range(a["count"])]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def cluster_local_host(model: Model) -> str:
    return f"{model.name}-predictor.{model.tenant}.svc.cluster.local"


def hold_args(model: Model, token: str, payload: Any, count: int, seconds: float, run_s: float) -> dict[str, Any]:
    host = cluster_local_host(model)
    return {
        "host": host,
        "port": CLUSTER_LOCAL_PORT,
        "path": f"/v1/models/{model.name}:predict",
        "headers": {"Host": host, "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        "body": json.dumps(payload),
        "pieces": BODY_PIECES,
        "count": count,
        "seconds": seconds,
        "run_s": run_s,
        "timeout": READ_TIMEOUT_S,
    }


def hold_round(run: Exec, probe: Probe, args: dict[str, Any]) -> list[ProbeResult]:
    """One round in the probe; every request's result (a round that printed nothing is one error)."""
    out = run(probe.namespace, PROBE_NAME, "probe", ["python3", "-c", HOLD_PROGRAM, json.dumps(args)])
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        return [ProbeResult(Outcome.ERROR, detail=f"the probe's hold printed nothing: {out[-300:]!r}")]
    return [classify(json.loads(line), through_sidecar=True) for line in lines]
