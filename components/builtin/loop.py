"""The loop step: run the steps on its `body` port once per item, then continue on `done`."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from components.api import Action, Component, Inputs, LoopPlan, StepConfigError, StepContext

__all__ = ["LoopItems", "LoopItemsInputs", "component"]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class LoopItemsInputs(Inputs):
    """The list to loop over and how many items run at once."""

    items: Any = Field(
        title="Items",
        description="The list to loop over, e.g. `{{ trigger.body.updates }}`. Inside the body, "
        "`loop.item` is the current item and `loop.index` its 0-based position.",
        json_schema_extra={"x-ui": "list"},
    )
    concurrency: int = Field(
        1,
        ge=1,
        le=32,
        title="Concurrency",
        description="How many items run at the same time; 1 runs them one after another, in order.",
    )


class LoopItems(Action[LoopItemsInputs]):
    key = "items"
    title = "Loop over items"
    description = (
        "Runs the steps on the `body` port once for each item of a list, then continues on `done`."
    )
    Inputs = LoopItemsInputs
    ports = ("body", "done")

    async def run(self, inputs: LoopItemsInputs, ctx: StepContext) -> LoopPlan:
        items = inputs.items
        if not isinstance(items, list):
            hint = "Point 'Items' at a list, e.g. {{ trigger.body.records }}."
            if isinstance(items, dict):
                hint += " To loop over an object's values use {{ $each(x, function($v) { $v }) }}."
            raise StepConfigError(
                f"Loop items must be a list, but they are {_json_type(items)}.", hint=hint
            )
        ctx.log.debug("looping over %d items, %d at a time", len(items), inputs.concurrency)
        return LoopPlan(items, inputs.concurrency)


component = Component(
    key="loop",
    title="Loop",
    category="Flow control",
    version="1.0.0",
    description="Run part of the flow once per item of a list.",
    actions=[LoopItems],
)
