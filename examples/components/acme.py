"""The demo Acme app (examples/demoapps) as a Flowyard custom component, on `components.api` only.

Load it like any custom component: `FLOWYARD_COMPONENTS_DIR=examples/components flowyard serve`.
Every action takes Acme's base URL (usually `{{ config.acme_url }}`) and a connection slot whose
`api_key` is sent in the `X-API-Key` header. A 5xx, a timeout or a refused connection raises
`RetryableError`; another 4xx raises `StepError` with Acme's own message. Acme keeps amounts in
integer cents.

The trigger `acme.webhook` starts a flow when an Acme webhook arrives. The server checks its
signature before it stores the request (401 otherwise), reading the trigger's `signature` and
`delivery_id_header` inputs as written in the flow, so they are required: Acme signs the body
with HMAC-SHA256 in `X-Acme-Signature: sha256=<hex>` and sends the delivery id in
`X-Acme-Delivery` (the same on every retry, so redeliveries run once).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field, SecretStr

from components.api import (
    Action,
    Component,
    Inputs,
    Result,
    RetryableError,
    StepConfigError,
    StepContext,
    StepError,
    Trigger,
    TriggerContext,
    TriggerEvent,
)

__all__ = ["component"]

_TIMEOUT = httpx.Timeout(15.0).as_dict()
_HINTS = {
    401: "Check the API key in the Acme connection of this instance.",
    404: "Check the id; the record may have been deleted in Acme.",
    409: "Acme already links another record to this external id.",
    422: "Fix the value Acme names; a template may resolve to the wrong type.",
}
_MISSING = object()
"""What `call_acme` returns for a 404 when `missing_ok`."""

AcmeEvent = Literal[
    "account.created", "account.updated", "opportunity.created", "opportunity.updated"
]


# --- calling Acme ---------------------------------------------------------------------------------


class AcmeInputs(Inputs):
    """Where Acme is and which connection holds its API key."""

    base_url: str = Field(
        title="Acme URL",
        description="Base URL of Acme without a trailing slash, usually `{{ config.acme_url }}`.",
        pattern=r"^https?://\S+$",
    )
    connection: str = Field(
        "acme",
        title="Connection",
        description="Connection slot whose `api_key` field holds the Acme API key.",
    )


async def call_acme(
    ctx: StepContext,
    inputs: AcmeInputs,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
    missing_ok: bool = False,
) -> Any:
    """Call the Acme API; its JSON answer (None for an empty one, `_MISSING` for an allowed 404)."""
    slot = ctx.connections.get(inputs.connection)
    if slot is None:
        raise StepConfigError(
            f"There is no connection '{inputs.connection}' for Acme.",
            hint="Add the connection to the integration and fill it in when deploying.",
        )
    headers = {"X-API-Key": slot.secret("api_key"), "Accept": "application/json"}
    content = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(body).encode()
    url = httpx.URL(inputs.base_url.rstrip("/") + path, params=params)
    # A bare request, so the shared client's cookies never travel between flows.
    request = httpx.Request(
        method, url, headers=headers, content=content, extensions={"timeout": _TIMEOUT}
    )
    try:
        response = await ctx.http.send(request)
    except httpx.TimeoutException:
        raise RetryableError(f"Acme did not answer {method} {path} in time.") from None
    except httpx.HTTPError as exc:
        raise RetryableError(
            f"Acme could not be reached for {method} {path}: {exc or type(exc).__name__}.",
            hint="Check the Acme URL in the instance's config and that Acme is running.",
        ) from None
    ctx.log.info("%s %s -> %d", method, path, response.status_code)
    if response.status_code == 404 and missing_ok:
        return _MISSING
    if response.status_code >= 400:
        message = f"Acme refused {method} {path} ({response.status_code}): {_problem(response)}"
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableError(message, hint="Acme is failing; the step retries by policy.")
        raise StepError(message, hint=_HINTS.get(response.status_code, ""))
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise StepError(f"Acme answered {method} {path} with something not JSON.") from None


def _problem(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return response.reason_phrase


def _fields(inputs: BaseModel, *, update: bool) -> dict[str, Any]:
    """The record fields of an action's inputs: for an update, those given (null clears)."""
    skip = {"base_url", "connection", "id"}
    if update:
        return {k: getattr(inputs, k) for k in sorted(inputs.model_fields_set - skip)}
    return {k: v for k, v in inputs.model_dump(exclude=skip).items() if v is not None}


