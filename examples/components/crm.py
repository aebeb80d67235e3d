"""The demo CRM (examples/demoapps) as a Flowyard custom component, built on `components.api` only.

Load it like any custom component: `FLOWYARD_COMPONENTS_DIR=examples/components flowyard serve`.
Every action takes the CRM's base URL (usually `{{ config.crm_url }}`) and a connection slot:
an `oauth2` connection (the CRM is an OAuth 2.0 provider, like Salesforce) sends a fresh access
token, refreshed by the host before it expires and once more after a 401; an `api_key` one sends
its `api_key` as `Authorization: Bearer <api key>`. A 5xx, a timeout or a refused
connection raises `RetryableError` (the step's retry policy applies); another 4xx raises
`StepError` with the CRM's own message.

The triggers `crm.account_message` and `crm.opportunity_message` start a flow when an outbound
message arrives. The server checks its signature before it stores the request (401 otherwise),
reading the trigger's `signature` and `delivery_id_header` inputs as written in the flow, so they
are required: the CRM signs the body with HMAC-SHA256 in `X-CRM-Signature: sha256=<hex>` and
sends the delivery id in `X-CRM-Delivery` (the same on every retry, so redeliveries run once).
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
    401: "Check the CRM connection of this instance (reconnect it on the instance page).",
    404: "Check the id; the record may have been deleted in the CRM.",
    409: "The CRM already links another record to this external id.",
    422: "Fix the value the CRM names; a template may resolve to the wrong type.",
}
_MISSING = object()
"""What `call_crm` returns for a 404 when `missing_ok`."""


# --- calling the CRM ------------------------------------------------------------------------------


class CrmInputs(Inputs):
    """Where the CRM is and which connection holds its API key."""

    base_url: str = Field(
        title="CRM URL",
        description="Base URL of the CRM without a trailing slash, usually `{{ config.crm_url }}`.",
        pattern=r"^https?://\S+$",
    )
    connection: str = Field(
        "crm",
        title="Connection",
        description="Connection slot to the CRM: an OAuth 2.0 connection, or an API key "
        "(field `api_key`).",
    )


async def call_crm(
    ctx: StepContext,
    inputs: CrmInputs,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
    missing_ok: bool = False,
) -> Any:
    """Call the CRM API; its JSON answer (None for an empty one, `_MISSING` for an allowed 404)."""
    slot = ctx.connections.get(inputs.connection)
    if slot is None:
        raise StepConfigError(
            f"There is no connection '{inputs.connection}' for the CRM.",
            hint="Add the connection to the integration and fill it in when deploying.",
        )
    headers = {"Accept": "application/json"}
    auth: httpx.Auth | None = None
    if slot.type == "oauth2":
        auth = slot.auth()  # a fresh access token; refreshed once more after a 401
    else:
        headers["Authorization"] = f"Bearer {slot.secret('api_key')}"
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
        response = await ctx.http.send(request, auth=auth) if auth else await ctx.http.send(request)
    except httpx.TimeoutException:
        raise RetryableError(f"The CRM did not answer {method} {path} in time.") from None
    except httpx.HTTPError as exc:
        raise RetryableError(
            f"The CRM could not be reached for {method} {path}: {exc or type(exc).__name__}.",
            hint="Check the CRM URL in the instance's config and that the CRM is running.",
        ) from None
    ctx.log.info("%s %s -> %d", method, path, response.status_code)
    if response.status_code == 404 and missing_ok:
        return _MISSING
    if response.status_code >= 400:
        message = f"The CRM refused {method} {path} ({response.status_code}): {_problem(response)}"
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableError(message, hint="The CRM is failing; the step retries by policy.")
        raise StepError(message, hint=_HINTS.get(response.status_code, ""))
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise StepError(f"The CRM answered {method} {path} with something not JSON.") from None


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


# --- user and outbound messages -------------------------------------------------------------------


class GetCurrentUser(Action[CrmInputs]):
    key = "get_current_user"
    title = "Get current user"
    description = "Returns the CRM user the connection's API key belongs to."
    Inputs = CrmInputs

    async def run(self, inputs: CrmInputs, ctx: StepContext) -> Result:
        return Result(await call_crm(ctx, inputs, "GET", "/api/me"))


class CreateOutboundMessageInputs(CrmInputs):
    """Which object's changes to send where."""

    object: Literal["account", "opportunity"] = Field(
        title="Object", description="Send the `created` and `updated` events of this object."
    )
    url: str = Field(
        title="Endpoint URL",
        description="Where the CRM posts, usually a sibling flow's "
        "`{{ instance.webhook_urls.<flow id> }}`.",
    )
    secret: SecretStr = Field(
        title="Signing secret",
        description="The CRM signs every message with it (at least 8 characters); the "
        "receiving trigger checks it.",
    )
    description: str = Field("", title="Description", description="Shown in the CRM.")


