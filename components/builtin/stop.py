"""The stop step: end the execution as failed, with the user's own message."""

from __future__ import annotations

from typing import NoReturn

from pydantic import Field

from components.api import Action, Component, Inputs, StepContext, StopFlow

__all__ = ["StopError", "StopErrorInputs", "component"]


class StopErrorInputs(Inputs):
    """Why the flow stops."""

    message: str = Field(
        min_length=1,
        title="Message",
        description="Shown as the execution's error, e.g. `Order {{ trigger.body.id }} has no "
        "customer`.",
    )


class StopError(Action[StopErrorInputs]):
    key = "error"
    title = "Stop with error"
    description = (
        "Ends the execution as failed with your message, e.g. when incoming data is invalid."
    )
    Inputs = StopErrorInputs
    ports = ()  # nothing runs after it

    async def run(self, inputs: StopErrorInputs, ctx: StepContext) -> NoReturn:
        ctx.log.error("%s", inputs.message)
        raise StopFlow(inputs.message)


component = Component(
    key="stop",
    title="Stop",
    category="Flow control",
    version="1.0.0",
    description="End a flow on purpose.",
    actions=[StopError],
)