# --- user and webhooks ----------------------------------------------------------------------------


class GetCurrentUser(Action[AcmeInputs]):
    key = "get_current_user"
    title = "Get current user"
    description = "Returns the Acme user the connection's API key belongs to."
    Inputs = AcmeInputs

    async def run(self, inputs: AcmeInputs, ctx: StepContext) -> Result:
        return Result(await call_acme(ctx, inputs, "GET", "/api/me"))


class CreateWebhookInputs(AcmeInputs):
    """Which event to send where."""

    event: AcmeEvent = Field(
        "opportunity.updated", title="Event", description="The Acme event to subscribe to."
    )
    url: str = Field(
        title="Endpoint URL",
        description="Where Acme posts, usually a sibling flow's "
        "`{{ instance.webhook_urls.<flow id> }}`.",
    )
    secret: SecretStr = Field(
        title="Signing secret",
        description="Acme signs every delivery with it (at least 8 characters); the receiving "
        "trigger checks it.",
    )
    description: str = Field("", title="Description", description="Shown in Acme.")


class CreateWebhook(Action[CreateWebhookInputs]):
    key = "create_webhook"
    title = "Create a webhook"
    description = "Subscribes a URL to an Acme event, e.g. opportunity updates."
    Inputs = CreateWebhookInputs

    async def run(self, inputs: CreateWebhookInputs, ctx: StepContext) -> Result:
        body = {
            "event": inputs.event,
            "url": inputs.url,
            "secret": inputs.secret.get_secret_value(),
            "description": inputs.description,
        }
        return Result(await call_acme(ctx, inputs, "POST", "/api/webhooks", body=body))


class ListOutput(BaseModel):
    items: list[dict[str, Any]] = Field(description="The webhooks, oldest first.")
    count: int = Field(description="How many.")


class ListWebhooks(Action[AcmeInputs]):
    key = "list_webhooks"
    title = "List webhooks"
    description = "Lists every webhook registered in Acme (id, event, url)."
    Inputs = AcmeInputs
    Output = ListOutput

    async def run(self, inputs: AcmeInputs, ctx: StepContext) -> Result:
        return Result(await call_acme(ctx, inputs, "GET", "/api/webhooks"))


class DeleteWebhookInputs(AcmeInputs):
    """Which webhook to remove."""

    id: str | None = Field(
        title="Id",
        description="Id of the webhook. Empty deletes nothing (e.g. for an instance whose "
        "deploy stopped before creating it).",
    )
    missing_ok: bool = Field(
        True,
        title="Already gone is fine",
        description="Succeed (with `deleted: false`) when Acme has no such webhook.",
    )


class DeleteOutput(BaseModel):
    id: str | None = Field(description="The id asked for.")
    deleted: bool = Field(description="Whether something was deleted.")


class DeleteWebhook(Action[DeleteWebhookInputs]):
    key = "delete_webhook"
    title = "Delete a webhook"
    description = "Removes a webhook from Acme."
    Inputs = DeleteWebhookInputs
    Output = DeleteOutput

    async def run(self, inputs: DeleteWebhookInputs, ctx: StepContext) -> Result:
        if not inputs.id:
            ctx.log.info("no id given: nothing to delete")
            return Result({"id": inputs.id, "deleted": False})
        path = f"/api/webhooks/{quote(inputs.id, safe='')}"
        answer = await call_acme(ctx, inputs, "DELETE", path, missing_ok=inputs.missing_ok)
        return Result({"id": inputs.id, "deleted": answer is not _MISSING})


# --- records --------------------------------------------------------------------------------------


