"""Load profiles (load/profiles.yaml) and their SLO files (load/slo/<profile>.yaml).

A profile says what load to offer: stages of a request rate for some seconds with a pool of Locust
users, the mode (open or closed loop), the arrival process, a warm-up excluded from the verdicts,
and the mix of tenants, models, protocols and paths. Its SLO file says what the measurements must
show. Both live apart from the manifests, so a mutant of the platform cannot move them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferbox.data import data_path
from inferbox.errors import InferboxError

LOAD_DIR = data_path("load")
DEFAULT_PROFILES = LOAD_DIR / "profiles.yaml"
DEFAULT_SLO_DIR = LOAD_DIR / "slo"
MODES = ("open", "closed")
ARRIVALS = ("constant", "poisson")
PROTOCOLS = ("v1", "v2")  # KServe's, for predictive models
# OpenAI's streamed chat completions through the AI Gateway, for generative models.
CHAT_STREAM = "chat-stream"
MIX_PROTOCOLS = (*PROTOCOLS, CHAT_STREAM)
DEFAULT_PROMPT = "What does the with statement do?"
DEFAULT_MAX_TOKENS = 16
PATHS = ("gateway", "direct")
PERCENTILES = ("p50", "p90", "p99", "p99.9", "max")
# Per-stream tokens/s: higher is better, so its tail is the slow side (p10: the slowest 10%).
RATE_PERCENTILES = ("p50", "p10", "p1", "min")


class LoadProfileError(InferboxError):
    """A load profile or SLO file that cannot be used."""


@dataclass(frozen=True)
class Stage:
    seconds: float
    rate: float  # requests per second, all tenants together
    users: int  # open loop: connections opened up front (the pool grows); closed loop: the simulated clients


@dataclass(frozen=True)
class MixEntry:
    """A share of the requests. Empty tenant/model: every model; protocol None: v1 and v2 alike.

    With protocol ``chat-stream`` the entry's models are the generative ones, each request a streamed
    chat completion of ``prompt`` with at most ``max_tokens`` tokens through the AI Gateway."""

    weight: float = 1.0
    tenant: str | None = None
    model: str | None = None
    protocol: str | None = None
    via: str = "gateway"
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = DEFAULT_MAX_TOKENS


@dataclass(frozen=True)
class LoadProfile:
    name: str
    description: str
    stages: tuple[Stage, ...]
    mode: str = "open"
    arrival: str = "constant"
    warmup_s: float = 2.0
    timeout_s: float = 10.0
    workers: int = 0  # 0: one local Locust process; N: a master and N workers
    seed: int = 1
    mix: tuple[MixEntry, ...] = (MixEntry(),)

    @property
    def total_s(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def peak_rate(self) -> float:
        return max(s.rate for s in self.stages)

    @property
    def streams(self) -> bool:
        """Streamed chat completions through the AI Gateway are part of the mix."""
        return any(m.protocol == CHAT_STREAM for m in self.mix)

    @property
    def overhead(self) -> bool:
        """Gateway-overhead mode: the same load direct to replicas and through the gateway."""
        return any(m.via == "direct" for m in self.mix)

    def requested(self, start: float, end: float) -> float:
        """Requests the stages ask for between two offsets (seconds)."""
        total, begin = 0.0, 0.0
        for stage in self.stages:
            stop = begin + stage.seconds
            overlap = max(0.0, min(end, stop) - max(start, begin))
            total += overlap * stage.rate
            begin = stop
        return total


@dataclass(frozen=True)
class Slo:
    """One gate: ``metric`` compared with ``bound`` (``<=`` for maxima, ``>=`` for minima)."""

    name: str
    metric: str
    bound: float
    op: str  # "<=" or ">="
    unit: str
    why: str


@dataclass(frozen=True)
class SloFile:
    profile: str
    slos: tuple[Slo, ...]
    source: Path
    notes: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [s.name for s in self.slos]


def _read_yaml(path: Path, kind: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LoadProfileError(f"{path} does not exist", f"create it; see docs/load.md for the {kind} format") from exc
    except yaml.YAMLError as exc:
        raise LoadProfileError(f"{path}: not valid YAML: {exc}", "fix the YAML syntax") from exc
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise LoadProfileError(f"{path}: not a {kind}", f"the file needs kind: {kind}")
    return data


def _number(where: str, value: Any, minimum: float = 0.0, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise LoadProfileError(f"{where} must be a{'n integer' if integer else ' number'}, found {value!r}", "")
    if value < minimum or not math.isfinite(value):
        raise LoadProfileError(f"{where} must be at least {minimum}, found {value}", "")
    return float(value)


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise LoadProfileError(f"{where} is {value!r}", f"use one of {', '.join(allowed)}")
    return str(value)


def _known(where: str, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise LoadProfileError(
            f"{where}: unknown field(s) {', '.join(unknown)}", f"known: {', '.join(sorted(allowed))}"
        )


def _mix(where: str, raw: Any) -> tuple[MixEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise LoadProfileError(f"{where} must be a non-empty list", "see docs/load.md")
    entries = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise LoadProfileError(f"{here} must be a mapping", "")
        _known(here, item, {"weight", "tenant", "model", "protocol", "via", "prompt", "maxTokens"})
        protocol = _choice(f"{here}.protocol", item["protocol"], MIX_PROTOCOLS) if "protocol" in item else None
        via = _choice(f"{here}.via", item.get("via", "gateway"), PATHS)
        chat = {"prompt", "maxTokens"} & set(item)
        if chat and protocol != CHAT_STREAM:
            raise LoadProfileError(f"{here}: {', '.join(sorted(chat))} only apply to protocol {CHAT_STREAM}", "")
        if protocol == CHAT_STREAM and via != "gateway":
            raise LoadProfileError(
                f"{here}: protocol {CHAT_STREAM} goes through the AI Gateway only", "drop via or set via: gateway"
            )
        prompt = item.get("prompt", DEFAULT_PROMPT)
        if not isinstance(prompt, str) or not prompt.strip():
            raise LoadProfileError(f"{here}.prompt must be a non-empty string, found {prompt!r}", "")
        entries.append(
            MixEntry(
                weight=_number(f"{here}.weight", item.get("weight", 1), minimum=0.0),
                tenant=item.get("tenant"),
                model=item.get("model"),
                protocol=protocol,
                via=via,
                prompt=prompt,
                max_tokens=int(
                    _number(f"{here}.maxTokens", item.get("maxTokens", DEFAULT_MAX_TOKENS), minimum=1, integer=True)
                ),
            )
        )
    if sum(e.weight for e in entries) <= 0:
        raise LoadProfileError(f"{where}: every weight is 0", "give at least one entry a positive weight")
    return tuple(entries)


PROFILE_FIELDS = {
    "description",
    "stages",
    "mode",
    "arrival",
    "warmupSeconds",
    "timeoutSeconds",
    "workers",
    "seed",
    "mix",
}


def load_profiles(path: Path = DEFAULT_PROFILES) -> dict[str, LoadProfile]:
    data = _read_yaml(path, "LoadProfiles")
    defaults = data.get("defaults") or {}
    _known(f"{path}: defaults", defaults, PROFILE_FIELDS - {"description", "stages"})
    profiles: dict[str, LoadProfile] = {}
    for name, raw in (data.get("profiles") or {}).items():
        where = f"{path}: profiles.{name}"
        if not isinstance(raw, dict):
            raise LoadProfileError(f"{where} must be a mapping", "")
        _known(where, raw, PROFILE_FIELDS)
        merged = {**defaults, **raw}
        stages = []
        for index, stage in enumerate(merged.get("stages") or []):
            here = f"{where}.stages[{index}]"
            if not isinstance(stage, dict):
                raise LoadProfileError(f"{here} must be a mapping", "")
            _known(here, stage, {"seconds", "rate", "users"})
            stages.append(
                Stage(
                    seconds=_number(f"{here}.seconds", stage.get("seconds"), minimum=1.0),
                    rate=_number(f"{here}.rate", stage.get("rate"), minimum=0.0),
                    users=int(_number(f"{here}.users", stage.get("users", 10), minimum=1, integer=True)),
                )
            )
        if not stages:
            raise LoadProfileError(f"{where} has no stages", "add stages: [{seconds: 20, rate: 40, users: 10}]")
        profile = LoadProfile(
            name=str(name),
            description=str(merged.get("description", "")),
            stages=tuple(stages),
            mode=_choice(f"{where}.mode", merged.get("mode", "open"), MODES),
            arrival=_choice(f"{where}.arrival", merged.get("arrival", "constant"), ARRIVALS),
            warmup_s=_number(f"{where}.warmupSeconds", merged.get("warmupSeconds", 2.0)),
            timeout_s=_number(f"{where}.timeoutSeconds", merged.get("timeoutSeconds", 10.0), minimum=0.1),
            workers=int(_number(f"{where}.workers", merged.get("workers", 0), integer=True)),
            seed=int(_number(f"{where}.seed", merged.get("seed", 1), integer=True)),
            mix=_mix(f"{where}.mix", merged["mix"]) if "mix" in merged else (MixEntry(),),
        )
        if profile.warmup_s >= profile.total_s:
            raise LoadProfileError(
                f"{where}: the warm-up ({profile.warmup_s}s) is not shorter than the run ({profile.total_s}s)",
                "lengthen the stages or shorten warmupSeconds",
            )
        if profile.streams and (profile.mode != "open" or profile.overhead):
            raise LoadProfileError(
                f"{where}: protocol {CHAT_STREAM} needs open loop and no `via: direct` entries",
                "the open-loop dispatcher times each stream's first token; a direct path does not reach the AI Gateway",
            )
        if profile.workers and any(s.users < profile.workers for s in profile.stages):
            raise LoadProfileError(
                f"{where}: a stage has fewer users than the {profile.workers} workers", "give every worker a user"
            )
        profiles[profile.name] = profile
    if not profiles:
        raise LoadProfileError(f"{path} defines no profiles", "add profiles under profiles:")
    return profiles


def get_profile(name: str, path: Path = DEFAULT_PROFILES) -> LoadProfile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise LoadProfileError(f"no load profile {name!r} in {path}", f"known profiles: {', '.join(sorted(profiles))}")
    return profiles[name]


SLO_FIELDS = {
    "latencyMs",
    "maxErrorRatio",
    "maxRateLimitedRatio",
    "minAchievedRatio",
    "gatewayOverheadMs",
    "ttftMs",
    "minTokensPerSecond",
    "minStreamTokensPerSecond",
}


def load_slo(profile: str, directory: Path = DEFAULT_SLO_DIR) -> SloFile:
    """The SLO file of a profile. p50/p99 latency, error ratio and achieved ratio are required."""
    path = directory / f"{profile}.yaml"
    data = _read_yaml(path, "LoadSLO")
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise LoadProfileError(f"{path}: no spec", "see docs/load.md for the SLO format")
    _known(f"{path}: spec", spec, SLO_FIELDS)
    name = (data.get("metadata") or {}).get("name")
    if name != profile:
        raise LoadProfileError(f"{path}: metadata.name is {name!r}, not {profile!r}", "name the SLO file's profile")
    slos: list[Slo] = []
    latency = spec.get("latencyMs") or {}
    if not isinstance(latency, dict) or not {"p50", "p99"} <= set(latency):
        raise LoadProfileError(f"{path}: spec.latencyMs needs at least p50 and p99", "add both bounds (ms)")
    _known(f"{path}: spec.latencyMs", latency, set(PERCENTILES))
    for q in PERCENTILES:
        if q in latency:
            bound = _number(f"{path}: spec.latencyMs.{q}", latency[q])
            slos.append(Slo(f"latency-{q}", f"latency_ms/{q}", bound, "<=", "ms", f"{q} latency of answered requests"))
    for key, metric, op, why in (
        ("maxErrorRatio", "error_ratio", "<=", "errors (not 429s) per request"),
        ("minAchievedRatio", "achieved_ratio", ">=", "achieved / requested requests: the generator kept up"),
    ):
        if key not in spec:
            raise LoadProfileError(f"{path}: spec.{key} is required", "see docs/load.md")
        slos.append(Slo(key_name(key), metric, _number(f"{path}: spec.{key}", spec[key]), op, "ratio", why))
    if slos[-1].bound < 0.95:
        raise LoadProfileError(
            f"{path}: spec.minAchievedRatio {slos[-1].bound} is below 0.95",
            "a run whose generator fell more than 5% behind measured the generator, not the platform",
        )
    slos.append(
        Slo(
            "rate-limited-ratio",
            "rate_limited_ratio",
            _number(f"{path}: spec.maxRateLimitedRatio", spec.get("maxRateLimitedRatio", 0.0)),
            "<=",
            "ratio",
            "429s from the gateway's per-tenant budget per request",
        )
    )
    overhead = spec.get("gatewayOverheadMs") or {}
    _known(f"{path}: spec.gatewayOverheadMs", overhead, set(PERCENTILES))
    for q in PERCENTILES:
        if q in overhead:
            bound = _number(f"{path}: spec.gatewayOverheadMs.{q}", overhead[q])
            slos.append(
                Slo(
                    f"gateway-overhead-{q}",
                    f"gateway_overhead_ms/added/{q}",
                    bound,
                    "<=",
                    "ms",
                    f"added {q} latency through the gateway",
                )
            )
    slos += _stream_slos(path, spec)
    return SloFile(profile, tuple(slos), path)


def _stream_slos(path: Path, spec: dict[str, Any]) -> list[Slo]:
    """Streamed chat completions: time to first token (maxima), tokens per second (minima)."""
    slos = []
    ttft = spec.get("ttftMs") or {}
    _known(f"{path}: spec.ttftMs", ttft, set(PERCENTILES))
    for q in PERCENTILES:
        if q in ttft:
            bound = _number(f"{path}: spec.ttftMs.{q}", ttft[q])
            slos.append(Slo(f"ttft-{q}", f"ttft_ms/{q}", bound, "<=", "ms", f"{q} time to first token of streams"))
    if "minTokensPerSecond" in spec:
        bound = _number(f"{path}: spec.minTokensPerSecond", spec["minTokensPerSecond"])
        why = "completion tokens of answered streams per second of the window"
        slos.append(Slo("tokens-per-second", "tokens_per_s", bound, ">=", "tokens/s", why))
    rate = spec.get("minStreamTokensPerSecond") or {}
    _known(f"{path}: spec.minStreamTokensPerSecond", rate, set(RATE_PERCENTILES))
    for q in RATE_PERCENTILES:
        if q in rate:
            bound = _number(f"{path}: spec.minStreamTokensPerSecond.{q}", rate[q])
            why = f"{q} of per-stream tokens/s (tokens after the first / time after the first)"
            slos.append(Slo(f"stream-tokens-per-second-{q}", f"stream_tokens_per_s/{q}", bound, ">=", "tokens/s", why))
    return slos


def key_name(key: str) -> str:
    return {"maxErrorRatio": "error-ratio", "minAchievedRatio": "achieved-ratio"}[key]
