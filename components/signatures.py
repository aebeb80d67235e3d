"""Webhook signature schemes: how a request proves it comes from the sender who holds a secret.

`SignatureSettings` is the choice a webhook trigger offers (GitHub, Stripe, Slack, Shopify,
Standard Webhooks, or a generic HMAC described by header, algorithm, encoding, prefix and the
signed parts); `verify_signature` checks one request against it before anything is stored.

Every refusal is a `Refused` with status 401 whose message names the header and what is wrong
with it. Digests are compared with `hmac.compare_digest`; a header may hold several signatures
(a sender rotating its secret signs with both), and one matching is enough. Schemes that sign a
timestamp refuse one outside `tolerance_seconds` of now, so a captured request cannot be replayed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from components.errors import Refused

__all__ = ["SignatureScheme", "SignatureSettings", "verify_signature"]

SignatureScheme = Literal[
    "none", "github", "stripe", "slack", "shopify", "standard_webhooks", "hmac", "hmac_sha256"
]

_MAX_SIGNATURES = 16
"""Senders list a few signatures at once (key rotation); more than this is not a sender."""

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class SignatureSettings(BaseModel):
    """How a request proves it comes from the sender: a shared secret signs the raw body."""

    model_config = ConfigDict(extra="forbid")  # as `components.api.Inputs`, which imports this

    scheme: SignatureScheme = Field(
        "none",
        title="Signature scheme",
        description="`github`: X-Hub-Signature-256. `stripe`: Stripe-Signature (t=, v1=). "
        "`slack`: X-Slack-Signature v0 with X-Slack-Request-Timestamp. `shopify`: "
        "X-Shopify-Hmac-Sha256 (base64). `standard_webhooks`: webhook-id / webhook-timestamp / "
        "webhook-signature. `hmac`: your own header, algorithm, encoding, prefix and signed "
        "content (`hmac_sha256` is the same with SHA-256 and hex). `none`: accept unsigned "
        "requests.",
    )
    header: str = Field(
        "X-Hub-Signature-256",
        min_length=1,
        title="Signature header",
        description="Header holding the signature (hmac only; the named senders use their own).",
        json_schema_extra={"x-shown-when": {"scheme": ["hmac", "hmac_sha256"]}},
    )
    prefix: str = Field(
        "sha256=",
        title="Signature prefix",
        description="Text before the digest in the header, e.g. `sha256=`; empty when the "
        "header holds only the digest (hmac only).",
        json_schema_extra={"x-shown-when": {"scheme": ["hmac", "hmac_sha256"]}},
    )
    algorithm: Literal["sha256", "sha512", "sha1"] = Field(
        "sha256",
        title="HMAC algorithm",
        description="Hash function of the HMAC (hmac only).",
        json_schema_extra={"x-shown-when": {"scheme": ["hmac"]}},
    )
    encoding: Literal["hex", "base64"] = Field(
        "hex",
        title="Digest encoding",
        description="How the digest is written in the header (hmac only).",
        json_schema_extra={"x-shown-when": {"scheme": ["hmac"]}},
    )
    signed_content: str = Field(
        "{body}",
        min_length=1,
        title="Signed content",
        description="What the sender signs: `{body}` is the raw body, `{header:Name}` a header's "
        "value, anything else is literal text, e.g. `{header:X-Timestamp}.{body}` (hmac only).",
        json_schema_extra={"x-shown-when": {"scheme": ["hmac", "hmac_sha256"]}},
    )
    timestamp_header: str | None = Field(
        None,
        title="Timestamp header",
        description="Header holding the Unix time the sender signed at; requests outside the "
        "tolerance are refused as replays. Empty: no timestamp check (hmac only).",
        json_schema_extra={"x-shown-when": {"scheme": ["hmac", "hmac_sha256"]}},
    )
    secret: SecretStr | None = Field(
        None,
        title="Secret",
        description="The shared signing secret. For Standard Webhooks it is the `whsec_...` "
        "value the sender shows; for Stripe the endpoint's `whsec_...` signing secret.",
        json_schema_extra={  # every scheme that checks a signature, so not `none`
            "x-shown-when": {
                "scheme": [
                    "github",
                    "stripe",
                    "slack",
                    "shopify",
                    "standard_webhooks",
                    "hmac",
                    "hmac_sha256",
                ]
            }
        },
    )
    tolerance_seconds: int = Field(
        300,
        ge=1,
        le=86_400,
        title="Timestamp tolerance (s)",
        description="How far a signed timestamp may be from now before the request is refused "
        "as a replay (stripe, slack, standard_webhooks, and hmac with a timestamp header).",
        json_schema_extra={
            "x-shown-when": {
                "scheme": ["stripe", "slack", "standard_webhooks", "hmac", "hmac_sha256"]
            }
        },
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
            except Refused as exc:
                raise ValueError(f"{exc.message} {exc.hint}".strip()) from None
        return value

    @field_validator("signed_content")
    @classmethod
    def _signed_parts(cls, value: str) -> str:
        _parts(value)  # raises ValueError naming the bad placeholder
        return value

    @model_validator(mode="after")
    def _secret_when_signed(self) -> SignatureSettings:
        if self.scheme != "none" and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError(
                f"signature scheme '{self.scheme}' needs a secret; set one or choose 'none'"
            )
        stamp = (self.timestamp_header or "").strip()
        signed = {value.lower() for kind, value in _parts(self.signed_content) if kind == "header"}
        if self.scheme in ("hmac", "hmac_sha256") and stamp and stamp.lower() not in signed:
            raise ValueError(
                f"timestamp header '{stamp}' must be part of the signed content, e.g. "
                f"`{{header:{stamp}}}.{{body}}`, or a replayed request could carry a fresh "
                "timestamp"
            )
        return self


# --- the HMAC family: one header, one digest of some signed parts ---------------------------------

Part = tuple[Literal["text", "body", "header"], str]


@functools.lru_cache(maxsize=256)
def _parts(template: str) -> tuple[Part, ...]:
    """`signed_content` as parts; raises `ValueError` for an unknown placeholder."""
    parts: list[Part] = []
    at = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > at:
            parts.append(("text", template[at : match.start()]))
        name = match.group(1)
        kind, _, header = name.partition(":")
        if name == "body":
            parts.append(("body", ""))
        elif kind == "header" and header.strip():
            parts.append(("header", header.strip()))
        else:
            raise ValueError(
                f"signed content has an unknown placeholder '{{{name}}}'; use {{body}} or "
                "{header:Name}"
            )
        at = match.end()
    if at < len(template):
        parts.append(("text", template[at:]))
    if ("body", "") not in parts:
        raise ValueError("signed content must contain {body}, or a changed body would pass")
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class _Hmac:
    header: str
    prefix: str
    algorithm: str
    encoding: Literal["hex", "base64"]
    signed_content: str
    timestamp_header: str | None


_GITHUB = _Hmac("X-Hub-Signature-256", "sha256=", "sha256", "hex", "{body}", None)
_SHOPIFY = _Hmac("X-Shopify-Hmac-Sha256", "", "sha256", "base64", "{body}", None)
_SLACK = _Hmac(
    "X-Slack-Signature",
    "v0=",
    "sha256",
    "hex",
    "v0:{header:X-Slack-Request-Timestamp}:{body}",
    "X-Slack-Request-Timestamp",
)


def _own_hmac(settings: SignatureSettings) -> _Hmac:
    return _Hmac(
        settings.header,
        settings.prefix,
        settings.algorithm,
        settings.encoding,
        settings.signed_content,
        settings.timestamp_header,
    )


def _missing(header: str, hint: str = "") -> Refused:
    return Refused(
        401,
        f"Webhook signature header '{header}' is missing.",
        hint=hint or "Check that the sender signs requests and that the header name matches.",
    )


def _mismatch(header: str) -> Refused:
    return Refused(
        401,
        f"Webhook signature in header '{header}' does not match the body.",
        hint="The secret differs from the sender's, or the body was changed on the way.",
    )


def _check_time(header: str, raw: str, now: float, tolerance: int) -> None:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise Refused(401, f"Webhook header '{header}' is malformed: expected Unix seconds.")
    timestamp = int(raw)
    if timestamp < now - tolerance:
        raise Refused(
            401,
            f"Webhook timestamp in header '{header}' is too old; the request may be a replay.",
            hint=f"Requests are accepted within {tolerance} s of their timestamp. Check the "
            "server clock.",
        )
    if timestamp > now + tolerance:
        raise Refused(
            401,
            f"Webhook timestamp in header '{header}' is too far in the future.",
            hint="Check the sender's and the server's clocks.",
        )


def _decode(text: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


def _verify_hmac(
    spec: _Hmac, headers: Mapping[str, str], raw_body: bytes, key: bytes, tolerance: int, now: float
) -> None:
    provided = headers.get(spec.header.lower())
    if provided is None:
        raise _missing(spec.header)
    if spec.timestamp_header is not None:
        stamp = headers.get(spec.timestamp_header.lower())
        if stamp is None:
            raise _missing(spec.timestamp_header, "The sender sends it with every signature.")
        _check_time(spec.timestamp_header, stamp.strip(), now, tolerance)
    signed = bytearray()
    for kind, value in _parts(spec.signed_content):
        if kind == "body":
            signed += raw_body
        elif kind == "text":
            signed += value.encode()
        else:
            part = headers.get(value.lower())
            if part is None:
                raise _missing(value, "The signature covers this header; the sender sends it.")
            signed += part.strip().encode("utf-8", "surrogateescape")
    expected = hmac.new(key, bytes(signed), spec.algorithm).digest()
    # Several signatures may be listed (a sender rotating its secret): any one matching passes.
    separators = r"\s+" if "," in spec.prefix else r"[\s,]+"
    items = [item for item in re.split(separators, provided.strip()) if item]
    if len(items) > _MAX_SIGNATURES:
        raise Refused(401, f"Webhook header '{spec.header}' holds too many signatures.")
    prefixed = [item[len(spec.prefix) :] for item in items if item.startswith(spec.prefix)]
    if not prefixed:
        raise Refused(
            401,
            f"Webhook signature header '{spec.header}' is malformed: it does not start "
            f"with '{spec.prefix}'.",
            hint="Check the signature prefix on the webhook trigger.",
        )
    digests = [d for d in (_decode(text, spec.encoding) for text in prefixed) if d is not None]
    if not digests:
        raise Refused(
            401,
            f"Webhook signature header '{spec.header}' is malformed: expected a "
            f"{spec.encoding} digest.",
        )
    if not any(hmac.compare_digest(expected, digest) for digest in digests):
        raise _mismatch(spec.header)


# --- Stripe ---------------------------------------------------------------------------------------


def _verify_stripe(
    headers: Mapping[str, str], raw_body: bytes, key: bytes, tolerance: int, now: float
) -> None:
    name = "Stripe-Signature"
    value = headers.get("stripe-signature")
    if value is None:
        raise _missing(name)
    items = value.split(",")
    if len(items) > _MAX_SIGNATURES:
        raise Refused(401, f"Webhook header '{name}' holds too many signatures.")
    stamps: list[str] = []
    signatures: list[str] = []
    for item in items:
        scheme, _, text = item.strip().partition("=")
        if scheme == "t":
            stamps.append(text.strip())
        elif scheme == "v1":  # v0 and other schemes are ignored, as Stripe says (downgrades)
            signatures.append(text.strip())
    if len(stamps) != 1:
        raise Refused(401, f"Webhook header '{name}' is malformed: expected one timestamp `t=`.")
    if not signatures:
        raise Refused(401, f"Webhook header '{name}' is malformed: it has no `v1=` signature.")
    _check_time(name, stamps[0], now, tolerance)
    expected = hmac.new(key, stamps[0].encode() + b"." + raw_body, hashlib.sha256).digest()
    digests = [d for d in (_decode(s, "hex") for s in signatures) if d is not None]
    if not any(hmac.compare_digest(expected, digest) for digest in digests):
        raise _mismatch(name)


# --- Standard Webhooks ----------------------------------------------------------------------------


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    # Senders hand out secrets without base64's trailing '=' and the reference library accepts
    # them (it decodes `secret + "=="`): add the padding they lack.
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(
            401,
            "The Standard Webhooks secret is not valid base64.",
            hint="Paste the whole `whsec_...` secret the sender shows.",
        ) from None
    if not key:
        raise Refused(401, "The Standard Webhooks secret is empty.")
    return key


def _verify_standard(
    headers: Mapping[str, str], raw_body: bytes, secret: str, tolerance: int, now: float
) -> None:
    names = ("webhook-id", "webhook-timestamp", "webhook-signature")
    missing = [h for h in names if not (headers.get(h) or "").strip()]
    if missing:
        raise Refused(
            401,
            f"Webhook signature header{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} {'are' if len(missing) > 1 else 'is'} missing.",
            hint="Standard Webhooks senders send webhook-id, webhook-timestamp and "
            "webhook-signature on every request.",
        )
    msg_id = headers["webhook-id"].strip()
    raw_ts = headers["webhook-timestamp"].strip()
    _check_time("webhook-timestamp", raw_ts, now, tolerance)
    key = _standard_key(secret)
    try:
        signed = f"{msg_id}.{raw_ts}.".encode() + raw_body
    except UnicodeEncodeError:
        raise Refused(401, "Webhook header 'webhook-id' is malformed.") from None
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    entries = headers["webhook-signature"].split()
    if len(entries) > _MAX_SIGNATURES:
        raise Refused(401, "Webhook header 'webhook-signature' holds too many signatures.")
    found_v1 = False
    for entry in entries:
        version, sep, value = entry.partition(",")
        if not sep or version != "v1":
            continue
        found_v1 = True
        candidate = _decode(value, "base64")
        if candidate is not None and hmac.compare_digest(expected, candidate):
            return
    if not found_v1:
        raise Refused(
            401,
            "Webhook header 'webhook-signature' is malformed: no `v1,<base64>` signature in it.",
        )
    raise _mismatch("webhook-signature")


# --- entry point ----------------------------------------------------------------------------------


def verify_signature(
    settings: SignatureSettings,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: float,
) -> None:
    """Check a request's signature; raise `Refused` (401) saying which header is wrong and how.

    `headers` are matched case-insensitively, `raw_body` must be the bytes as received and `now` is
    the current Unix time (for timestamp tolerance). Malformed headers or secrets raise `Refused`
    too, never anything else.
    """
    scheme = settings.scheme
    if scheme == "none":
        return
    secret = settings.secret.get_secret_value() if settings.secret is not None else ""
    if not secret:
        raise Refused(
            401,
            f"Webhook signature scheme '{scheme}' is set but no secret is configured.",
            hint="Set the signature secret on the webhook trigger.",
        )
    lowered = {k.lower(): v for k, v in headers.items()}
    tolerance = settings.tolerance_seconds
    if scheme == "standard_webhooks":
        _verify_standard(lowered, raw_body, secret, tolerance, now)
        return
    try:
        key = secret.encode()
    except UnicodeEncodeError:
        raise Refused(401, "The signing secret cannot be used: it is not valid text.") from None
    if scheme == "stripe":
        _verify_stripe(lowered, raw_body, key, tolerance, now)
        return
    spec = {"github": _GITHUB, "shopify": _SHOPIFY, "slack": _SLACK}.get(scheme)
    _verify_hmac(spec or _own_hmac(settings), lowered, raw_body, key, tolerance, now)
