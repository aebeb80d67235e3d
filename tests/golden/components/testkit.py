"""Test-only components for golden flows, loaded the way a user's custom folder is."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import Field

from components.api import (
    Action,
    Component,
    Inputs,
    Result,
    RetryableError,
    StepContext,
    StepError,
)


class FlakyInputs(Inputs):
    fail_times: int = Field(title="Fail times", description="Attempts that fail before success.")
    retry_after: float | None = Field(None, title="Retry after", description="Seconds to ask.")


class Flaky(Action[FlakyInputs]):
    key = "flaky"
    title = "Flaky"
    description = "Fails with a retryable error on the first `fail_times` attempts."
    Inputs = FlakyInputs

    async def run(self, inputs: FlakyInputs, ctx: StepContext) -> Any:
        if ctx.attempt <= inputs.fail_times:
            raise RetryableError(f"temporary failure {ctx.attempt}", retry_after=inputs.retry_after)
        return {"attempt": ctx.attempt, "key": ctx.idempotency_key}


class SleepInputs(Inputs):
    seconds: float = Field(title="Seconds", description="Real seconds to sleep.")


class Sleep(Action[SleepInputs]):
    key = "sleep"
    title = "Sleep"
    description = "Sleeps on the real clock (to hit timeouts)."
    Inputs = SleepInputs

    async def run(self, inputs: SleepInputs, ctx: StepContext) -> Any:
        await asyncio.sleep(inputs.seconds)
        return {"slept": inputs.seconds}


class FailInputs(Inputs):
    message: str = Field(title="Message", description="Error message.")


class Fail(Action[FailInputs]):
    key = "fail"
    title = "Fail"
    description = "Always fails with a permanent error."
    Inputs = FailInputs

    async def run(self, inputs: FailInputs, ctx: StepContext) -> Any:
        raise StepError(inputs.message, hint="It always does.")


class EchoInputs(Inputs):
    value: Any = Field(None, title="Value", description="Returned as the output.")
    port: str = Field("out", title="Port", description="Port to take.")


class Echo(Action[EchoInputs]):
    key = "echo"
    title = "Echo"
    description = "Returns its value."
    Inputs = EchoInputs

    async def run(self, inputs: EchoInputs, ctx: StepContext) -> Any:
        ctx.log.info("echo %s", inputs.value)
        return Result(inputs.value, inputs.port)


class Crash(Action[EchoInputs]):
    key = "crash"
    title = "Crash"
    description = "Raises a plain Python exception (a component bug)."
    Inputs = EchoInputs

    async def run(self, inputs: EchoInputs, ctx: StepContext) -> Any:
        empty: dict[str, Any] = {}
        return empty["missing"]


class ProcessInputs(Inputs):
    pass


class Process(Action[ProcessInputs]):
    key = "process"
    title = "Process"
    description = "Returns the id of the process that runs it (engine-process tests)."
    Inputs = ProcessInputs

    async def run(self, inputs: ProcessInputs, ctx: StepContext) -> Any:
        return os.getpid()


class Opaque(Action[ProcessInputs]):
    key = "opaque"
    title = "Opaque"
    description = "Returns a Python object that is not JSON data (a component bug)."
    Inputs = ProcessInputs

    async def run(self, inputs: ProcessInputs, ctx: StepContext) -> Any:
        return {"callback": lambda: None}


component = Component(
    key="testkit",
    title="Test kit",
    category="Testing",
    description="Actions for golden-flow tests.",
    actions=[Flaky, Sleep, Fail, Echo, Crash, Process, Opaque],
)