class CreateOutboundMessage(Action[CreateOutboundMessageInputs]):
    key = "create_outbound_message"
    title = "Set up outbound message"
    description = "Subscribes a URL to an object's created and updated events in the CRM."
    Inputs = CreateOutboundMessageInputs

    async def run(self, inputs: CreateOutboundMessageInputs, ctx: StepContext) -> Result:
        body = {
            "object": inputs.object,
            "url": inputs.url,
            "secret": inputs.secret.get_secret_value(),
            "description": inputs.description,
        }
        return Result(await call_crm(ctx, inputs, "POST", "/api/outbound-messages", body=body))


class ListOutput(BaseModel):
    items: list[dict[str, Any]] = Field(description="The outbound messages, oldest first.")
    count: int = Field(description="How many.")


class ListOutboundMessages(Action[CrmInputs]):
    key = "list_outbound_messages"
    title = "List outbound messages"
    description = "Lists every outbound message registered in the CRM (id, object, url)."
    Inputs = CrmInputs
    Output = ListOutput

    async def run(self, inputs: CrmInputs, ctx: StepContext) -> Result:
        return Result(await call_crm(ctx, inputs, "GET", "/api/outbound-messages"))


class DeleteOutboundMessageInputs(CrmInputs):
    """Which outbound message to remove."""

    id: str | None = Field(
        title="Id",
        description="Id of the outbound message. Empty deletes nothing (e.g. for an instance "
        "whose deploy stopped before registering it).",
    )
    missing_ok: bool = Field(
        True,
        title="Already gone is fine",
        description="Succeed (with `deleted: false`) when the CRM has no such outbound message.",
    )


class DeleteOutput(BaseModel):
    id: str | None = Field(description="The id asked for.")
    deleted: bool = Field(description="Whether something was deleted.")


class DeleteOutboundMessage(Action[DeleteOutboundMessageInputs]):
    key = "delete_outbound_message"
    title = "Delete outbound message"
    description = "Removes an outbound message from the CRM."
    Inputs = DeleteOutboundMessageInputs
    Output = DeleteOutput

    async def run(self, inputs: DeleteOutboundMessageInputs, ctx: StepContext) -> Result:
        if not inputs.id:
            ctx.log.info("no id given: nothing to delete")
            return Result({"id": inputs.id, "deleted": False})
        path = f"/api/outbound-messages/{quote(inputs.id, safe='')}"
        answer = await call_crm(ctx, inputs, "DELETE", path, missing_ok=inputs.missing_ok)
        return Result({"id": inputs.id, "deleted": answer is not _MISSING})


# --- records --------------------------------------------------------------------------------------


