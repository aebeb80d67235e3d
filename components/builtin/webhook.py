"""The webhook trigger: a flow starts when an HTTP request arrives at its URL.

The server owns the ingress (routing, body limits, delivery ids, synchronous replies) and reads
this trigger's inputs to do it. Before it acknowledges a request it calls `verify_signature` with
the raw body, so a forged request is refused with a 4xx and never stored. The trigger's `run` does
not verify again: a recovered execution replays an old request, which a tolerance window would
wrongly refuse.

The inputs also say how the body becomes `trigger.body` beyond its Content-Type (form fields
holding JSON, XML namespaces and lists; see `app.services.bodies`). `form_json_fields` is empty by
default rather than `["payload"]`, although GitHub's form deliveries carry their event there: a
named field that is not JSON refuses the whole delivery with 400, which a form from another sender
with a plain-text `payload` must not suffer, and a default would turn `trigger.body.payload` from
text into an object in flows already deployed. A GitHub user sets `["payload"]` once (the field's
description says so) or picks `application/json` in GitHub's webhook settings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from components.api import Component, Inputs, StepError, Trigger

__all__ = [
    "DEFAULT_DELIVERY_ID_HEADERS",
    "SignatureSettings",
    "WebhookInputs",
    "WebhookTrigger",
    "component",
    "verify_signature",
]

DEFAULT_DELIVERY_ID_HEADERS = ("webhook-id", "X-GitHub-Delivery", "Idempotency-Key")
"""Headers the server reads a delivery id from when `delivery_id_header` is not set."""

_MAX_SIGNATURES = 16
"""Standard Webhooks allows several signatures (key rotation); more than this is not a sender."""

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

_XML_NAME = re.compile(r"[^\W\d][\w.\-]*(?::[^\W\d][\w.\-]*)?")
"""An element name, optionally with one namespace prefix (`Notification`, `sf:Notification`)."""


def _default_methods() -> list[HttpMethod]:
    return ["POST"]


class SignatureSettings(Inputs):
    """How a request proves it comes from the sender: a shared secret signs the raw body."""

    scheme: Literal["none", "hmac_sha256", "standard_webhooks"] = Field(
        "none",
        title="Signature scheme",
        description="`hmac_sha256`: a hex HMAC-SHA256 of the body in one header (GitHub, Shopify "
        "style). `standard_webhooks`: the webhook-id / webhook-timestamp / webhook-signature "
        "headers of the Standard Webhooks spec. `none`: accept unsigned requests.",
    )
    header: str = Field(
        "X-Hub-Signature-256",
        min_length=1,
        title="Signature header",
        description="Header holding the HMAC signature (hmac_sha256 only).",
    )
    prefix: str = Field(
        "sha256=",
        title="Signature prefix",
        description="Text before the hex digest in the header, e.g. `sha256=` for GitHub; "
        "empty when the header holds only the digest (hmac_sha256 only).",
    )
    secret: SecretStr | None = Field(
        None,
        title="Secret",
        description="The shared signing secret. For Standard Webhooks it is the `whsec_...` "
        "value the sender shows.",
    )
    tolerance_seconds: int = Field(
        300,
        ge=1,
        le=86_400,
        title="Timestamp tolerance (s)",
        description="How far the webhook-timestamp may be from now before the request is "
        "refused as a replay (standard_webhooks only).",
    )

    @field_validator("secret")
    @classmethod
    def _decodable(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # A Standard Webhooks secret that does not decode would fail every request: refuse it
        # here, so validation, import and deploy name it. Empty ones are left to the check below.
        text = value.get_secret_value() if value is not None else ""
        if text and info.data.get("scheme") == "standard_webhooks":
            try:
                _standard_key(text)
            except StepError as exc:
                raise ValueError(f"{exc.message} {exc.hint}".strip()) from None
        return value

    @model_validator(mode="after")
    def _secret_when_signed(self) -> SignatureSettings:
        if self.scheme != "none" and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError(
                f"signature scheme '{self.scheme}' needs a secret; set one or choose 'none'"
            )
        return self


class WebhookInputs(Inputs):
    """How the server accepts requests for this flow."""

    methods: list[HttpMethod] = Field(
        default_factory=_default_methods,
        min_length=1,
        title="Methods",
        description="HTTP methods accepted; other methods are answered with 405.",
    )
    sync: bool = Field(
        False,
        title="Synchronous",
        description="Hold the request open and answer with the flow's Respond step (status, "
        "headers, body) instead of acknowledging at once.",
    )
    allow_sync_header: bool = Field(
        False,
        title="Allow X-Flowyard-Sync",
        description="Let a request ask for a synchronous answer with the header "
        "`X-Flowyard-Sync: true`, even when Synchronous is off.",
    )
    sync_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        title="Synchronous timeout (s)",
        description="Seconds to wait for the Respond step; after that the request is answered "
        "with the execution id and the flow keeps running.",
    )
    delivery_id_header: str | None = Field(
        None,
        title="Delivery id header",
        description="Header whose value identifies a delivery, so redeliveries run once. Empty: "
        "webhook-id, X-GitHub-Delivery or Idempotency-Key.",
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1,
        le=64 * 1_048_576,
        title="Maximum body size (bytes)",
        description="Larger requests are refused with 413 before anything is stored.",
    )
    signature: SignatureSettings = Field(
        default_factory=SignatureSettings,
        title="Signature verification",
        description="Check that requests are signed with a shared secret; unsigned or forged "
        "requests are refused with 401.",
    )
    form_json_fields: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Form fields holding JSON",
        description="Fields of a form-encoded body (application/x-www-form-urlencoded) whose "
        "value is a JSON document, parsed so that `trigger.body.<field>` is that document: "
        '`["payload"]` for GitHub (whose webhook form defaults to this content type) and '
        "Slack interactivity. A request whose field is not valid JSON is refused with 400.",
    )
    xml_strip_namespaces: bool = Field(
        False,
        title="Strip XML namespace prefixes",
        description="In an XML body, drop namespace prefixes from element and attribute names "
        "(`soapenv:Envelope` becomes `Envelope`, `@xsi:type` becomes `@type`) and leave out "
        "the `xmlns` declarations.",
    )
    xml_force_list: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="XML elements always a list",
        description="Element names that are always a list in an XML body, even when the "
        "request holds only one (e.g. `Notification` in a Salesforce outbound message), so a "
        "loop over them works for one item too. A name without a prefix also matches the "
        "prefixed element.",
    )

    @field_validator("form_json_fields")
    @classmethod
    def _field_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name.strip() or len(name) > 200:
                raise ValueError(f"form field name {name!r} must be 1-200 characters and not blank")
        return _unique(names, "form field")

    @field_validator("xml_force_list")
    @classmethod
    def _element_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _XML_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an XML element name; write the name as it appears in "
                    "the XML (letters, digits, '.', '-', '_', optionally a 'prefix:'), e.g. "
                    "'Notification'"
                )
        return _unique(names, "element")


def _unique(names: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is listed twice; list it once")
        seen.add(name)
    return names


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


def verify_signature(
    settings: SignatureSettings,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float,
) -> None:
    """Check a request's signature; raise `StepError` saying why when it does not verify.

    `headers` are matched case-insensitively, `raw_body` must be the bytes as received and `now` is
    the current Unix time (for the Standard Webhooks tolerance window). Digests are compared in
    constant time. Malformed headers or secrets raise `StepError` too, never anything else.
    """
    if settings.scheme == "none":
        return
    lowered = {k.lower(): v for k, v in headers.items()}
    secret = settings.secret.get_secret_value() if settings.secret is not None else ""
    if not secret:
        raise StepError(
            f"Webhook signature scheme '{settings.scheme}' is set but no secret is configured.",
            hint="Set the signature secret on the webhook trigger.",
        )
    if settings.scheme == "hmac_sha256":
        _verify_hmac(settings, lowered, raw_body, secret)
    else:
        _verify_standard(settings, lowered, raw_body, secret, now)


def _verify_hmac(
    settings: SignatureSettings, headers: Mapping[str, str], raw_body: bytes, secret: str
) -> None:
    provided = headers.get(settings.header.lower())
    if provided is None:
        raise StepError(
            f"Webhook signature header '{settings.header}' is missing.",
            hint="Check that the sender signs requests and that the header name matches.",
        )
    provided = provided.strip()
    if not provided.startswith(settings.prefix):
        raise StepError(
            f"Webhook signature header '{settings.header}' is malformed: it does not start "
            f"with '{settings.prefix}'.",
            hint="Check the signature prefix on the webhook trigger.",
        )
    try:
        digest = bytes.fromhex(provided[len(settings.prefix) :])
    except ValueError:
        raise StepError(
            f"Webhook signature header '{settings.header}' is malformed: expected a hex digest."
        ) from None
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, digest):
        raise StepError(
            "Webhook signature does not match the body.",
            hint="The secret differs from the sender's, or the body was changed on the way.",
        )


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    # Senders hand out secrets without base64's trailing '=' and the reference library accepts
    # them (it decodes `secret + "=="`): add the padding they lack.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise StepError(
            "The Standard Webhooks secret is not valid base64.",
            hint="Paste the whole `whsec_...` secret the sender shows.",
        ) from None
    if not key:
        raise StepError("The Standard Webhooks secret is empty.")
    return key


def _verify_standard(
    settings: SignatureSettings,
    headers: Mapping[str, str],
    raw_body: bytes,
    secret: str,
    now: float,
) -> None:
    missing = [
        h
        for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
        if not (headers.get(h) or "").strip()
    ]
    if missing:
        raise StepError(
            f"Webhook signature header{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} {'are' if len(missing) > 1 else 'is'} missing.",
            hint="Standard Webhooks senders send webhook-id, webhook-timestamp and "
            "webhook-signature on every request.",
        )
    msg_id = headers["webhook-id"].strip()
    raw_ts = headers["webhook-timestamp"].strip()
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12:
        raise StepError("Webhook header webhook-timestamp is malformed: expected Unix seconds.")
    timestamp = int(raw_ts)
    if timestamp < now - settings.tolerance_seconds:
        raise StepError(
            "Webhook timestamp is too old; the request may be a replay.",
            hint=f"Requests are accepted within {settings.tolerance_seconds} s of their "
            "timestamp. Check the server clock.",
        )
    if timestamp > now + settings.tolerance_seconds:
        raise StepError(
            "Webhook timestamp is too far in the future.",
            hint="Check the sender's and the server's clocks.",
        )
    key = _standard_key(secret)
    try:
        signed = f"{msg_id}.{raw_ts}.".encode() + raw_body
    except UnicodeEncodeError:
        raise StepError("Webhook header webhook-id is malformed.") from None
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    entries = headers["webhook-signature"].split()
    if len(entries) > _MAX_SIGNATURES:
        raise StepError("Webhook header webhook-signature holds too many signatures.")
    found_v1 = False
    for entry in entries:
        version, sep, value = entry.partition(",")
        if not sep or version != "v1":
            continue
        found_v1 = True
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return
    if not found_v1:
        raise StepError(
            "Webhook header webhook-signature is malformed: no `v1,<base64>` signature in it."
        )
    raise StepError(
        "Webhook signature does not match the body.",
        hint="The secret differs from the sender's, or the body was changed on the way.",
    )


component = Component(
    key="webhook",
    title="Webhook",
    category="Triggers",
    version="1.0.0",
    description="Start a flow from an HTTP request to its own URL.",
    triggers=[WebhookTrigger],
)