class FindInputs(AcmeInputs):
    """The external id to look up."""

    external_id: str = Field(
        min_length=1,
        title="External id",
        description="The id of the linked record in the other app, e.g. "
        "`{{ trigger.body.record.id }}`.",
    )


class FindOutput(BaseModel):
    found: bool = Field(description="Whether a record is linked to the external id.")
    record: dict[str, Any] | None = Field(description="The record, or null.")


class _Find(Action[FindInputs]):
    plural: ClassVar[str]
    Inputs = FindInputs
    Output = FindOutput

    async def run(self, inputs: FindInputs, ctx: StepContext) -> Result:
        params = {"external_id": inputs.external_id}
        page = await call_acme(ctx, inputs, "GET", f"/api/{self.plural}", params=params)
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise StepError(f"Acme's list of {self.plural} has no `items`.")
        return Result({"found": bool(items), "record": items[0] if items else None})


class FindAccount(_Find):
    key = "find_account"
    title = "Find account by external id"
    description = (
        "Looks up the Acme account linked to an external id; `found` says if there is one."
    )
    plural = "accounts"


class FindOpportunity(_Find):
    key = "find_opportunity"
    title = "Find opportunity by external id"
    description = "Looks up the Acme opportunity linked to an external id."
    plural = "opportunities"


class _UpdateInputs(AcmeInputs):
    id: str = Field(min_length=1, title="Id", description="Id of the Acme record to change.")


class _Create(Action[AcmeInputs]):
    plural: ClassVar[str]

    async def run(self, inputs: AcmeInputs, ctx: StepContext) -> Result:
        body = _fields(inputs, update=False)
        return Result(await call_acme(ctx, inputs, "POST", f"/api/{self.plural}", body=body))


class _Update(Action[_UpdateInputs]):
    plural: ClassVar[str]

    async def run(self, inputs: _UpdateInputs, ctx: StepContext) -> Result:
        body = _fields(inputs, update=True)
        path = f"/api/{self.plural}/{quote(inputs.id, safe='')}"
        return Result(await call_acme(ctx, inputs, "PATCH", path, body=body))


_EXTERNAL = "Id of the linked record in the other app, e.g. the CRM id."
_UNCHANGED = " Left out: unchanged; null clears it."


class CreateAccountInputs(AcmeInputs):
    """The new account's fields."""

    name: str = Field(min_length=1, title="Name", description="Account name.")
    industry: str | None = Field(None, title="Industry", description="e.g. Manufacturing.")
    website: str | None = Field(None, title="Website", description="e.g. https://globex.example.")
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL)


class UpdateAccountInputs(_UpdateInputs):
    """The fields to change."""

    name: str | None = Field(None, title="Name", description="Account name." + _UNCHANGED)
    industry: str | None = Field(None, title="Industry", description="Industry." + _UNCHANGED)
    website: str | None = Field(None, title="Website", description="Website." + _UNCHANGED)
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL + _UNCHANGED)


class CreateAccount(_Create):
    key = "create_account"
    title = "Create an account"
    description = "Creates an account in Acme."
    Inputs = CreateAccountInputs
    plural = "accounts"


class UpdateAccount(_Update):
    key = "update_account"
    title = "Update an account"
    description = "Changes the given fields of an Acme account; Acme ignores a no-op."
    Inputs = UpdateAccountInputs
    plural = "accounts"


class CreateOpportunityInputs(AcmeInputs):
    """The new opportunity's fields."""

    name: str = Field(min_length=1, title="Name", description="Opportunity name.")
    amount_cents: int = Field(ge=0, title="Amount (cents)", description="1250.50 is 125050.")
    stage: str | None = Field(None, title="Stage", description="e.g. Prospecting, Closed Won.")
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL)


class UpdateOpportunityInputs(_UpdateInputs):
    """The fields to change."""

    name: str | None = Field(None, title="Name", description="Opportunity name." + _UNCHANGED)
    amount_cents: int | None = Field(
        None, ge=0, title="Amount (cents)", description="1250.50 is 125050." + _UNCHANGED
    )
    stage: str | None = Field(None, title="Stage", description="Stage." + _UNCHANGED)
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL + _UNCHANGED)


