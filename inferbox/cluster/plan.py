"""An install plan: named steps, what each needs first, and what each does and waits on.

Steps form a graph; a step starts when every step it needs is done, so independent components
install in parallel. Inside a step, actions and waits run in the order written (apply CRDs, wait
until Established, then install what uses them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from inferbox.cluster.actions import Action, Cluster
from inferbox.cluster.timeouts import DEFAULTS, Timeouts
from inferbox.cluster.versions import Versions
from inferbox.cluster.waits import Wait
from inferbox.errors import InferboxError

Item = Action | Wait


class PlanError(InferboxError):
    """A plan that cannot run (a bug in the recipe, caught before anything is touched)."""


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    needs: tuple[str, ...]
    items: tuple[Item, ...]
    namespaces: tuple[str, ...] = ()  # whose events, pods and logs explain a failure here

    def waits(self) -> list[Wait]:
        return [i for i in self.items if isinstance(i, Wait)]

    def actions(self) -> list[Action]:
        return [i for i in self.items if isinstance(i, Action)]


@dataclass(frozen=True)
class Plan:
    cluster: Cluster
    versions: Versions
    steps: tuple[Step, ...]
    timeouts: Timeouts = field(default_factory=Timeouts)
    notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step {name!r}; steps: {', '.join(s.name for s in self.steps)}")

    def validate(self) -> None:
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PlanError(f"install plan has duplicate steps: {', '.join(duplicates)}", "rename one of them")
        for step in self.steps:
            unknown = [n for n in step.needs if n not in names]
            if unknown:
                raise PlanError(f"step {step.name} needs unknown steps {unknown}", "fix the recipe in inferbox/cluster")
            for wait in step.waits():
                if wait.timeout not in DEFAULTS:
                    raise PlanError(
                        f"step {step.name}: wait {wait.describe()!r} names unknown timeout {wait.timeout!r}"
                    )
        self.levels()

    def levels(self) -> list[list[Step]]:
        """Steps grouped so that each level needs only earlier levels (raises on a cycle)."""
        done: set[str] = set()
        remaining = list(self.steps)
        levels: list[list[Step]] = []
        while remaining:
            ready = [s for s in remaining if set(s.needs) <= done]
            if not ready:
                raise PlanError(f"install plan has a dependency cycle among {[s.name for s in remaining]}")
            levels.append(ready)
            done |= {s.name for s in ready}
            remaining = [s for s in remaining if s.name not in done]
        return levels

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.step(name).needs)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.step(current).needs)
        return seen

    def render(self) -> str:
        """The plan as a person would follow it: every command, URL, chart and version, every wait."""
        out = [
            f"inferbox install plan for kube context {self.cluster.context}",
            f"versions: {self.versions.source}"
            + (f" with {', '.join(self.versions.overrides)}" if self.versions.overrides else ""),
            *self.notes,
            "Steps on the same level need nothing from each other and run in parallel.",
            "Every wait polls until it holds or its named timeout passes "
            "(change one with --kube-timeout NAME=SECONDS or INFERBOX_TIMEOUT_NAME).",
            "",
        ]
        for number, level in enumerate(self.levels(), start=1):
            out.append(f"level {number}")
            for step in level:
                needs = ", ".join(step.needs) if step.needs else "nothing"
                out.append(f"  [{step.name}] {step.title}   (needs: {needs})")
                for item in step.items:
                    if isinstance(item, Wait):
                        seconds = int(self.timeouts[item.timeout])
                        out.append(f"    wait up to {seconds}s ({item.timeout}): {item.describe()}")
                    else:
                        out.extend("    " + line for line in item.describe(self.cluster, self.timeouts))
            out.append("")
        return "\n".join(out)

    def fingerprint(self, steps: tuple[str, ...] | None = None) -> str:
        """Identifies what the named steps install (timeouts excluded): equal means nothing to redo."""
        digest = hashlib.sha256()
        for step in self.steps:
            if steps is None or step.name in steps:
                digest.update(f"[{step.name}] needs {step.needs}\n".encode())
                for item in step.items:
                    lines = [item.describe()] if isinstance(item, Wait) else item.describe(self.cluster, Timeouts())
                    digest.update("\n".join(lines).encode())
        return digest.hexdigest()[:16]
