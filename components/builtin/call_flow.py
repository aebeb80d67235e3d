"""The call-flow step: run a sibling flow of the same integration and wait for its result."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from components.api import Action, Component, Inputs, Result, StepContext

__all__ = ["CallFlow", "CallFlowInputs", "component"]


class CallFlowInputs(Inputs):
    """Which flow to run and the payload its trigger receives."""

    flow: str = Field(
        min_length=1,
        title="Flow",
        description="Id or name of a flow in the same integration.",
    )
    body: Any = Field(
        None,
        title="Body",
        description="The called flow's `trigger.body`.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        title="Headers",
        description="The called flow's `trigger.headers`.",
        json_schema_extra={"x-ui": "keyvalue"},
    )


class CallFlow(Action[CallFlowInputs]):
    key = "call"
    title = "Call flow"
    description = (
        "Runs another flow of this integration with a payload and outputs that flow's result, "
        "to share logic between flows."
    )
    Inputs = CallFlowInputs

    async def run(self, inputs: CallFlowInputs, ctx: StepContext) -> Result:
        ctx.log.info("calling flow '%s'", inputs.flow)
        result = await ctx.call_flow(
            inputs.flow, {"body": inputs.body, "headers": dict(inputs.headers)}
        )
        return Result(result)


component = Component(
    key="call_flow",
    title="Call flow",
    category="Flow control",
    version="1.0.0",
    description="Run a sibling flow and use its result.",
    actions=[CallFlow],
)
