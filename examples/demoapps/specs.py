"""What the two demo apps hold: their record kinds, fields, events, auth and webhook shapes.

- The **CRM** (stands in for Salesforce) keeps amounts in currency units with at most two
  decimals, authenticates with `Authorization: Bearer <api key>` and calls its webhooks
  *outbound messages*: one subscription per object (`account` or `opportunity`) receives that
  object's `created` and `updated` events as `{"id", "event", "object", "occurred_at",
  "record", "changed"}`.
- **Acme** keeps amounts in integer cents, authenticates with `X-API-Key: <api key>` and has
  *webhooks*: one subscription per event (e.g. `opportunity.updated`), delivered as `{"id",
  "event", "occurred_at", "data", "changed"}`.

Both give every record an `external_id` (unique per kind) so an integration can link records
across the apps, and both send an update event only when a field really changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ACME", "CRM", "AppSpec", "Kind"]


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: str | None = Field(
        None, max_length=100, description="Id of the linked record in another app."
    )


class CrmAccount(_Fields):
    name: str = Field(min_length=1, max_length=200)
    industry: str | None = Field(None, max_length=500)
    website: str | None = Field(None, max_length=500)
    phone: str | None = Field(None, max_length=50)


class CrmOpportunity(_Fields):
    name: str = Field(min_length=1, max_length=200)
    amount: float = Field(ge=0, le=1e12, description="In currency units, at most 2 decimals.")
    stage: str = Field("Prospecting", min_length=1, max_length=50)
    close_date: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    account_id: str | None = Field(None, max_length=50)

    @field_validator("amount")
    @classmethod
    def _cents(cls, value: float) -> float:
        if not math.isfinite(value) or round(value, 2) != value:
            raise ValueError("must have at most 2 decimals, e.g. 1250.5")
        return value


class AcmeAccount(_Fields):
    name: str = Field(min_length=1, max_length=200)
    industry: str | None = Field(None, max_length=500)
    website: str | None = Field(None, max_length=500)


class AcmeOpportunity(_Fields):
    name: str = Field(min_length=1, max_length=200)
    amount_cents: int = Field(ge=0, le=10**14, description="In cents: 1250.50 is 125050.")
    stage: str = Field("Prospecting", min_length=1, max_length=50)


@dataclass(frozen=True, slots=True)
class Kind:
    """One record kind: `accounts` at `/api/accounts`, ids starting with `prefix`."""

    name: str
    plural: str
    prefix: str
    model: type[BaseModel]
    references: dict[str, str] | None = None
    """Field -> kind whose record id it must hold (e.g. an opportunity's `account_id`)."""


@dataclass(frozen=True, slots=True)
class AppSpec:
    """Everything that differs between the two demo apps."""

    name: str
    slug: str
    kinds: tuple[Kind, ...]
    auth: Literal["bearer", "x-api-key"]
    subscriptions_path: str
    subscription_word: str
    topic_field: str
    topics: dict[str, tuple[str, ...]]
    """Topic a subscription names -> the events it receives."""
    record_key: str
    header_prefix: str
    subscription_prefix: str
    user: dict[str, Any]

    def kind(self, plural: str) -> Kind | None:
        return next((k for k in self.kinds if k.plural == plural), None)

    def payload(
        self, delivery_id: str, event: str, record: dict[str, Any], changed: list[str], at: float
    ) -> dict[str, Any]:
        """The JSON body of one delivery."""
        body: dict[str, Any] = {"id": delivery_id, "event": event}
        if self.topic_field == "object":
            body["object"] = event.partition(".")[0]
        body.update({"occurred_at": at, self.record_key: record, "changed": changed})
        return body

    def auth_hint(self) -> str:
        if self.auth == "bearer":
            return "Send the API key as 'Authorization: Bearer <api key>'."
        return "Send the API key in the 'X-API-Key' header."


CRM = AppSpec(
    name="Demo CRM",
    slug="crm",
    kinds=(
        Kind("account", "accounts", "001", CrmAccount),
        Kind("opportunity", "opportunities", "006", CrmOpportunity, {"account_id": "account"}),
    ),
    auth="bearer",
    subscriptions_path="outbound-messages",
    subscription_word="outbound message",
    topic_field="object",
    topics={
        "account": ("account.created", "account.updated"),
        "opportunity": ("opportunity.created", "opportunity.updated"),
    },
    record_key="record",
    header_prefix="X-CRM",
    subscription_prefix="04k",
    user={
        "id": "005000000000001",
        "name": "Ada Admin",
        "email": "ada.admin@crm.example",
        "organization": "Demo CRM Org",
    },
)

ACME = AppSpec(
    name="Acme",
    slug="acme",
    kinds=(
        Kind("account", "accounts", "acct_", AcmeAccount),
        Kind("opportunity", "opportunities", "opp_", AcmeOpportunity),
    ),
    auth="x-api-key",
    subscriptions_path="webhooks",
    subscription_word="webhook",
    topic_field="event",
    topics={
        event: (event,)
        for event in (
            "account.created",
            "account.updated",
            "opportunity.created",
            "opportunity.updated",
        )
    },
    record_key="data",
    header_prefix="X-Acme",
    subscription_prefix="wh_",
    user={"id": "usr_1", "name": "Grace Ops", "email": "grace@acme.example", "team": "Acme Ops"},
)
