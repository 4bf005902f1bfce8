"""Streamed chat completions under load: the locustfile reads server-sent events as they arrive (first
token, tokens, usage, a complete stream), the summary turns them into time to first token and
tokens per second, and the profile, its SLOs and its token budget are checked before a run.

The locustfile runs in a subprocess (importing Locust monkey-patches the interpreter with gevent).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from inferbox.contract import LoadClientPlace
from inferbox.load.plan import build_plan, resolve_targets, tenant_peak_rates
from inferbox.load.profiles import LoadProfile, LoadProfileError, MixEntry, Slo, SloFile, Stage, get_profile, load_slo
from inferbox.load.records import HTTP_ERROR, OK, RATE_LIMITED, WRONG_ANSWER, Records
from inferbox.load.runner import LOCUSTFILE
from inferbox.load.summary import summarise
from inferbox.manifests import ManifestSet
from inferbox.profile import ConformanceProfile
from inferbox.topology import read_topology

PLACE = LoadClientPlace((), "http://127.0.0.1:18080")
AI_GATEWAY = "http://127.0.0.1:18081"


def frame(content: str | None = None, usage: int | None = None, role: bool = False) -> str:
    """One SSE frame of a chat.completion.chunk, as OpenAI's API (and the n-gram models) send them."""
    chunk: dict[str, Any] = {"object": "chat.completion.chunk", "model": "m", "choices": []}
    if role:
        chunk["choices"] = [{"index": 0, "delta": {"role": "assistant", "content": ""}}]
    elif content is not None:
        chunk["choices"] = [{"index": 0, "delta": {"content": content}}]
    if usage is not None:
        chunk["usage"] = {"prompt_tokens": 7, "completion_tokens": usage, "total_tokens": 7 + usage}
    return f"data: {json.dumps(chunk)}\n\n"


DONE = "data: [DONE]\n\n"

STREAM_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("lf", sys.argv[1])
lf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lf)
out = {}
for name, pieces in json.loads(sys.argv[2]).items():
    stream = lf.ChatStream()
    for at, text in pieces:
        stream.feed(text.encode(), at)
    out[name] = {"first": stream.first, "chunks": stream.chunks, "usage": stream.usage_tokens}
    out[name]["verdict"] = stream.verdict()
limited = b"HTTP/1.1 429 Too Many Requests\\r\\nX-Envoy-RateLimited: true\\r\\ncontent-length: 0\\r\\n\\r\\n"
other = b"HTTP/1.1 429 Too Many Requests\\r\\ncontent-length: 22\\r\\n\\r\\nx-envoy-ratelimited: no"
out["heads"] = [lf.rate_limit_head(limited), lf.rate_limit_head(other)]
target = {"protocol": "chat-stream", "expect": None, "chat_stream": True}
out["global_429"] = lf.classify(target, 429, b"", None, True)[0]
out["plain_429"] = lf.classify(target, 429, b"", None)[0]
print(json.dumps(out))
"""

# A streaming server and the open-loop dispatcher in one gevent process: the server waits FIRST_S
# before the first token and GAP_S between tokens, so the measured figures have known floors.
DISPATCH_PROBE = """
import importlib.util, json, math, sys, time
spec = importlib.util.spec_from_file_location("lf", sys.argv[1])
lf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lf)
import gevent, gevent.server
FIRST_S, GAP_S, TOKENS = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
frames = json.loads(sys.argv[5])

def chunk(sock, text):
    data = text.encode()
    sock.sendall(b"%x\\r\\n" % len(data) + data + b"\\r\\n")

def handle(sock, _):
    buffered = b""
    while True:
        while b"\\r\\n\\r\\n" not in buffered:
            data = sock.recv(65536)
            if not data:
                return
            buffered += data
        head, _, rest = buffered.partition(b"\\r\\n\\r\\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\\r\\n")[0])
        while len(rest) < length:
            rest += sock.recv(65536)
        buffered = rest[length:]
        path = head.split(b" ")[1]
        if path == b"/limited":
            sock.sendall(b"HTTP/1.1 429 Too Many Requests\\r\\nx-envoy-ratelimited: true\\r\\n")
            sock.sendall(b"content-length: 0\\r\\n\\r\\n")
            continue
        sock.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-type: text/event-stream\\r\\n")
        sock.sendall(b"transfer-encoding: chunked\\r\\n\\r\\n")
        chunk(sock, frames["role"])
        gevent.sleep(FIRST_S)
        for i in range(TOKENS):
            if i:
                gevent.sleep(GAP_S)
            chunk(sock, frames["token"])
        if path == b"/broken":  # the stream ends without its usage and [DONE]
            sock.sendall(b"0\\r\\n\\r\\n")
            continue
        chunk(sock, frames["usage"] + frames["done"])
        sock.sendall(b"0\\r\\n\\r\\n")

