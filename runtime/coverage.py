"""Path coverage of a flow by a suite: which steps ran and which ports were taken, by which tests.

What counts: every step (the trigger included) and every *path*, a port of a step that has more
than one (a branch's `true`/`false` or cases and `else`, a loop's `body` and `done`, the `error`
port of a step that continues on error). A step is covered when a test ran it (any loop
iteration); a port when a test's run left the step on it. A loop's `body` is covered when it
ran an iteration, its `done` when it finished. Skipped steps cover nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runtime.observer import Status, StepRecord
from runtime.prepare import PreparedFlow

__all__ = ["FlowCoverage", "RunCoverage", "run_coverage"]

_RAN = (Status.SUCCEEDED, Status.FAILED)


@dataclass(frozen=True, slots=True)
class RunCoverage:
    """What one run covered: step ids, and (step id, port) paths."""

    steps: frozenset[str]
    paths: frozenset[tuple[str, str]]


def _is_loop(ports: tuple[str, ...]) -> bool:
    return "body" in ports and "done" in ports


def run_coverage(prepared: PreparedFlow, records: Iterable[StepRecord]) -> RunCoverage:
    """What the records of one execution covered (records of called flows are ignored)."""
    steps: set[str] = set()
    paths: set[tuple[str, str]] = set()
    flow_steps = prepared.steps
    for record in records:
        step = flow_steps.get(record.step_id)
        if step is None or record.status not in _RAN:
            continue
        steps.add(record.step_id)
        if record.port is not None and len(step.ports) > 1:
            paths.add((record.step_id, record.port))
        output = record.output if isinstance(record.output, dict) else {}
        if _is_loop(step.ports) and (output.get("count") or 0) > 0 and not record.pinned:
            paths.add((record.step_id, "body"))
    return RunCoverage(frozenset(steps), frozenset(paths))


@dataclass(slots=True)
class FlowCoverage:
    """Coverage of one flow across a suite: for each step and path, the tests that cover it."""

    flow_id: str
    steps: dict[str, list[str]] = field(default_factory=dict)
    paths: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, prepared: PreparedFlow) -> FlowCoverage:
        """Nothing covered yet: every step and path of the flow, in file order."""
        coverage = cls(prepared.flow.id)
        for step in sorted(prepared.steps.values(), key=lambda s: s.order):
            coverage.steps[step.id] = []
            if len(step.ports) > 1:
                for port in step.ports:
                    coverage.paths[(step.id, port)] = []
        return coverage

    def add(self, test: str, covered: RunCoverage) -> None:
        """Count one test's run."""
        for step_id in covered.steps:
            if step_id in self.steps and test not in self.steps[step_id]:
                self.steps[step_id].append(test)
        for path in covered.paths:
            if path in self.paths and test not in self.paths[path]:
                self.paths[path].append(test)

    @property
    def covered(self) -> int:
        return sum(1 for t in self.steps.values() if t) + sum(1 for t in self.paths.values() if t)

    @property
    def total(self) -> int:
        return len(self.steps) + len(self.paths)

    @property
    def percent(self) -> float:
        return 100.0 if not self.total else round(100 * self.covered / self.total, 1)

    def uncovered(self) -> list[str]:
        """`step` and `step:port` names nothing covered, in file order."""
        missing = [s for s, tests in self.steps.items() if not tests]
        return missing + [f"{s}:{p}" for (s, p), tests in self.paths.items() if not tests]

    def to_json(self) -> dict[str, Any]:
        """The form the API serves (and a canvas overlay reads)."""
        return {
            "flow": self.flow_id,
            "covered": self.covered,
            "total": self.total,
            "percent": self.percent,
            "steps": [{"step": s, "covered_by": t} for s, t in self.steps.items()],
            "paths": [{"step": s, "port": p, "covered_by": t} for (s, p), t in self.paths.items()],
        }
