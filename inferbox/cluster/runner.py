"""Runs an install plan: steps start as soon as what they need is done, a few at a time.

When anything fails the run stops starting steps, lets running ones notice and stop, dumps the
failed step's evidence into the report folder, and raises one error naming the step, the object
and the last state seen.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from inferbox.cluster import diagnostics
from inferbox.cluster.actions import RunContext
from inferbox.cluster.kube import KubeError, webhook_not_ready
from inferbox.cluster.plan import Plan, Step
from inferbox.cluster.waits import Check, ProbeRejected, Wait
from inferbox.errors import InferboxError
from inferbox.waiting import NotYet, eventually


class Cancelled(Exception):
    """Another step failed; this one stopped between actions."""


class WaitTimeout(InferboxError):
    """A wait did not hold within its named timeout."""


class StepFailed(InferboxError):
    """A step failed; ``evidence`` is the folder with what explains it."""

    def __init__(self, step: str, cause: BaseException, evidence: Path | None) -> None:
        problem = cause.problem if isinstance(cause, InferboxError) else f"{type(cause).__name__}: {cause}"
        fix = cause.fix if isinstance(cause, InferboxError) else ""
        where = f"; evidence (events, pods, logs): {evidence}" if evidence else ""
        super().__init__(f"install step {step!r} failed: {problem}", f"{fix}{where}".lstrip("; "))
        self.step = step
        self.cause = cause
        self.evidence = evidence


@dataclass(frozen=True)
class StepReport:
    name: str
    seconds: float


class Runner:
    def __init__(
        self,
        plan: Plan,
        ctx: RunContext,
        evidence_root: Path,
        only: set[str] | None = None,
        max_parallel: int = 3,
    ) -> None:
        self.plan = plan
        self.ctx = ctx
        self.evidence_root = evidence_root
        self.only = only
        self.max_parallel = max_parallel

    def run(self) -> list[StepReport]:
        self.plan.validate()
        chosen = {s.name: s for s in self.plan if self.only is None or s.name in self.only}
        done = {s.name for s in self.plan if s.name not in chosen}  # skipped steps count as done
        reports: list[StepReport] = []
        failures: list[BaseException] = []
        running: dict[Future[StepReport], Step] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="install") as pool:
            while chosen or running:
                if not failures:
                    for name, step in list(chosen.items()):
                        if set(step.needs) <= done:
                            running[pool.submit(self._run_step, step)] = step
                            del chosen[name]
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    try:
                        reports.append(future.result())
                        done.add(step.name)
                    except Cancelled:
                        pass
                    except BaseException as exc:
                        failures.append(exc)
                        self.ctx.cancelled.set()
        if failures:
            raise failures[0]
        return reports

    def _run_step(self, step: Step) -> StepReport:
        started = time.monotonic()
        self.ctx.progress(f"{step.name}: {step.title}")
        current: Wait | None = None
        try:
            for item in step.items:
                if self.ctx.cancelled.is_set():
                    raise Cancelled(step.name)
                if isinstance(item, Wait):
                    current = item
                    self._wait(step, item)
                    current = None
                else:
                    item.run(self.ctx)
        except Cancelled:
            raise
        except BaseException as exc:
            evidence = self._dump(step, current)
            raise StepFailed(step.name, exc, evidence) from exc
        seconds = round(time.monotonic() - started, 1)
        self.ctx.progress(f"{step.name}: done in {seconds}s")
        return StepReport(step.name, seconds)

    def _wait(self, step: Step, item: Wait) -> None:
        timeout_s = self.ctx.timeouts[item.timeout]
        api = self.ctx.api()

        def attempt() -> Check:
            if self.ctx.cancelled.is_set():
                raise Cancelled(step.name)
            try:
                result = item.check(api)
            except KubeError as exc:
                if exc.status in (0, 404) or webhook_not_ready(exc):
                    raise NotYet(f"API: {exc}") from exc
                raise
            if not result.done:
                raise NotYet(result.detail)
            return result

        try:
            eventually(attempt, timeout_s, interval_s=self.ctx.poll_interval_s)
        except NotYet as last:
            raise WaitTimeout(
                f"{item.describe()} did not hold within {timeout_s:.0f}s (timeout {item.timeout!r}); last seen: {last}",
                f"if it is only slow, raise it: --kube-timeout {item.timeout}=SECONDS "
                f"or {self.ctx.timeouts.env_name(item.timeout)}=SECONDS",
            ) from None
        except ProbeRejected as exc:
            raise InferboxError(str(exc), "the probe object in inferbox/cluster/components.py needs fixing") from exc

    def _dump(self, step: Step, wait_item: Wait | None) -> Path | None:
        namespaces = list(step.namespaces) + (list(wait_item.namespaces()) if wait_item else [])
        subjects = wait_item.subjects() if wait_item else ()
        try:
            api = self.ctx.api()
        except InferboxError:
            return None  # no cluster to ask (it was never created)
        dest = self.evidence_root / "evidence" / step.name
        return diagnostics.dump(api, dest, namespaces, subjects)
