"""The metric and label names a PromQL expression uses, read with a small lexer.

Enough of PromQL's grammar to tell names apart: strings, label matchers ``{...}``, grouping
clauses (``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``), function calls,
aggregation operators, keywords and durations. It does not check the syntax: Prometheus does
(``promtool`` offline, the query API on a target). Grafana variables (``$__rate_interval``) are
read as opaque tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)(?:ms|s|m|h|d|w|y)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<variable>\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},@])
    """,
    re.VERBOSE,
)
AGGREGATIONS = {
    "sum", "avg", "count", "min", "max", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"offset", "bool", "and", "or", "unless", "atan2", "inf", "nan", "start", "end"} | AGGREGATIONS | GROUPING


@dataclass
class Names:
    metrics: set[str] = field(default_factory=set)
    # Labels used in each metric's matchers.
    matcher_labels: dict[str, set[str]] = field(default_factory=dict)
    # Labels used in grouping clauses anywhere in the expression.
    grouping_labels: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise ValueError(f"cannot read PromQL at {expr[pos : pos + 20]!r} in {expr!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
    return out


def names(expr: str) -> Names:
    found = Names()
    toks = tokens(expr)
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "ident" and text in GROUPING and nxt[1] == "(":
            j = i + 2
            while j < len(toks) and toks[j][1] != ")":
                if toks[j][0] == "ident":
                    found.grouping_labels.add(toks[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "ident" and text not in KEYWORDS and nxt[1] != "(":
            found.metrics.add(text)
            labels = found.matcher_labels.setdefault(text, set())
            if nxt[1] == "{":
                i = _matchers(toks, i + 2, labels)
                continue
        elif kind == "op" and text == "{":
            # A selector without a metric name: {__name__="..."} or {job="..."}.
            i = _matchers(toks, i + 1, found.matcher_labels.setdefault("", set()))
            continue
        i += 1
    return found


def _matchers(toks: list[tuple[str, str]], start: int, labels: set[str]) -> int:
    i = start
    while i < len(toks) and toks[i][1] != "}":
        if toks[i][0] == "ident" and i + 1 < len(toks) and toks[i + 1][1] in ("=", "!=", "=~", "!~"):
            labels.add(toks[i][1])
        i += 1
    return i + 1