class FindInputs(CrmInputs):
    """The external id to look up."""

    external_id: str = Field(
        min_length=1,
        title="External id",
        description="The id of the linked record in the other app, e.g. `{{ steps.x.output.id }}`.",
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
        page = await call_crm(ctx, inputs, "GET", f"/api/{self.plural}", params=params)
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise StepError(f"The CRM's list of {self.plural} has no `items`.")
        return Result({"found": bool(items), "record": items[0] if items else None})


class FindAccount(_Find):
    key = "find_account"
    title = "Find account by external id"
    description = "Looks up the CRM account linked to an external id; `found` says if there is one."
    plural = "accounts"


class FindOpportunity(_Find):
    key = "find_opportunity"
    title = "Find opportunity by external id"
    description = "Looks up the CRM opportunity linked to an external id."
    plural = "opportunities"


class _UpdateInputs(CrmInputs):
    id: str = Field(min_length=1, title="Id", description="Id of the CRM record to change.")


class _Create(Action[CrmInputs]):
    plural: ClassVar[str]

    async def run(self, inputs: CrmInputs, ctx: StepContext) -> Result:
        body = _fields(inputs, update=False)
        return Result(await call_crm(ctx, inputs, "POST", f"/api/{self.plural}", body=body))


class _Update(Action[_UpdateInputs]):
    plural: ClassVar[str]

    async def run(self, inputs: _UpdateInputs, ctx: StepContext) -> Result:
        body = _fields(inputs, update=True)
        path = f"/api/{self.plural}/{quote(inputs.id, safe='')}"
        return Result(await call_crm(ctx, inputs, "PATCH", path, body=body))


_EXTERNAL = "Id of the linked record in the other app."
_UNCHANGED = " Left out: unchanged; null clears it."


class CreateAccountInputs(CrmInputs):
    """The new account's fields."""

    name: str = Field(min_length=1, title="Name", description="Account name.")
    industry: str | None = Field(None, title="Industry", description="e.g. Manufacturing.")
    website: str | None = Field(None, title="Website", description="e.g. https://globex.example.")
    phone: str | None = Field(None, title="Phone", description="Main phone number.")
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL)


class UpdateAccountInputs(_UpdateInputs):
    """The fields to change."""

    name: str | None = Field(None, title="Name", description="Account name." + _UNCHANGED)
    industry: str | None = Field(None, title="Industry", description="Industry." + _UNCHANGED)
    website: str | None = Field(None, title="Website", description="Website." + _UNCHANGED)
    phone: str | None = Field(None, title="Phone", description="Phone." + _UNCHANGED)
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL + _UNCHANGED)


class CreateAccount(_Create):
    key = "create_account"
    title = "Create an account"
    description = "Creates an account in the CRM."
    Inputs = CreateAccountInputs
    plural = "accounts"


class UpdateAccount(_Update):
    key = "update_account"
    title = "Update an account"
    description = "Changes the given fields of a CRM account; the CRM ignores a no-op."
    Inputs = UpdateAccountInputs
    plural = "accounts"


class CreateOpportunityInputs(CrmInputs):
    """The new opportunity's fields."""

    name: str = Field(min_length=1, title="Name", description="Opportunity name.")
    amount: float = Field(ge=0, title="Amount", description="In currency units, 2 decimals.")
    stage: str | None = Field(None, title="Stage", description="e.g. Prospecting, Closed Won.")
    close_date: str | None = Field(None, title="Close date", description="YYYY-MM-DD.")
    account_id: str | None = Field(None, title="Account id", description="Id of a CRM account.")
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL)


class UpdateOpportunityInputs(_UpdateInputs):
    """The fields to change."""

    name: str | None = Field(None, title="Name", description="Opportunity name." + _UNCHANGED)
    amount: float | None = Field(
        None, ge=0, title="Amount", description="In currency units, 2 decimals." + _UNCHANGED
    )
    stage: str | None = Field(None, title="Stage", description="Stage." + _UNCHANGED)
    close_date: str | None = Field(None, title="Close date", description="YYYY-MM-DD." + _UNCHANGED)
    account_id: str | None = Field(None, title="Account id", description="Account." + _UNCHANGED)
    external_id: str | None = Field(None, title="External id", description=_EXTERNAL + _UNCHANGED)


class CreateOpportunity(_Create):
    key = "create_opportunity"
    title = "Create an opportunity"
    description = "Creates an opportunity in the CRM."
    Inputs = CreateOpportunityInputs
    plural = "opportunities"


class UpdateOpportunity(_Update):
    key = "update_opportunity"
    title = "Update an opportunity"
    description = (
        "Changes the given fields of a CRM opportunity. The CRM sends no outbound message when "
        "nothing changes, which is what lets a two-way sync settle."
    )
    Inputs = UpdateOpportunityInputs
    plural = "opportunities"