server = gevent.server.StreamServer(("127.0.0.1", 0), handle)
server.start()
for target in lf.TARGETS:
    target["url"] = target["url"].replace("PORT", str(server.server_port))

class Events:
    class request:
        @staticmethod
        def fire(**kwargs):
            pass

class Environment:
    events = Events

lf.STATE["mix"] = lf.Mix(0)
dispatcher = lf.Dispatcher(Environment(), 3)
recorder = lf.Recorder()
dispatcher.warm()
dispatcher.start(lf.Schedule(1.0, 0, 1), recorder)
dispatcher.run()
deadline = time.monotonic() + 10
while lf.STATE.get("in_flight") and time.monotonic() < deadline:
    gevent.sleep(0.01)
columns = {name: [None if isinstance(v, float) and math.isnan(v) else v for v in values.tolist()]
           for name, values in recorder.columns.items()}
print(json.dumps(columns))
"""


def _plan(tmp_path: Path, targets: list[dict[str, Any]], rate: float = 1.0) -> Path:
    path = tmp_path / "plan.json"
    plan = {
        "mode": "open",
        "arrival": "constant",
        "seed": 1,
        "stages": [{"seconds": 1, "rate": rate, "users": 1}],
        "targets": targets,
        "token": {"base_url": "http://x"},
        "timeout_s": 5,
    }
    path.write_text(json.dumps(plan))
    return path


def _run(tmp_path: Path, probe: str, targets: list[dict[str, Any]], *args: str, rate: float = 1.0) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", probe, str(LOCUSTFILE), *args],
        env={"INFERBOX_LOAD_PLAN": str(_plan(tmp_path, targets, rate)), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _target(label: str, path: str) -> dict[str, Any]:
    return {
        "label": label,
        "tenant": "tenant-b",
        "weight": 1,
        "protocol": "chat-stream",
        "via": "gateway",
        "method": "POST",
        "url": f"http://127.0.0.1:PORT{path}",
        "host": "ai",
        "auth": False,
        "body": "{}",
        "expect": None,
        "chat_stream": True,
    }


def test_the_stream_reader_times_the_first_token_and_counts_tokens(tmp_path: Path) -> None:
    first = frame("Hello")
    whole = frame(role=True) + first + frame(" world") + frame(usage=2) + DONE
    cases = {
        # The first content frame arrives in two reads: the token counts from the read that completed it;
        # the role chunk before it (empty content) is not a token.
        "split": [
            [1.0, frame(role=True) + first[:20]],
            [1.5, first[20:]],
            [2.0, frame(" world") + frame(usage=2) + DONE],
        ],
        "no_usage": [[1.0, frame(role=True) + frame("a") + frame("b") + frame("c") + DONE]],
        "no_done": [[1.0, frame(role=True) + frame("a") + frame(usage=1)]],
        "no_token": [[1.0, frame(role=True) + frame(usage=0) + DONE]],
        "not_json": [[1.0, frame("a") + "data: {oops\n\n" + DONE]],
        "cut_inside_an_event": [[1.0, whole + "data: {"]],
        "after_done": [[1.0, whole + frame("late")]],
        "crlf": [[3.0, whole.replace("\n", "\r\n")]],
    }
    out = _run(tmp_path, STREAM_PROBE, [_target("x", "/")], json.dumps(cases))
    assert out["split"] == {"first": 1.5, "chunks": 2, "usage": 2, "verdict": [OK, ""]}
    assert out["no_usage"] == {"first": 1.0, "chunks": 3, "usage": None, "verdict": [OK, ""]}
    assert out["crlf"] == {"first": 3.0, "chunks": 2, "usage": 2, "verdict": [OK, ""]}
    for name, reason in (
        ("no_done", "did not end with data: [DONE]"),
        ("no_token", "carried no token"),
        ("not_json", "not JSON"),
        ("cut_inside_an_event", "ended inside an event"),
        ("after_done", "after data: [DONE]"),
    ):
        outcome, detail = out[name]["verdict"]
        assert outcome == WRONG_ANSWER, (name, out[name])
        assert reason in detail, (name, detail)
    assert out["no_token"]["first"] is None
    # Envoy's global rate limit (the AI Gateway's token budget) says so in a header, not the body.
    assert out["heads"] == [True, False]
    assert (out["global_429"], out["plain_429"]) == (RATE_LIMITED, HTTP_ERROR)


def test_the_dispatcher_records_first_token_tokens_and_outcome_of_real_streams(tmp_path: Path) -> None:
    first_s, gap_s, tokens = 0.25, 0.04, 6
    frames = {"role": frame(role=True), "token": frame("tok"), "usage": frame(usage=tokens), "done": DONE}
    targets = [_target("ok", "/ok"), _target("limited", "/limited"), _target("broken", "/broken")]
    out = _run(tmp_path, DISPATCH_PROBE, targets, str(first_s), str(gap_s), str(tokens), json.dumps(frames), rate=3.0)
    rows = {
        targets[target]["label"]: dict(zip(out, values, strict=True))
        for target, values in zip(out["target"], zip(*out.values(), strict=True), strict=True)
    }
    assert set(rows) == {"ok", "limited", "broken"}, rows
    ok, limited, broken = rows["ok"], rows["limited"], rows["broken"]
    assert (ok["status"], ok["outcome"], ok["tokens"], ok["chunks"]) == (200, OK, tokens, tokens)
    # The server held the first token back first_s after the request arrived, which is after it was due.
    ttft = ok["first"] - ok["intended"]
    assert first_s <= ttft < first_s + 2.0, ttft
    # Tokens after the first came gap_s apart at the earliest: the stream's own rate cannot exceed 1/gap_s.
    after_first = ok["done"] - ok["first"]
    assert after_first >= (tokens - 1) * gap_s, after_first
    assert ok["done"] - ok["intended"] >= ttft
    assert (limited["status"], limited["outcome"], limited["first"], limited["tokens"]) == (429, RATE_LIMITED, None, -1)
    assert (broken["status"], broken["outcome"], broken["tokens"], broken["chunks"]) == (200, WRONG_ANSWER, -1, tokens)


PLAN = {
    "targets": [
        {"label": "iris", "tenant": "tenant-a", "via": "gateway"},
        {"label": "chat", "tenant": "tenant-b", "via": "gateway", "chat_stream": True},
    ],
    "stages": [{"seconds": 10, "rate": 10, "users": 2}],
    "workers": 0,
}
PROFILE = LoadProfile("t", "t", (Stage(10, 10, 2),), warmup_s=2.0)
STREAM_SLOS = SloFile(
    "t",
    (
        Slo("ttft-p99", "ttft_ms/p99", 300, "<=", "ms", "ttft"),
        Slo("tokens-per-second", "tokens_per_s", 5, ">=", "tokens/s", "all"),
        Slo("stream-tokens-per-second-p10", "stream_tokens_per_s/p10", 10, ">=", "tokens/s", "each"),
    ),
    Path("t.yaml"),
)


def _stream_records(rows: list[tuple[int, int, float, float, float, int, int]]) -> Records:
    """Rows of (target, outcome, intended, first, done, usage tokens, chunks); first NaN: no token."""
    n = len(rows)
    target, outcome, intended, first, done, tokens, chunks = (np.array(c) for c in zip(*rows, strict=True))
    return Records(
        intended.astype(float),
        intended.astype(float),
        done.astype(float),
        np.where(outcome == RATE_LIMITED, 429, 200),
        outcome.astype(np.int64),
        target.astype(np.int64),
        np.zeros(n, dtype=np.int64),
        1000.0,
        5.0,
        n,
        first=first.astype(float),
        tokens=tokens.astype(np.int64),
        chunks=chunks.astype(np.int64),
    )


def test_the_summary_reports_ttft_and_tokens_per_second_from_the_streams() -> None:
    nan = math.nan
    records = _stream_records(
        [
            (1, OK, 3.0, 3.1, 3.5, 9, 9),  # TTFT 100 ms, 8 tokens in 0.4 s: 20 tokens/s
            (1, OK, 4.0, 4.2, 4.6, -1, 5),  # no usage: 5 counted chunks, 4 in 0.4 s: 10 tokens/s
            (1, OK, 5.0, 5.05, 5.05, 1, 1),  # one token: no rate of its own
            (1, RATE_LIMITED, 6.0, nan, 6.001, -1, 0),  # a 429 is no stream and no latency
            (1, OK, 1.0, 1.9, 2.0, 50, 50),  # in the warm-up: not measured
            (0, OK, 7.0, nan, 7.01, -1, -1),  # a predictive request beside the streams
        ]
    )
    summary = summarise(records, PLAN, PROFILE, STREAM_SLOS, {})
    assert summary["ttft_ms"]["p50"] == pytest.approx(100.0)
    assert summary["ttft_ms"]["p99"] == pytest.approx(200.0)
    assert summary["ttft_ms"]["count"] == 3
    assert summary["streams"]["completion_tokens"] == 9 + 5 + 1
    assert summary["streams"]["tokens_from"] == {"usage": 2, "counted_chunks": 1}
    assert summary["streams"]["without_a_rate"] == 1
    assert summary["tokens_per_s"] == pytest.approx(15 / 8)  # over the 8-second window
    rate = summary["stream_tokens_per_s"]
    assert (rate["p50"], rate["p10"], rate["min"], rate["count"]) == (pytest.approx(10), pytest.approx(10), 10, 2)
    assert summary["by_target"]["chat"]["ttft_ms"]["count"] == 3
    assert "ttft_ms" not in summary["by_target"]["iris"]
    assert summary["requests"]["rate_limited"] == 1
    assert summary["latency_ms"]["count"] == 4, "429s are not latency samples"
    verdicts = {v["name"]: v for v in summary["slos"]}
    assert verdicts["ttft-p99"]["passed"]
    assert not verdicts["tokens-per-second"]["passed"], "1.9 tokens/s is below the bound of 5"
    assert verdicts["stream-tokens-per-second-p10"]["passed"]


def test_streams_without_data_fail_their_slos() -> None:
    nan = math.nan
    only_errors = _stream_records([(1, RATE_LIMITED, 3.0, nan, 3.1, -1, 0), (0, OK, 4.0, nan, 4.01, -1, -1)])
    summary = summarise(only_errors, PLAN, PROFILE, STREAM_SLOS, {})
    assert summary["ttft_ms"] == {}
    assert summary["tokens_per_s"] is None
    assert summary["streams"]["answered"] == 0
    verdicts = {v["name"]: v for v in summary["slos"]}
    for name in ("ttft-p99", "tokens-per-second", "stream-tokens-per-second-p10"):
        assert not verdicts[name]["passed"], name
        assert "no data" in verdicts[name]["detail"]
    assert not summary["passed"]


def _write(tmp_path: Path, profiles: dict[str, Any], **spec: Any) -> tuple[Path, Path]:
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump({"kind": "LoadProfiles", "profiles": profiles}))
    slo_dir = tmp_path / "slo"
    slo_dir.mkdir(exist_ok=True)
    base = {"latencyMs": {"p50": 5, "p99": 9}, "maxErrorRatio": 0, "minAchievedRatio": 0.95}
    for name in profiles:
        body = {"kind": "LoadSLO", "metadata": {"name": name}, "spec": {**base, **spec}}
        (slo_dir / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return path, slo_dir


CHAT = {"tenant": "tenant-b", "model": "pydoc-ngram", "protocol": "chat-stream", "maxTokens": 16}


def test_the_shipped_chat_stream_profile_streams_within_the_token_budget(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    load = get_profile("chat-stream")
    slo = load_slo("chat-stream")
    assert load.streams
    assert {"ttft-p50", "ttft-p99", "tokens-per-second", "rate-limited-ratio"} <= set(slo.names())
    plan = build_plan(load, slo, read_topology(manifests), profile, PLACE, tmp_path, ai_gateway_url=AI_GATEWAY)
    (target,) = plan["targets"]
    assert target["url"] == "http://127.0.0.1:18081/v1/chat/completions"
    assert (target["host"], target["tenant"], target["auth"], target["chat_stream"]) == (
        "127.0.0.1:18081",
        "tenant-b",
        True,
        True,
    )
    body = json.loads(target["body"])
    assert body["model"] == "pydoc-ngram"
    assert (body["stream"], body["stream_options"], body["max_tokens"]) == (True, {"include_usage": True}, 16)
    assert "client_secret" not in str(plan)
    with pytest.raises(LoadProfileError, match="no AI Gateway address"):
        build_plan(load, slo, read_topology(manifests), profile, PLACE, tmp_path)


def test_streams_over_the_token_budget_are_refused_unless_429s_are_allowed(
    manifests: ManifestSet, profile: ConformanceProfile, tmp_path: Path
) -> None:
    topology = read_topology(manifests)
    # 30 s at 20/s with at most 32 prompt characters + 16 tokens: 28,800 tokens in one window.
    heavy = {"stages": [{"seconds": 30, "rate": 20}], "mix": [CHAT]}
    path, slo_dir = _write(tmp_path, {"p": heavy})
    budget = profile.require_ai_gateway().tokens_per_tenant_per_minute
    with pytest.raises(LoadProfileError, match=rf"up to 28800 tokens of tenant-b .* budget of {budget}"):
        build_plan(get_profile("p", path), load_slo("p", slo_dir), topology, profile, PLACE, tmp_path, None, AI_GATEWAY)
    path, slo_dir = _write(tmp_path, {"p": heavy}, maxRateLimitedRatio=0.5)
    build_plan(get_profile("p", path), load_slo("p", slo_dir), topology, profile, PLACE, tmp_path, None, AI_GATEWAY)
    # The AI Gateway has no request budget: streams do not count against the gateway's requests/s.
    targets = resolve_targets(get_profile("p", path), topology)
    assert [t.model for t in targets] == ["pydoc-ngram"]
    assert tenant_peak_rates(get_profile("p", path), targets) == {}


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"mix": [{**CHAT, "via": "direct"}]}, "through the AI Gateway only"),
        ({"mix": [{"tenant": "tenant-a", "protocol": "v1", "maxTokens": 3}]}, "only apply to protocol chat-stream"),
        ({"mix": [{**CHAT, "prompt": " "}]}, "prompt must be a non-empty string"),
        ({"mix": [{**CHAT, "maxTokens": 0}]}, "maxTokens must be at least 1"),
        ({"mix": [CHAT], "mode": "closed"}, "needs open loop"),
    ],
)
def test_bad_chat_stream_entries_are_refused(tmp_path: Path, profile: dict[str, Any], message: str) -> None:
    path, _ = _write(tmp_path, {"p": {"stages": [{"seconds": 10, "rate": 1}], **profile}})
    with pytest.raises(LoadProfileError, match=message):
        get_profile("p", path)


def test_a_chat_stream_mix_needs_a_generative_model(manifests: ManifestSet, tmp_path: Path) -> None:
    path, _ = _write(
        tmp_path, {"p": {"stages": [{"seconds": 10, "rate": 1}], "mix": [{**CHAT, "model": "sklearn-iris"}]}}
    )
    with pytest.raises(LoadProfileError, match="does not serve as a generative model"):
        resolve_targets(get_profile("p", path), read_topology(manifests))
    predictive = LoadProfile("q", "", (Stage(10, 1, 1),), mix=(MixEntry(tenant="tenant-b", protocol="v1"),))
    with pytest.raises(LoadProfileError, match="predictive model"):
        resolve_targets(predictive, read_topology(manifests))


def test_stream_slos_parse_and_refuse_unknown_percentiles(tmp_path: Path) -> None:
    profiles = {"p": {"stages": [{"seconds": 10, "rate": 1}], "mix": [CHAT]}}
    _, slo_dir = _write(
        tmp_path, profiles, ttftMs={"p50": 50, "p99": 500}, minTokensPerSecond=3, minStreamTokensPerSecond={"p10": 2}
    )
    gates = {s.name: s for s in load_slo("p", slo_dir).slos}
    assert (gates["ttft-p99"].metric, gates["ttft-p99"].op, gates["ttft-p99"].bound) == ("ttft_ms/p99", "<=", 500)
    assert (gates["tokens-per-second"].metric, gates["tokens-per-second"].op) == ("tokens_per_s", ">=")
    assert gates["stream-tokens-per-second-p10"].metric == "stream_tokens_per_s/p10"
    _, slo_dir = _write(tmp_path, profiles, minStreamTokensPerSecond={"p99": 2})
    with pytest.raises(LoadProfileError, match="unknown field"):
        load_slo("p", slo_dir)
