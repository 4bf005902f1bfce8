"""The open-loop prober of a chaos experiment: the load runner (Locust, open loop, latency from the
intended send time) sending a steady, bounded stream per model with valid tokens, plus streams the
platform must refuse: no token, a forged token (signed with a key the platform never had) and a
valid token of another tenant.

It runs in a thread of its own while the experiment injects faults; its raw records (one per
request) become the experiment's timeline.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferbox.contract import LoadClientPlace, Platform, SigningKey
from inferbox.errors import InferboxError
from inferbox.jwtserver.keystore import generate_private_key
from inferbox.load.plan import build_plan
from inferbox.load.profiles import LoadProfile, MixEntry, SloFile, Stage
from inferbox.load.records import Records, read_records
from inferbox.load.runner import run_locust
from inferbox.tokens import TokenForge

VALID = "valid"
REFUSED_STREAMS = ("no-token", "forged-token", "other-tenant-token")
REFUSED_WEIGHT = 0.15  # each refused stream's share, against 1 for a model's valid stream
USERS = 40  # connections of the generator: enough that a stalled backend does not stall the timeline


@dataclass(frozen=True)
class Stream:
    """One kind of request to one model: valid, or one the platform must refuse."""

    kind: str  # VALID or one of REFUSED_STREAMS
    tenant: str
    model: str

    @property
    def refused(self) -> bool:
        return self.kind != VALID


@dataclass
class ProbeRun:
    """What the prober saw: every request, and which stream each plan target is."""

    folder: Path
    records: Records
    streams: list[Stream]  # by plan target index
    seconds: float
    returncode: int

    def stream_of(self) -> list[Stream]:
        return [self.streams[int(t)] for t in self.records.target]


def _forged_token(platform: Platform, tenant: str) -> str:
    """A token with every right claim, signed by a key the platform never published."""
    stranger = SigningKey("forged-" + tenant, generate_private_key())
    return TokenForge(stranger, platform.profile).valid(tenant)


def chaos_plan(platform: Platform, folder: Path, seconds: float, rate: float, timeout_s: float) -> dict[str, Any]:
    """The load plan: the valid stream of every model, then the refused streams (a load plan, so the
    load runner sends it unchanged)."""
    models = platform.topology.predictive_models  # generative models speak OpenAI through the AI Gateway
    if not models:
        raise InferboxError("the platform serves no model to probe", "the manifests define no InferenceService")
    profile = LoadProfile(
        name="chaos-prober",
        description="valid requests per model, and requests the platform must refuse",
        stages=(Stage(seconds, rate, USERS),),
        warmup_s=0.0,
        timeout_s=timeout_s,
        mix=tuple(MixEntry(tenant=m.tenant, model=m.name, protocol="v1") for m in models),
    )
    place = LoadClientPlace((), platform.gateway_url)
    plan = build_plan(profile, SloFile("chaos-prober", (), folder), platform.topology, platform.profile, place, folder)
    valid = list(plan["targets"])
    tenants = sorted({t["tenant"] for t in valid})
    extra = []
    for target in valid:
        others = [t for t in tenants if t != target["tenant"]]
        variants: list[tuple[str, dict[str, Any]]] = [
            ("no-token", {"auth": False}),
            ("forged-token", {"auth": False, "token": _forged_token(platform, target["tenant"])}),
        ]
        if others:
            variants.append(("other-tenant-token", {"auth": True, "token_tenant": others[0]}))
        for kind, change in variants:
            extra.append(
                {
                    **target,
                    **change,
                    "label": f"{target['tenant']}/{target['model']} {kind}",
                    "weight": target["weight"] * REFUSED_WEIGHT,
                    "stream": kind,
                }
            )
    for target in valid:
        target["stream"] = VALID
    plan["targets"] = valid + extra
    return plan


class Prober:
    """Runs the prober in a thread; ``result()`` waits for it (bounded by the run's length)."""

    def __init__(self, platform: Platform, folder: Path, seconds: float, rate: float, timeout_s: float) -> None:
        self.folder = folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seconds = seconds
        self.plan = chaos_plan(platform, self.folder, seconds, rate, timeout_s)
        self.profile = LoadProfile(
            name="chaos-prober",
            description="",
            stages=(Stage(seconds, rate, USERS),),
            warmup_s=0.0,
            timeout_s=timeout_s,
        )
        self.credentials = {
            tenant: {
                "client_id": platform.credentials(tenant).client_id,
                "client_secret": platform.credentials(tenant).client_secret,
            }
            for tenant in sorted({t.get("token_tenant") or t["tenant"] for t in self.plan["targets"] if t["auth"]})
        }
        self.place = LoadClientPlace((), platform.gateway_url)
        self._thread = threading.Thread(target=self._run, name="chaos-prober", daemon=True)
        self._code: int | None = None
        self._error: BaseException | None = None
        public = {**self.plan, "targets": [{k: v for k, v in t.items() if k != "token"} for t in self.plan["targets"]]}
        (self.folder / "plan.json").write_text(json.dumps(public, indent=2))

    def start(self) -> Prober:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._code, _ = run_locust(self.plan, self.profile, self.place, self.folder, self.credentials)
        except BaseException as exc:  # handed to whoever waits for the result
            self._error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self) -> ProbeRun:
        self._thread.join(timeout=self.seconds + 120)
        if self._thread.is_alive():
            raise InferboxError("the chaos prober did not finish", f"see {self.folder / 'locust.log'}")
        if self._error is not None:
            raise self._error
        records = read_records(self.folder)
        streams = [Stream(t["stream"], t["tenant"], t["model"]) for t in self.plan["targets"]]
        return ProbeRun(self.folder, records, streams, self.seconds, self._code or 0)