# --- triggers -------------------------------------------------------------------------------------


class CrmSignature(Inputs):
    """How the CRM signs outbound messages; the server checks it before storing a request."""

    scheme: Literal["hmac_sha256"] = Field(
        title="Signature scheme", description="The CRM signs with `hmac_sha256`."
    )
    header: str = Field(
        min_length=1, title="Signature header", description="The CRM sends `X-CRM-Signature`."
    )
    prefix: str = Field(
        "sha256=", title="Signature prefix", description="Text before the hex digest."
    )
    secret: SecretStr = Field(
        title="Secret",
        description="The signing secret given when the outbound message was set up, usually "
        "`{{ config.webhook_secret }}`.",
    )


class OutboundMessageInputs(Inputs):
    """Signature check and redelivery detection, as the server reads them at ingest."""

    signature: CrmSignature = Field(
        title="Signature verification",
        description="Unsigned or forged requests are refused with 401 and never stored.",
    )
    delivery_id_header: str = Field(
        min_length=1,
        title="Delivery id header",
        description="The CRM sends `X-CRM-Delivery`; a redelivery with the same id runs once.",
    )


def _sample(obj: str, record: dict[str, Any]) -> dict[str, Any]:
    body = {
        "id": "8f14e45fceea167a5a36dedd4bea2543",
        "event": f"{obj}.updated",
        "object": obj,
        "occurred_at": 1767225600.0,
        "record": record,
        "changed": ["name"],
    }
    headers = {
        "content-type": "application/json",
        "x-crm-delivery": "8f14e45fceea167a5a36dedd4bea2543",
        "x-crm-event": f"{obj}.updated",
    }
    return {"body": body, "headers": headers, "query": {}}


class _OutboundMessage(Trigger[OutboundMessageInputs]):
    kind = "webhook"
    object: ClassVar[str]
    Inputs = OutboundMessageInputs

    async def run(
        self, inputs: OutboundMessageInputs, event: TriggerEvent, ctx: TriggerContext
    ) -> Any:
        # The signature was checked at ingest: checking again here would refuse the designer's
        # test payloads, which are not signed.
        body = event.body
        if not isinstance(body, dict) or not isinstance(body.get("record"), dict):
            raise StepError(
                "This request is not a CRM outbound message: its body has no `record` object.",
                hint="Point only CRM outbound messages at this flow's URL.",
            )
        sent = body.get("object")
        if sent != self.object:
            raise StepError(
                f"This flow takes {self.object} messages, but the CRM sent a {sent} message.",
                hint=f"Point the CRM's {sent} outbound message at the flow for {sent}s.",
            )
        return event.as_payload()


class AccountMessage(_OutboundMessage):
    key = "account_message"
    title = "CRM account trigger"
    description = (
        "Starts the flow when the CRM sends an account outbound message (created, updated)."
    )
    object = "account"
    sample_payload = _sample(
        "account",
        {
            "id": "001a1b2c3d4e5f",
            "name": "Globex",
            "industry": "Manufacturing",
            "external_id": None,
        },
    )


class OpportunityMessage(_OutboundMessage):
    key = "opportunity_message"
    title = "CRM opportunity trigger"
    description = "Starts the flow when the CRM sends an opportunity outbound message."
    object = "opportunity"
    sample_payload = _sample(
        "opportunity",
        {"id": "006a1b2c3d4e5f", "name": "Globex renewal", "amount": 1250.5, "stage": "Proposal"},
    )


component = Component(
    key="crm",
    title="Demo CRM",
    category="Apps",
    version="1.0.0",
    description="The demo CRM (a stand-in for Salesforce): users, outbound messages, accounts "
    "and opportunities.",
    actions=[
        GetCurrentUser,
        CreateOutboundMessage,
        ListOutboundMessages,
        DeleteOutboundMessage,
        FindAccount,
        FindOpportunity,
        CreateAccount,
        UpdateAccount,
        CreateOpportunity,
        UpdateOpportunity,
    ],
    triggers=[AccountMessage, OpportunityMessage],
)