class CreateOpportunity(_Create):
    key = "create_opportunity"
    title = "Create an opportunity"
    description = "Creates an opportunity in Acme (Acme sends no webhook for creations)."
    Inputs = CreateOpportunityInputs
    plural = "opportunities"


class UpdateOpportunity(_Update):
    key = "update_opportunity"
    title = "Update an opportunity"
    description = (
        "Changes the given fields of an Acme opportunity. Acme sends its `opportunity.updated` "
        "webhook only when something really changed."
    )
    Inputs = UpdateOpportunityInputs
    plural = "opportunities"


# --- trigger --------------------------------------------------------------------------------------


class AcmeSignature(Inputs):
    """How Acme signs webhooks; the server checks it before storing a request."""

    scheme: Literal["hmac_sha256"] = Field(
        title="Signature scheme", description="Acme signs with `hmac_sha256`."
    )
    header: str = Field(
        min_length=1, title="Signature header", description="Acme sends `X-Acme-Signature`."
    )
    prefix: str = Field(
        "sha256=", title="Signature prefix", description="Text before the hex digest."
    )
    secret: SecretStr = Field(
        title="Secret",
        description="The signing secret given when the webhook was created, usually "
        "`{{ config.webhook_secret }}`.",
    )


class AcmeWebhookInputs(Inputs):
    """Which event the flow takes, plus the signature check the server runs at ingest."""

    event: AcmeEvent = Field(
        "opportunity.updated",
        title="Event",
        description="Requests for any other event are refused by the trigger.",
    )
    signature: AcmeSignature = Field(
        title="Signature verification",
        description="Unsigned or forged requests are refused with 401 and never stored.",
    )
    delivery_id_header: str = Field(
        min_length=1,
        title="Delivery id header",
        description="Acme sends `X-Acme-Delivery`; a redelivery with the same id runs once.",
    )


class AcmeWebhook(Trigger[AcmeWebhookInputs]):
    key = "webhook"
    title = "Acme webhook"
    description = "Starts the flow when Acme sends a webhook, e.g. an opportunity update."
    kind = "webhook"
    Inputs = AcmeWebhookInputs
    sample_payload = {
        "body": {
            "id": "c9f0f895fb98ab9159f51fd0297e236d",
            "event": "opportunity.updated",
            "occurred_at": 1767225600.0,
            "data": {
                "id": "opp_5e2a9c1f0b7d",
                "name": "Globex renewal",
                "amount_cents": 125050,
                "stage": "Proposal",
                "external_id": "006a1b2c3d4e5f",
            },
            "changed": ["amount_cents"],
        },
        "headers": {
            "content-type": "application/json",
            "x-acme-delivery": "c9f0f895fb98ab9159f51fd0297e236d",
            "x-acme-event": "opportunity.updated",
        },
        "query": {},
    }

    async def run(self, inputs: AcmeWebhookInputs, event: TriggerEvent, ctx: TriggerContext) -> Any:
        # The signature was checked at ingest: checking again here would refuse the designer's
        # test payloads, which are not signed.
        body = event.body
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise StepError(
                "This request is not an Acme webhook: its body has no `data` object.",
                hint="Point only Acme webhooks at this flow's URL.",
            )
        if body.get("event") != inputs.event:
            raise StepError(
                f"This flow takes '{inputs.event}' webhooks, but Acme sent '{body.get('event')}'.",
                hint="Point each Acme webhook at the flow for its event.",
            )
        return event.as_payload()


component = Component(
    key="acme",
    title="Acme",
    category="Apps",
    version="1.0.0",
    description="The demo Acme app (your app): users, webhooks, accounts and opportunities.",
    actions=[
        GetCurrentUser,
        CreateWebhook,
        ListWebhooks,
        DeleteWebhook,
        FindAccount,
        FindOpportunity,
        CreateAccount,
        UpdateAccount,
        CreateOpportunity,
        UpdateOpportunity,
    ],
    triggers=[AcmeWebhook],
)
