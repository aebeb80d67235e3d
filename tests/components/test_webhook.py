"""webhook: inputs and signature verification (HMAC-SHA256 and Standard Webhooks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from components.api import IncomingRequest, Refused, StepError, TriggerEvent
from components.builtin.webhook import (
    SignatureSettings,
    WebhookInputs,
    WebhookTrigger,
    verify_signature,
)
from tests.components.conftest import Harness

BODY = b'{"event":"push","id":1}'
NOW = 1_700_000_000.0

# -- inputs ----------------------------------------------------------------------------------------


def test_defaults() -> None:
    inputs = WebhookInputs()
    assert inputs.methods == ["POST"]
    assert (inputs.sync, inputs.sync_timeout, inputs.max_body_bytes) == (False, 10.0, 1_048_576)
    assert inputs.delivery_id_header is None
    assert inputs.allow_sync_header is False
    assert inputs.signature.scheme == "none"
    assert inputs.signature.header == "X-Hub-Signature-256"
    assert inputs.signature.prefix == "sha256="
    assert inputs.signature.tolerance_seconds == 300


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"methods": ["TRACE"]}, "methods"),
        ({"methods": []}, "at least 1"),
        ({"signature": {"scheme": "hmac_sha256"}}, "needs a secret"),
        ({"signature": {"scheme": "standard_webhooks", "secret": ""}}, "needs a secret"),
        ({"sync_timeout": 0}, "greater than 0"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_bad_inputs(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebhookInputs.model_validate(data)


def test_secret_is_not_shown() -> None:
    settings = SignatureSettings.model_validate({"scheme": "hmac_sha256", "secret": "topsecret"})
    assert "topsecret" not in repr(settings)
    assert "topsecret" not in str(settings.model_dump())


async def test_trigger_outputs_the_event(harness: Harness) -> None:
    event = TriggerEvent(body={"a": 1}, headers={"x": "1"}, raw_body=b'{"a":1}')
    ctx = harness.ctx()
    out = await WebhookTrigger().run(WebhookInputs(), event, ctx)
    assert out["body"] == {"a": 1}
    assert out["raw_body"] == '{"a":1}'
    assert WebhookTrigger.kind == "webhook"
    assert set(WebhookTrigger.sample_payload) == {"body", "headers", "query"}


# -- HMAC-SHA256 -----------------------------------------------------------------------------------


def hmac_settings(secret: str = "It's a Secret to Everybody", **kw: Any) -> SignatureSettings:
    return SignatureSettings.model_validate({"scheme": "hmac_sha256", "secret": secret, **kw})


def github_sig(body: bytes, secret: str = "It's a Secret to Everybody") -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_hmac_github_documented_example() -> None:
    # The example from GitHub's "Validating webhook deliveries" documentation.
    body = b"Hello, World!"
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_signature(hmac_settings(), {"X-Hub-Signature-256": sig}, body, NOW)


def test_hmac_valid_any_header_case_and_uppercase_hex() -> None:
    sig = github_sig(BODY)
    verify_signature(hmac_settings(), {"x-hub-signature-256": sig}, BODY, NOW)
    upper = "sha256=" + sig.removeprefix("sha256=").upper()
    verify_signature(hmac_settings(), {"X-HUB-SIGNATURE-256": upper}, BODY, NOW)


def test_hmac_custom_header_without_prefix() -> None:
    settings = hmac_settings("shpss_x", header="X-Shop-Hmac", prefix="")
    digest = hmac.new(b"shpss_x", BODY, hashlib.sha256).hexdigest()
    verify_signature(settings, {"X-Shop-Hmac": digest}, BODY, NOW)


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({}, BODY, "header 'X-Hub-Signature-256' is missing"),
        ({"X-Hub-Signature-256": github_sig(BODY, "wrong")}, BODY, "does not match"),
        ({"X-Hub-Signature-256": github_sig(BODY)}, BODY + b" ", "does not match"),
        ({"X-Hub-Signature-256": github_sig(BODY)[:-2]}, BODY, "does not match"),
        ({"X-Hub-Signature-256": "sha1=abcdef"}, BODY, "does not start with 'sha256='"),
        ({"X-Hub-Signature-256": "sha256=zz-not-hex"}, BODY, "expected a hex digest"),
        ({"X-Hub-Signature-256": "sha256=abc"}, BODY, "expected a hex digest"),
        ({"X-Hub-Signature-256": "sha256=\u00e9\u00e9"}, BODY, "expected a hex digest"),
        ({"X-Hub-Signature-256": ""}, BODY, "does not start with"),
    ],
)
def test_hmac_failures_raise_step_error(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(StepError, match=message):
        verify_signature(hmac_settings(), headers, body, NOW)


def test_no_scheme_accepts_anything() -> None:
    verify_signature(SignatureSettings(), {}, b"anything", NOW)


def test_secret_removed_after_validation_still_raises_step_error() -> None:
    settings = hmac_settings().model_copy(update={"secret": None})
    with pytest.raises(StepError, match="no secret is configured"):
        verify_signature(settings, {}, BODY, NOW)


# -- Standard Webhooks -----------------------------------------------------------------------------

KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


def std_settings(secret: str = WHSEC, tolerance: int = 300) -> SignatureSettings:
    return SignatureSettings.model_validate(
        {"scheme": "standard_webhooks", "secret": secret, "tolerance_seconds": tolerance}
    )


def unchecked_std_settings(secret: str) -> SignatureSettings:
    """Settings the model would refuse (as if stored before it checked them)."""
    return SignatureSettings.model_construct(
        scheme="standard_webhooks", secret=SecretStr(secret), tolerance_seconds=300
    )


def std_sig(msg_id: str, ts: int, body: bytes, key: bytes = KEY) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def std_headers(
    ts: int = int(NOW), body: bytes = BODY, over: dict[str, str] | None = None
) -> dict[str, str]:
    headers = {
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": str(ts),
        "webhook-signature": std_sig("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body),
    }
    headers.update(over or {})
    return headers


def test_standard_valid() -> None:
    verify_signature(std_settings(), std_headers(), BODY, NOW)


def test_standard_valid_with_rotated_keys_and_other_versions() -> None:
    other = std_sig("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", int(NOW), BODY, key=b"old-key")
    good = std_headers()["webhook-signature"]
    headers = std_headers(over={"webhook-signature": f"v1a,abc {other} {good}"})
    verify_signature(std_settings(), headers, BODY, NOW)


def test_standard_secret_without_prefix() -> None:
    verify_signature(std_settings(base64.b64encode(KEY).decode()), std_headers(), BODY, NOW)


@pytest.mark.parametrize("size", [31, 32])
def test_standard_secret_without_base64_padding_like_the_reference(size: int) -> None:
    # The reference library (standardwebhooks) decodes `secret + "=="`, so senders hand out
    # secrets without their trailing '='. Signed as the spec documents: HMAC-SHA256 over
    # "{id}.{timestamp}.{body}" with the decoded key, base64 in `v1,<signature>`.
    key = bytes(range(size))
    padded = base64.b64encode(key).decode()
    assert padded.endswith("=")
    secret = "whsec_" + padded.rstrip("=")
    msg_id, ts = "msg_unpadded", int(NOW)
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + BODY, hashlib.sha256).digest()
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    verify_signature(std_settings(secret), headers, BODY, NOW)
    with pytest.raises(StepError, match="does not match"):
        verify_signature(std_settings(secret), headers, BODY + b" ", NOW)


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_abcde", "whsec_"])
def test_a_standard_secret_that_cannot_be_decoded_is_refused_by_the_settings(secret: str) -> None:
    with pytest.raises(ValidationError) as caught:
        std_settings(secret)
    (error,) = caught.value.errors()
    assert error["loc"] == ("secret",)
    assert "Standard Webhooks secret" in error["msg"]
    # The same text is a fine secret for the hmac_sha256 scheme, which does not decode it.
    assert hmac_settings(secret).secret is not None


def test_standard_header_names_are_case_insensitive() -> None:
    headers = {k.title(): v for k, v in std_headers().items()}
    verify_signature(std_settings(), headers, BODY, NOW)


@pytest.mark.parametrize(
    ("settings", "headers", "body", "now", "message"),
    [
        (
            std_settings("whsec_" + base64.b64encode(b"x" * 32).decode()),
            None,
            BODY,
            NOW,
            "does not match",
        ),
        (std_settings(), None, BODY + b"!", NOW, "does not match"),
        (
            std_settings(),
            std_headers(over={"webhook-id": "msg_other"}),
            BODY,
            NOW,
            "does not match",
        ),
        (std_settings(), std_headers(ts=int(NOW) - 301), BODY, NOW, "too old"),
        (std_settings(), std_headers(ts=int(NOW) + 301), BODY, NOW, "future"),
        (std_settings(tolerance=10), std_headers(ts=int(NOW) - 60), BODY, NOW, "too old"),
        (
            std_settings(),
            std_headers(over={"webhook-timestamp": "yesterday"}),
            BODY,
            NOW,
            "malformed",
        ),
        (std_settings(), std_headers(over={"webhook-timestamp": "-5"}), BODY, NOW, "malformed"),
        (std_settings(), std_headers(over={"webhook-timestamp": "1e9"}), BODY, NOW, "malformed"),
        (std_settings(), std_headers(over={"webhook-timestamp": "٣٣٣"}), BODY, NOW, "malformed"),
        (std_settings(), std_headers(over={"webhook-timestamp": "9" * 40}), BODY, NOW, "malformed"),
        (std_settings(), std_headers(over={"webhook-signature": "garbage"}), BODY, NOW, "no `v1,"),
        (
            std_settings(),
            std_headers(over={"webhook-signature": "v1,%%%"}),
            BODY,
            NOW,
            "does not match",
        ),
        (
            std_settings(),
            std_headers(over={"webhook-signature": "v1,"}),
            BODY,
            NOW,
            "does not match",
        ),
        (
            std_settings(),
            std_headers(over={"webhook-signature": "v1,a " * 40}),
            BODY,
            NOW,
            "too many",
        ),
        (std_settings(), std_headers(over={"webhook-signature": "  "}), BODY, NOW, "is missing"),
        (
            std_settings(),
            {"webhook-id": "m", "webhook-timestamp": "1"},
            BODY,
            NOW,
            "header webhook-signature is missing",
        ),
        (
            std_settings(),
            {},
            BODY,
            NOW,
            "headers webhook-id, webhook-timestamp, webhook-signature are missing",
        ),
        (unchecked_std_settings("whsec_not base64!"), None, BODY, NOW, "not valid base64"),
        (unchecked_std_settings("whsec_"), None, BODY, NOW, "secret is empty"),
        (unchecked_std_settings("whsec_abcde"), None, BODY, NOW, "not valid base64"),
    ],
)
def test_standard_failures_raise_step_error(
    settings: SignatureSettings,
    headers: dict[str, str] | None,
    body: bytes,
    now: float,
    message: str,
) -> None:
    with pytest.raises(StepError, match=message):
        verify_signature(settings, std_headers() if headers is None else headers, body, now)


@pytest.mark.parametrize(
    "headers",
    [
        {
            "webhook-id": "\udcff",
            "webhook-timestamp": str(int(NOW)),
            "webhook-signature": "v1,AA==",
        },
        {"webhook-id": "m", "webhook-timestamp": str(int(NOW)), "webhook-signature": "v1,\u00e9"},
        {"webhook-id": "m", "webhook-timestamp": "\x00", "webhook-signature": "v1,AA=="},
        {"webhook-id": "m", "webhook-timestamp": str(int(NOW)), "webhook-signature": ",,, v1 v2,"},
    ],
)
def test_standard_hostile_headers_only_raise_step_error(headers: dict[str, str]) -> None:
    with pytest.raises(StepError):
        verify_signature(std_settings(), headers, BODY, NOW)


# -- handshakes ------------------------------------------------------------------------------------

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHALLENGE = (
    b'{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALW'
    b'MmHkvFXO7tYXAYM8P","type":"url_verification"}'
)


def slack_request(body: bytes, ts: int = int(NOW), secret: str = SLACK_SECRET) -> IncomingRequest:
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"x-slack-request-timestamp": str(ts), "x-slack-signature": f"v0={digest}"}
    return IncomingRequest("POST", headers, {}, body, NOW)


def slack_inputs(handshake: str = "slack_url_verification") -> WebhookInputs:
    signature = {"scheme": "slack", "secret": SLACK_SECRET}
    return WebhookInputs.model_validate({"signature": signature, "handshake": handshake})


def test_slack_url_verification_is_answered_with_its_challenge() -> None:
    admission = WebhookTrigger().admit(slack_inputs(), slack_request(CHALLENGE))
    assert admission.reply is not None
    assert (admission.reply.status, admission.reply.body) == (
        200,
        {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"},
    )


def test_a_handshake_is_signed_too_and_is_answered_only_when_asked_for() -> None:
    with pytest.raises(Refused, match="'X-Slack-Signature' does not match"):
        WebhookTrigger().admit(slack_inputs(), slack_request(CHALLENGE, secret="other"))
    assert WebhookTrigger().admit(slack_inputs("none"), slack_request(CHALLENGE)).reply is None
    event = b'{"type":"event_callback","event":{"text":"url_verification"}}'
    assert WebhookTrigger().admit(slack_inputs(), slack_request(event)).reply is None
    for odd in (
        b"[" * 3000 + b'"url_verification"',
        b'"url_verification"',
        b"\xff url_verification",
    ):
        assert WebhookTrigger().admit(slack_inputs(), slack_request(odd)).reply is None
