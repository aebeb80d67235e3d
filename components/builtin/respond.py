"""The respond step: set the answer of a synchronous webhook (status, headers, body).

It has effect only when the flow was started by a webhook trigger with `sync` on; otherwise the
reply is recorded and ignored. Challenge handshakes (e.g. echoing a `challenge` field) use it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from components.api import (
    Action,
    Component,
    HttpHeaders,
    Inputs,
    Response,
    Result,
    StepContext,
)

__all__ = ["RespondInputs", "WebhookRespond", "component"]


class RespondInputs(Inputs):
    """The reply to send."""

    status: int = Field(
        200, ge=100, le=599, title="Status", description="HTTP status code, e.g. 200 or 202."
    )
    headers: HttpHeaders = Field(
        default_factory=dict,
        title="Headers",
        description="Response headers, e.g. Content-Type when the body is not JSON.",
        json_schema_extra={"x-ui": "keyvalue"},
    )
    body: Any = Field(
        None,
        title="Body",
        description="The response body: objects and lists are sent as JSON, text as is.",
    )


class RespondOutput(BaseModel):
    status: int = Field(description="The status sent.")
    headers: dict[str, str] = Field(description="The headers sent.")
    body: Any = Field(description="The body sent.")


class WebhookRespond(Action[RespondInputs]):
    key = "respond"
    title = "Respond to webhook"
    description = (
        "Sets the HTTP answer of a synchronous webhook: status, headers and body. The flow goes "
        "on after it."
    )
    Inputs = RespondInputs
    Output = RespondOutput

    async def run(self, inputs: RespondInputs, ctx: StepContext) -> Result:
        ctx.respond(Response(status=inputs.status, headers=dict(inputs.headers), body=inputs.body))
        return Result(
            {"status": inputs.status, "headers": dict(inputs.headers), "body": inputs.body}
        )


component = Component(
    key="respond",
    title="Respond",
    category="Core",
    version="1.0.0",
    description="Answer a synchronous webhook request.",
    actions=[WebhookRespond],
)
