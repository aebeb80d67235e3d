"""The receive-side contract of webhook triggers: what the server asks before it stores a request.

The server owns the socket; the trigger owns the rules. For a flow started by a webhook-kind
trigger the server calls, on the event loop and with no I/O of its own in between:

1. `Trigger.ingress(inputs)` once per deployed flow (cached with routing): the methods it takes,
   the body cap, whether it answers synchronously and how bodies are parsed (`Ingress`). The
   server answers 405 and 413 from it before it reads the body.
2. `Trigger.admit(inputs, request)` per request, with the raw body (`IncomingRequest`): raise
   `Refused(status, message)` to refuse it (a bad signature is 401), or return an `Admission`
   with the delivery id redeliveries share and, for handshakes (Slack's url_verification, a GET
   challenge), a `reply` sent at once without storing or running anything.

Both must be quick and must not block: they run on the server's event loop. `ReceiveSettings`
holds the fields the built-in webhook trigger offers; a custom trigger whose inputs use the same
field names gets the same checks without writing either method.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.errors import Refused
from components.signatures import SignatureSettings, verify_signature

__all__ = [
    "DEFAULT_DELIVERY_ID_HEADERS",
    "Admission",
    "HttpMethod",
    "IncomingRequest",
    "Ingress",
    "ReceiveSettings",
    "Response",
    "first_header",
]

DEFAULT_DELIVERY_ID_HEADERS = ("webhook-id", "X-GitHub-Delivery", "Idempotency-Key")
"""Headers a delivery id is read from when a trigger names none."""

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

_XML_NAME = re.compile(r"[^\W\d][\w.\-]*(?::[^\W\d][\w.\-]*)?")
"""An element name, optionally with one namespace prefix (`Notification`, `sf:Notification`)."""


@dataclass(frozen=True, slots=True)
class Response:
    """The reply of a synchronous webhook (set by the respond step) or of a handshake."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(slots=True)  # not frozen: one is made per request, and frozen ones cost ~5x to make
class IncomingRequest:
    """A request as `Trigger.admit` sees it (read it, do not change it): header names are
    lower-case, the body is raw."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, Any]
    raw_body: bytes
    received_at: float
    """Unix time the request arrived (for timestamp tolerance windows)."""


@dataclass(frozen=True, slots=True)
class Ingress:
    """How the server receives requests for one flow, as its trigger says (`Trigger.ingress`)."""

    methods: tuple[str, ...] = ("POST",)
    """Other methods are answered 405 with an `Allow` header."""
    max_body_bytes: int = 1_048_576
    """Larger bodies are answered 413 before anything is stored."""
    sync: bool = False
    allow_sync_header: bool = False
    sync_timeout: float = 10.0
    form_json_fields: tuple[str, ...] = ()
    xml_strip_namespaces: bool = False
    xml_force_list: tuple[str, ...] = ()


@dataclass(slots=True)  # not frozen, as `IncomingRequest`: one per request
class Admission:
    """A request the trigger accepts: its delivery id, and a reply for handshakes."""

    delivery_id: str | None = None
    """Redeliveries with the same id run once (None: every request is new)."""
    reply: Response | None = None
    """Answer with this at once; the request is neither stored nor run (a handshake)."""


def first_header(headers: Mapping[str, str], names: Sequence[str]) -> str | None:
    """The first non-blank value of `names` in lower-cased `headers`, stripped."""
    for name in names:
        value = headers.get(name.lower(), "").strip()
        if value:
            return value
    return None


def _default_methods() -> list[HttpMethod]:
    return ["POST"]


class ReceiveSettings(BaseModel):
    """The receive-side fields of a webhook trigger (the built-in one's inputs build on them)."""

    model_config = ConfigDict(extra="forbid")  # as `components.api.Inputs`, which imports this

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

    def ingress(self) -> Ingress:
        """These settings as the server reads them."""
        return Ingress(
            methods=tuple(self.methods),
            max_body_bytes=self.max_body_bytes,
            sync=self.sync,
            allow_sync_header=self.allow_sync_header,
            sync_timeout=self.sync_timeout,
            form_json_fields=tuple(self.form_json_fields),
            xml_strip_namespaces=self.xml_strip_namespaces,
            xml_force_list=tuple(self.xml_force_list),
        )

    def admit(self, request: IncomingRequest) -> Admission:
        """Check the signature (401 `Refused` naming the header) and read the delivery id."""
        if self.signature.scheme != "none":
            try:
                verify_signature(
                    self.signature, request.headers, request.raw_body, request.received_at
                )
            except Refused:
                raise
            except Exception:  # malformed input must never become a 500
                raise Refused(401, "The webhook signature could not be checked.") from None
        names = (self.delivery_id_header,) if self.delivery_id_header else None
        delivery = first_header(request.headers, names or DEFAULT_DELIVERY_ID_HEADERS)
        return Admission(delivery_id=delivery)

    @classmethod
    def of(cls, inputs: BaseModel) -> ReceiveSettings:
        """The receive settings a trigger's inputs hold under these fields' names (the others
        are ignored); raises `ValidationError` when one of them is invalid."""
        if isinstance(inputs, cls):
            return inputs
        values = inputs.model_dump()
        return cls.model_validate({k: v for k, v in values.items() if k in cls.model_fields})


def _unique(names: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is listed twice; list it once")
        seen.add(name)
    return names
