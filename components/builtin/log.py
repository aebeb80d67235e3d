"""The log step: write a line to the execution's log, e.g. to trace values while building a flow."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from components.api import Action, Component, Inputs, Result, StepContext

__all__ = ["LogMessage", "LogMessageInputs", "component"]

MAX_DATA_CHARS = 10_000


class LogMessageInputs(Inputs):
    """What to write to the log."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", title="Level", description="Severity of the line; `error` does not fail the flow."
    )
    message: str = Field(
        title="Message",
        description="The text to log; templates such as `{{ trigger.body.id }}` are filled in.",
    )
    data: Any = Field(
        None,
        title="Data",
        description="Optional value logged as JSON after the message (cut at 10,000 characters).",
    )


class LogMessageOutput(BaseModel):
    level: str = Field(description="The level logged at.")
    message: str = Field(description="The message logged.")


class LogMessage(Action[LogMessageInputs]):
    key = "message"
    title = "Log"
    description = "Writes a message (and optionally some data) to the execution's log."
    Inputs = LogMessageInputs
    Output = LogMessageOutput

    async def run(self, inputs: LogMessageInputs, ctx: StepContext) -> Result:
        text = inputs.message
        if inputs.data is not None:
            dumped = json.dumps(inputs.data, ensure_ascii=False, default=str)
            if len(dumped) > MAX_DATA_CHARS:
                dumped = dumped[:MAX_DATA_CHARS] + "…"
            text = f"{text} {dumped}"
        write = {
            "debug": ctx.log.debug,
            "info": ctx.log.info,
            "warning": ctx.log.warning,
            "error": ctx.log.error,
        }[inputs.level]
        write("%s", text)  # never as a format string: the message may contain '%'
        return Result({"level": inputs.level, "message": inputs.message})


component = Component(
    key="log",
    title="Log",
    category="Core",
    version="1.0.0",
    description="Write messages to the execution log.",
    actions=[LogMessage],
)
