"""State steps: remember values between executions, per instance or per flow.

Typical use: store a sync cursor or the last-seen id so the next run continues from there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from components.api import (
    Action,
    Component,
    Inputs,
    Result,
    StateScope,
    StepConfigError,
    StepContext,
)

__all__ = ["StateGet", "StateGetInputs", "StateSet", "StateSetInputs", "component"]

_MISSING = object()

_KEY_DESCRIPTION = "Name the value is stored under, e.g. `last_sync`."
_SCOPE_DESCRIPTION = (
    "`instance`: shared by every flow of the instance; `flow`: private to this flow."
)


class StateGetInputs(Inputs):
    """Which value to read."""

    key: str = Field(min_length=1, max_length=200, title="Key", description=_KEY_DESCRIPTION)
    scope: StateScope = Field("instance", title="Scope", description=_SCOPE_DESCRIPTION)
    default: Any = Field(
        None, title="Default", description="Output as the value when nothing is stored yet."
    )


class StateGetOutput(BaseModel):
    key: str = Field(description="The key read.")
    value: Any = Field(description="The stored value, or the default.")
    found: bool = Field(description="Whether a value was stored under the key.")


class StateGet(Action[StateGetInputs]):
    key = "get"
    title = "Get state"
    description = "Reads a value stored by an earlier execution, or a default when there is none."
    Inputs = StateGetInputs
    Output = StateGetOutput

    async def run(self, inputs: StateGetInputs, ctx: StepContext) -> Result:
        value = await ctx.state.get(inputs.key, _MISSING, scope=inputs.scope)
        found = value is not _MISSING
        return Result(
            {"key": inputs.key, "value": value if found else inputs.default, "found": found}
        )


class StateSetInputs(Inputs):
    """Which value to store."""

    key: str = Field(min_length=1, max_length=200, title="Key", description=_KEY_DESCRIPTION)
    value: Any = Field(title="Value", description="Any JSON value; replaces what was stored.")
    scope: StateScope = Field("instance", title="Scope", description=_SCOPE_DESCRIPTION)


class StateSetOutput(BaseModel):
    key: str = Field(description="The key written.")
    value: Any = Field(description="The value stored.")


class StateSet(Action[StateSetInputs]):
    key = "set"
    title = "Set state"
    description = "Stores a value for later executions of this instance (or of this flow only)."
    Inputs = StateSetInputs
    Output = StateSetOutput

    async def run(self, inputs: StateSetInputs, ctx: StepContext) -> Result:
        try:
            await ctx.state.set(inputs.key, inputs.value, scope=inputs.scope)
        except ValueError as exc:
            raise StepConfigError(
                f"Cannot store the value under '{inputs.key}': {exc}.",
                hint="State holds JSON values: text, numbers, booleans, null, lists and objects.",
            ) from None
        return Result({"key": inputs.key, "value": inputs.value})


component = Component(
    key="state",
    title="State",
    category="Data",
    version="1.0.0",
    description="Remember values between executions, e.g. a sync cursor.",
    actions=[StateGet, StateSet],
)
