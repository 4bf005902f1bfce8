"""CEL rules of CRD schemas (``x-kubernetes-validations``), evaluated with cel-python.

The API server binds ``self`` to the value at the rule's place in the object. It adds Kubernetes'
own CEL libraries to the standard ones; the functions the pinned CRDs call that cel-python lacks
(string ``substring``/``split``/``lowerAscii``..., ``url``/``isURL``/``getScheme``..., list
``isSorted``/``sum``...) are given here. A rule that still cannot be evaluated (a function none of
these provide, a syntax cel-python does not parse) is reported as such, never counted as passing.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

# Lark (cel-python's parser) is slow to build; one environment serves every rule.
_ENV = celpy.Environment()


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    s = str(text)
    stop = len(s) if end is None else int(end)
    if int(start) < 0 or stop > len(s) or int(start) > stop:
        return CELEvalError(f"substring({start}, {end}) out of range for a string of length {len(s)}")
    return celtypes.StringType(s[int(start) : stop])


def _split(text: Any, separator: Any, limit: Any = None) -> Any:
    parts = str(text).split(str(separator)) if limit is None else str(text).split(str(separator), int(limit) - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _join(items: Any, separator: Any = "") -> Any:
    return celtypes.StringType(str(separator).join(str(i) for i in items))


def _index_of(value: Any, item: Any, start: Any = 0) -> Any:
    if isinstance(value, str):
        return celtypes.IntType(str(value).find(str(item), int(start)))
    items = list(value)
    return celtypes.IntType(items.index(item) if item in items else -1)


def _last_index_of(value: Any, item: Any) -> Any:
    if isinstance(value, str):
        return celtypes.IntType(str(value).rfind(str(item)))
    items = list(value)
    return celtypes.IntType(len(items) - 1 - items[::-1].index(item) if item in items else -1)


def _url(text: Any) -> Any:
    if not _is_url(text):
        return CELEvalError(f"URL parse error: {text}")
    return celtypes.StringType(str(text))


def _is_url(text: Any) -> Any:
    # Go's url.ParseRequestURI: an absolute URI or an absolute path, no fragment handling beyond that.
    s = str(text)
    parsed = urllib.parse.urlsplit(s)
    return celtypes.BoolType(bool(parsed.scheme and (parsed.netloc or parsed.path)) or s.startswith("/"))


def _get_scheme(url: Any) -> Any:
    return celtypes.StringType(urllib.parse.urlsplit(str(url)).scheme)


def _get_host(url: Any) -> Any:
    return celtypes.StringType(urllib.parse.urlsplit(str(url)).netloc)


def _get_hostname(url: Any) -> Any:
    return celtypes.StringType(urllib.parse.urlsplit(str(url)).hostname or "")


def _get_port(url: Any) -> Any:
    port = urllib.parse.urlsplit(str(url)).port
    return celtypes.StringType("" if port is None else str(port))


def _get_path(url: Any) -> Any:
    return celtypes.StringType(urllib.parse.urlsplit(str(url)).path)


def _is_ip(text: Any) -> Any:
    try:
        ipaddress.ip_address(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _is_cidr(text: Any) -> Any:
    try:
        ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType("/" in str(text))


def _is_sorted(items: Any) -> Any:
    values = list(items)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(values)))


def _sum(items: Any) -> Any:
    total: Any = celtypes.IntType(0)
    for item in items:
        total = total + item
    return total


def _find(text: Any, pattern: Any) -> Any:
    import re2

    found = re2.search(str(pattern), str(text))
    return celtypes.StringType(found.group(0) if found else "")


KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "substring": _substring,
    "split": _split,
    "join": _join,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "lowerAscii": lambda s: celtypes.StringType(str(s).lower()),
    "upperAscii": lambda s: celtypes.StringType(str(s).upper()),
    "trim": lambda s: celtypes.StringType(str(s).strip()),
    "replace": lambda s, old, new, n=-1: celtypes.StringType(str(s).replace(str(old), str(new), int(n))),
    "charAt": lambda s, i: celtypes.StringType(str(s)[int(i)] if int(i) < len(str(s)) else ""),
    "url": _url,
    "isURL": _is_url,
    "getScheme": _get_scheme,
    "getHost": _get_host,
    "getHostname": _get_hostname,
    "getPort": _get_port,
    "getEscapedPath": _get_path,
    "isIP": _is_ip,
    "isCIDR": _is_cidr,
    "isSorted": _is_sorted,
    "sum": _sum,
    "find": _find,
}


@dataclass(frozen=True)
class Outcome:
    """passed: the rule holds; ``error``: why it failed (a false result or an evaluation error);
    ``unevaluated``: why it could not be evaluated at all."""

    passed: bool
    error: str = ""
    unevaluated: str = ""


@functools.lru_cache(maxsize=4096)
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule), functions=KUBERNETES_FUNCTIONS)


_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")


def evaluate(rule: str, value: Any) -> Outcome:
    """``rule`` with ``self`` bound to ``value`` (plain JSON data)."""
    try:
        program = _program(rule)
    except Exception as exc:  # cel-python raises its own parse errors and Lark's
        return Outcome(False, unevaluated=f"cel-python cannot parse it: {type(exc).__name__}: {str(exc)[:120]}")
    try:
        result = program.evaluate({"self": json_to_cel(value)})
    except CELEvalError as exc:
        result = exc
    except Exception as exc:
        return Outcome(False, unevaluated=f"cel-python failed evaluating it: {type(exc).__name__}: {str(exc)[:120]}")
    if isinstance(result, CELEvalError):
        text = str(result.args[0]) if result.args else str(result)
        missing = _UNDECLARED.search(str(result.args))
        if missing and missing.group(1) not in ("self",):
            return Outcome(False, unevaluated=f"function {missing.group(1)}() is not available in cel-python")
        return Outcome(False, error=text[:200])
    if isinstance(result, celtypes.BoolType):
        return Outcome(bool(result), "" if result else "false")
    return Outcome(False, unevaluated=f"the rule evaluates to {type(result).__name__}, not a bool")
