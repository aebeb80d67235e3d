"""What the engine reports, and the in-memory recorder used by tests and the CLI.

The engine calls an `Observer` synchronously at each execution and step boundary. Observers must
not block: the app's recorder hands records to a queue and writes them in batches. A record's
`input` has secrets redacted; `logs` are the lines the step's logger kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from components.api import LogLine, Response

__all__ = [
    "ErrorInfo",
    "ExecutionInfo",
    "ExecutionResult",
    "MemoryRecorder",
    "Observer",
    "Status",
    "StepRecord",
]


class Status(StrEnum):
    """States of an execution and of a step record."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A user-facing error: a stable `kind`, a message naming the step, and a hint to fix it."""

    kind: str
    message: str
    hint: str = ""
    step: str | None = None


@dataclass(slots=True)
class StepRecord:
    """One run of one step (one per attempt is not kept: `attempt` is the last one made)."""

    execution_id: str
    step_id: str
    step_name: str
    action: str
    status: Status
    attempt: int = 1
    iteration: tuple[int, ...] = ()
    started_at: float = 0.0
    duration_ms: float = 0.0
    input: Any = None
    output: Any = None
    port: str | None = None
    error: ErrorInfo | None = None
    logs: list[LogLine] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    """HTTP exchanges the step made, in the recorded form of `runtime.recorded`."""
    pinned: bool = False
    """The step did not run: its output was pinned for a test run."""
    mono_start: float = field(default=0.0, repr=False, compare=False)
    """perf_counter() when the step started; internal, not part of the JSON form."""

    def to_json(self) -> dict[str, Any]:
        """JSON form; `iteration` is the innermost loop index (None outside loops)."""
        data = asdict(self)
        del data["mono_start"]
        data["status"] = self.status.value
        data["iteration"] = self.iteration[-1] if self.iteration else None
        data["iteration_path"] = list(self.iteration)
        return data


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """An execution as it starts."""

    execution_id: str
    flow_id: str
    started_at: float
    parent_execution_id: str | None = None


@dataclass(slots=True)
class ExecutionResult:
    """How an execution ended. `output` is the output of the last step that succeeded."""

    execution_id: str
    flow_id: str
    status: Status
    started_at: float
    duration_ms: float
    error: ErrorInfo | None = None
    output: Any = None
    response: Response | None = None
    steps_run: int = 0


class Observer(Protocol):
    """Receives the engine's reports. Methods are called on the engine's task and must not block."""

    def execution_started(self, info: ExecutionInfo) -> None: ...

    def step_started(self, record: StepRecord) -> None: ...

    def step_finished(self, record: StepRecord) -> None: ...

    def response_ready(self, execution_id: str, response: Response) -> None: ...

    def execution_finished(self, result: ExecutionResult) -> None: ...


class MemoryRecorder:
    """Keeps everything it is told, in order. For tests, the CLI and benchmarks."""

    def __init__(self) -> None:
        self.executions: list[ExecutionInfo] = []
        self.started: list[StepRecord] = []
        self.records: list[StepRecord] = []
        self.responses: dict[str, Response] = {}
        self.results: list[ExecutionResult] = []

    def execution_started(self, info: ExecutionInfo) -> None:
        self.executions.append(info)

    def step_started(self, record: StepRecord) -> None:
        self.started.append(record)

    def step_finished(self, record: StepRecord) -> None:
        self.records.append(record)

    def response_ready(self, execution_id: str, response: Response) -> None:
        self.responses[execution_id] = response

    def execution_finished(self, result: ExecutionResult) -> None:
        self.results.append(result)

    def for_execution(self, execution_id: str) -> list[StepRecord]:
        """The finished step records of one execution, in the order they finished."""
        return [r for r in self.records if r.execution_id == execution_id]
