"""The transform step: build a new object from fields, each a literal or a template."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from components.api import Action, Component, Inputs, Result, StepContext

__all__ = ["TransformObject", "TransformObjectInputs", "component"]


class TransformObjectInputs(Inputs):
    """The fields of the object to output."""

    fields: dict[str, Any] = Field(
        default_factory=dict,
        title="Fields",
        description="Output field name -> value. A value that is exactly one template such as "
        "`{{ trigger.body.items }}` keeps its type (list, number, object).",
        json_schema_extra={"x-ui": "keyvalue"},
    )


class TransformObject(Action[TransformObjectInputs]):
    key = "object"
    title = "Build object"
    description = "Outputs an object built from named fields, to reshape data for the next step."
    Inputs = TransformObjectInputs

    async def run(self, inputs: TransformObjectInputs, ctx: StepContext) -> Result:
        del ctx
        return Result(dict(inputs.fields))


component = Component(
    key="transform",
    title="Transform",
    category="Data",
    version="1.0.0",
    description="Reshape data: build objects from fields and templates.",
    actions=[TransformObject],
)
