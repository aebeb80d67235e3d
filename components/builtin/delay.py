"""The delay step: wait a number of seconds on the engine's clock before continuing."""

from __future__ import annotations

from pydantic import BaseModel, Field

from components.api import Action, Component, Inputs, Result, StepContext

__all__ = ["DelayWait", "DelayWaitInputs", "component"]


class DelayWaitInputs(Inputs):
    """How long to wait."""

    seconds: float = Field(
        ge=0,
        le=3600,
        title="Seconds",
        description="How long to wait, up to an hour; fractions such as 0.5 work.",
    )


class DelayWaitOutput(BaseModel):
    seconds: float = Field(description="The seconds waited.")


class DelayWait(Action[DelayWaitInputs]):
    key = "wait"
    title = "Delay"
    description = (
        "Waits a number of seconds before the flow continues, e.g. to respect a rate limit."
    )
    Inputs = DelayWaitInputs
    Output = DelayWaitOutput

    async def run(self, inputs: DelayWaitInputs, ctx: StepContext) -> Result:
        # The engine's clock, never asyncio.sleep: tests and replays drive it without waiting.
        await ctx.sleep(inputs.seconds)
        return Result({"seconds": inputs.seconds})


component = Component(
    key="delay",
    title="Delay",
    category="Flow control",
    version="1.0.0",
    description="Pause the flow for a while.",
    actions=[DelayWait],
)
