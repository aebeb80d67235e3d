"""Errors a component raises from `run`; the engine maps each to a step error policy.

The full tree, with the engine's own errors, is drawn in `runtime/errors.py`. These are the leaves a
component author needs, so they live below `components.api` and the runtime re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "FlowyardError",
    "Refused",
    "RetryableError",
    "StepConfigError",
    "StepError",
    "StopFlow",
]


class FlowyardError(Exception):
    """Base of every error Flowyard raises on purpose.

    `message` is what a user reads; `hint` says how to fix it; `kind` is a stable machine name.
    """

    kind: str = "error"

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class StepError(FlowyardError):
    """A step failed for a reason that retrying will not fix (a 4xx answer, a rejected record)."""

    kind = "step_failed"


class RetryableError(StepError):
    """A step failed transiently (network error, 5xx, 429, timeout): the retry policy may rerun it.

    `retry_after` (seconds), when the remote side said how long to wait, overrides the backoff delay
    if it is longer.
    """

    kind = "retryable"

    def __init__(self, message: str, *, hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class StepConfigError(StepError):
    """The step is misconfigured: its inputs resolved to values the action cannot use."""

    kind = "misconfigured"


class StopFlow(StepError):
    """Raised by the stop step: ends the execution as failed with the user's own message."""

    kind = "stopped"


class Refused(StepError):
    """A trigger refuses a request before it is stored: the server answers `status` (401 for a
    bad signature, 403, 400..., or 503 for "retry later"; anything else is sent as 400) with
    `message` and `hint`, plus any extra `headers`."""

    kind = "refused"

    def __init__(
        self,
        status: int,
        message: str,
        *,
        hint: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.headers = dict(headers or {})
