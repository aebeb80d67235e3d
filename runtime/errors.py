"""Flowyard's error tree, split by whose fault an error is.

    FlowyardError                 components.errors - base; .message, .hint, .kind
    ├── FlowError                 the flow is wrong: the user fixes it; never retried
    │   ├── FlowValidationError   the graph or a file failed validation (.issues lists each problem)
    │   ├── ExpressionError       a `{{ }}` template does not compile or fails to evaluate
    │   └── LimitExceeded         a bound was hit: max steps, execution timeout, expression limits
    ├── StepError                 components.errors - a step failed; not retried
    │   ├── RetryableError        transient (network, 5xx, 429, timeout): retried by policy
    │   │   └── StepTimeout       the step ran past its timeout
    │   ├── StepConfigError       the step's resolved inputs are unusable (misconfigured)
    │   └── StopFlow              the stop step ended the flow on purpose
    └── EngineCrash               our bug: the execution is marked crashed, not failed

Components raise the `StepError` family (from `components.api`); the engine raises the rest. Every
message names the step and, in `hint`, the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.errors import (
    FlowyardError,
    RetryableError,
    StepConfigError,
    StepError,
    StopFlow,
)

__all__ = [
    "EngineCrash",
    "ExpressionError",
    "FlowError",
    "FlowValidationError",
    "FlowyardError",
    "Issue",
    "LimitExceeded",
    "RetryableError",
    "StepConfigError",
    "StepError",
    "StepTimeout",
    "StopFlow",
]


class FlowError(FlowyardError):
    """The flow itself is wrong; rerunning it unchanged fails the same way."""

    kind = "flow_error"


@dataclass(frozen=True, slots=True)
class Issue:
    """One validation problem. `step` is the step id (None for flow-wide problems)."""

    code: str
    message: str
    step: str | None = None
    hint: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class FlowValidationError(FlowError):
    """Validation found errors; `issues` lists every one, not just the first."""

    kind = "invalid_flow"

    def __init__(self, issues: list[Issue]) -> None:
        errors = [i for i in issues if i.severity == "error"]
        summary = "; ".join(str(i) for i in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"Flow is invalid: {summary}{more}")
        self.issues = issues


class ExpressionError(FlowError):
    """A template failed to compile or evaluate."""

    kind = "expression_error"


class LimitExceeded(FlowError):
    """A configured bound was hit (steps, time, expression recursion or output size)."""

    kind = "limit_exceeded"


class StepTimeout(RetryableError):
    """The step ran longer than its timeout."""

    kind = "timeout"


class EngineCrash(FlowyardError):
    """An unexpected exception inside the engine or a component: a bug, not the user's fault."""

    kind = "crashed"
