"""The locustfile's open-loop timeline, weighted mix and answer checks, run in a subprocess
(importing Locust monkey-patches the interpreter with gevent), and its portability to the official
Locust image (standard library and Locust only)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from inferbox.load.runner import LOCUSTFILE

PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("lf", sys.argv[1])
lf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lf)
out = {}
one = lf.Schedule(1.0, 0, 1)
out["single"] = [x for x in (one.take() for _ in range(5)) if x is not None]
out["single_total"] = one.drain()
a, b = lf.Schedule(0.5, 0, 1), lf.Schedule(0.5, 1, 1)
out["pair"] = sorted(x for x in [a.take() for _ in range(3)] + [b.take() for _ in range(3)] if x is not None)
out["pair_total"] = a.drain() + b.drain()
mix = lf.Mix(0)
out["mix"] = [mix.next() for _ in range(8)]
target = {"protocol": "v2", "expect": [0, 3]}
out["v2_ok"] = lf.classify(target, 200, b"", {"outputs": [{"data": [0.0, 3.0]}]})[0]
out["v2_wrong"] = lf.classify(target, 200, b"", {"outputs": [{"data": [1, 3]}]})[0]
out["limited"] = lf.classify(target, 429, b"local_rate_limited", None)[0]
out["other_429"] = lf.classify(target, 429, b"slow down", None)[0]
out["dead"] = lf.classify(target, 0, b"", None)[0]
head = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 2\\r\\n\\r\\n"
def quick(data):
    found = lf.quick_answer(data)
    return "more" if isinstance(found, lf._More) else None if found is None else [found[0], found[1].decode(), found[2]]
out["quick"] = [
    quick(head + b"{}"),
    quick(head + b"{"),
    quick(head[:20]),
    quick(b"HTTP/1.1 503 Unavailable\\r\\nconnection: close\\r\\ncontent-length: 0\\r\\n\\r\\n"),
    quick(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n2\\r\\n{}\\r\\n0\\r\\n\\r\\n"),
    quick(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n{}"),
    quick(b"HTTP/1.1 100 Continue\\r\\n\\r\\n"),
    quick(head + b"{}extra"),
]
lf.STATE["tokens"] = {"t": "own", "u": "other"}
out["bearer"] = [
    lf.bearer_token({"tenant": "t", "auth": True}),
    lf.bearer_token({"tenant": "t", "auth": True, "token_tenant": "u"}),
    lf.bearer_token({"tenant": "t", "auth": False, "token": "forged"}),
    lf.bearer_token({"tenant": "t", "auth": False}),
]
print(json.dumps(out))
"""


def _probe(tmp_path: Path, plan: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / "plan.json"
    base = {"mode": "open", "seed": 3, "targets": TARGETS, "token": {"base_url": "http://x"}, "timeout_s": 1}
    path.write_text(json.dumps({**base, **plan}))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(LOCUSTFILE)],
        env={"INFERBOX_LOAD_PLAN": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


TARGETS = [
    {"label": "x", "tenant": "t", "weight": 3, "protocol": "v1", "expect": None},
    {"label": "y", "tenant": "t", "weight": 1, "protocol": "v1", "expect": None},
]


def test_constant_timeline_is_exact_and_workers_interleave(tmp_path: Path) -> None:
    plan = {
        "arrival": "constant",
        "stages": [{"seconds": 2, "rate": 10, "users": 2}, {"seconds": 1, "rate": 40, "users": 2}],
        "targets": TARGETS,
    }
    out = _probe(tmp_path, plan)
    assert [round(x, 9) for x in out["single"]] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert out["single_total"] == 2 * 10 + 1 * 40
    # Two workers at half the rate each: the same timeline, alternating.
    assert [round(x, 6) for x in out["pair"]] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert out["pair_total"] == 60
    # Smooth weighted round robin: 3:1, evenly interleaved.
    assert (out["mix"].count(0), out["mix"].count(1)) == (6, 2)
    assert out["mix"][:4].count(1) == 1


def test_poisson_timeline_has_the_right_mean_rate(tmp_path: Path) -> None:
    plan = {"arrival": "poisson", "stages": [{"seconds": 200, "rate": 50, "users": 2}]}
    out = _probe(tmp_path, plan)
    expected = 200 * 50
    # 5 standard deviations of a Poisson count: a false failure is rarer than 1 in a million.
    assert abs(out["single_total"] - expected) <= 5 * expected**0.5
    gaps = [b - a for a, b in zip(out["single"], out["single"][1:], strict=False)]
    assert len(set(gaps)) > 1, "Poisson gaps vary"


def test_answers_and_statuses_are_classified(tmp_path: Path) -> None:
    out = _probe(tmp_path, {"arrival": "constant", "stages": [{"seconds": 1, "rate": 1, "users": 1}]})
    assert (out["v2_ok"], out["v2_wrong"], out["limited"], out["other_429"], out["dead"]) == (0, 3, 1, 2, 4)


def test_a_probe_sends_the_token_it_names(tmp_path: Path) -> None:
    """A chaos probe's refused streams carry another tenant's token or a forged one, never the
    target tenant's own (else they would be answered and prove nothing)."""
    out = _probe(tmp_path, {"arrival": "constant", "stages": [{"seconds": 1, "rate": 1, "users": 1}]})
    assert out["bearer"] == ["own", "other", "forged", ""]


def test_the_locustfile_needs_only_the_standard_library_and_locust() -> None:
    """The official Locust image has Locust and what Locust itself requires (gevent, geventhttpclient)."""
    locust_brings = {
        re.split(r"[^A-Za-z0-9_.-]", requirement, maxsplit=1)[0].lower().replace("-", "_")
        for requirement in importlib.metadata.requires("locust") or []
        if "extra ==" not in requirement
    }
    modules: set[str] = set()
    for node in ast.walk(ast.parse(LOCUSTFILE.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert {"gevent", "geventhttpclient"} <= locust_brings, locust_brings
    assert modules - set(sys.stdlib_module_names) - {"__future__"} <= {"locust"} | locust_brings, modules


def test_the_quick_parser_reads_the_common_answer_and_hands_over_the_rest(tmp_path: Path) -> None:
    out = _probe(tmp_path, {"arrival": "constant", "stages": [{"seconds": 1, "rate": 1, "users": 1}]})
    complete, body_short, head_short, closing, chunked, http10, interim, too_long = out["quick"]
    assert complete == [200, "{}", True]
    assert body_short == head_short == "more"
    assert closing == [503, "", False], "Connection: close ends the keep-alive"
    assert [chunked, http10, interim] == [None, None, None], "the full parser reads these"
    assert too_long is None, "bytes beyond the announced length are not this answer's"
