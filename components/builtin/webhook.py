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

from components.api import (
    Admission,
    Component,
    IncomingRequest,
    Ingress,
    ReceiveSettings,
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


class WebhookInputs(ReceiveSettings):
    """How the server accepts requests for this flow: methods, body cap, signature scheme
    (`SignatureSettings`), delivery id, synchronous answers and body parsing."""


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
        return inputs.admit(request)


component = Component(
    key="webhook",
    title="Webhook",
    category="Triggers",
    version="1.0.0",
    description="Start a flow from an HTTP request to its own URL.",
    triggers=[WebhookTrigger],
)
