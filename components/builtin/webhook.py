"""The webhook trigger: a flow starts when an HTTP request arrives at its URL.

The server owns the socket; this trigger owns the rules, through the same receive-side contract
a custom trigger implements (`components.ingress`): `ingress` says which methods, body size and
parsing the flow takes, and `admit` checks the signature against the raw body and names the
delivery id before anything is stored, so a forged request is refused with 401 and never kept.
The signature schemes (GitHub, Stripe, Slack, Shopify, Standard Webhooks, a generic HMAC) are the
choices of `SignatureSettings`. The trigger's `run` does not verify again: a recovered execution
replays an old request, which a tolerance window would wrongly refuse.

The inputs also say how the body becomes `trigger.body` beyond its Content-Type (form fields
holding JSON, XML namespaces and lists; see `app.services.bodies`). `form_json_fields` is empty by
default rather than `["payload"]`, although GitHub's form deliveries carry their event there: a
named field that is not JSON refuses the whole delivery with 400, which a form from another sender
with a plain-text `payload` must not suffer, and a default would turn `trigger.body.payload` from
text into an object in flows already deployed. A GitHub user sets `["payload"]` once (the field's
description says so) or picks `application/json` in GitHub's webhook settings.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field

from components.api import (
    Admission,
    Component,
    IncomingRequest,
    Ingress,
    ReceiveSettings,
    Response,
    SignatureSettings,
    Trigger,
    verify_signature,
)

__all__ = [
    "SignatureSettings",
    "WebhookInputs",
    "WebhookTrigger",
    "component",
    "verify_signature",
]


_HANDSHAKE_BYTES = 4096
"""Slack's url_verification body is ~150 bytes: larger bodies are never parsed as one."""


class WebhookInputs(ReceiveSettings):
    """How the server accepts requests for this flow: methods, body cap, signature scheme
    (`SignatureSettings`), delivery id, synchronous answers, body parsing and handshakes."""

    handshake: Literal["none", "slack_url_verification"] = Field(
        "none",
        title="Handshake",
        description="`slack_url_verification`: answer Slack's `url_verification` request (sent "
        "when the Request URL is saved in the Slack app) with its challenge, after its "
        "signature is checked; it is not stored and runs nothing.",
    )


class WebhookTrigger(Trigger[WebhookInputs]):
    key = "webhook"
    title = "Webhook"
    description = (
        "Starts the flow when an HTTP request arrives at the flow's webhook URL. Optionally "
        "checks a signature and answers synchronously with a Respond step."
    )
    kind = "webhook"
    Inputs = WebhookInputs
    sample_payload = {
        "body": {
            "event": "account.updated",
            "id": "evt_01HZX3",
            "data": {"account_id": "acc_42", "name": "Acme Corp", "plan": "pro", "seats": 25},
        },
        "headers": {"content-type": "application/json", "webhook-id": "msg_01HZX3"},
        "query": {},
    }

    def ingress(self, inputs: WebhookInputs) -> Ingress:
        return inputs.ingress()

    def admit(self, inputs: WebhookInputs, request: IncomingRequest) -> Admission:
        admission = inputs.admit(request)  # the signature first: a handshake is signed too
        if inputs.handshake == "slack_url_verification":
            challenge = _slack_challenge(request.raw_body)
            if challenge is not None:
                admission.reply = Response(200, {}, {"challenge": challenge})
        return admission


def _slack_challenge(raw: bytes) -> str | None:
    """The challenge of a Slack `url_verification` body; None for any other body."""
    if len(raw) > _HANDSHAKE_BYTES or b"url_verification" not in raw:
        return None  # every other request pays one substring search, not a JSON parse
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError includes UnicodeDecodeError
        return None
    if not isinstance(body, dict) or body.get("type") != "url_verification":
        return None
    challenge = body.get("challenge")
    return challenge if isinstance(challenge, str) else None


component = Component(
    key="webhook",
    title="Webhook",
    category="Triggers",
    version="1.0.0",
    description="Start a flow from an HTTP request to its own URL.",
    triggers=[WebhookTrigger],
)
