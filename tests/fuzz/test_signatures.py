"""Property: any signature headers, body and clock given to any signature scheme either verify or
raise `Refused` (the server's 401), never another exception (which would be a 500)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from components.api import Refused, SignatureSettings, verify_signature

SCHEMES = [
    SignatureSettings.model_validate({"scheme": scheme, "secret": secret, **extra})
    for scheme, secret, extra in [
        ("github", "s", {}),
        ("stripe", "whsec_s", {}),
        ("slack", "s", {}),
        ("shopify", "s", {}),
        ("standard_webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", {}),
        (
            "hmac",
            "s",
            {"signed_content": "{header:X-Id}.{header:X-Ts}.{body}", "timestamp_header": "X-Ts"},
        ),
        ("hmac", "s", {"header": "X-Sig", "prefix": "v1,", "encoding": "base64"}),
    ]
]

_values = st.text(max_size=80) | st.sampled_from(
    ["", "t=1,v1=00", "v0=00", "sha256=00", "v1,AAAA", "9" * 20, "-1", "\udcff", "t=,v1="]
)
_names = st.sampled_from(
    [
        "X-Hub-Signature-256",
        "Stripe-Signature",
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
        "X-Shopify-Hmac-Sha256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Sig",
        "X-Id",
        "X-Ts",
    ]
)


@given(
    settings=st.sampled_from(SCHEMES),
    headers=st.dictionaries(_names, _values, max_size=5),
    body=st.binary(max_size=200),
    now=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
)
def test_any_input_verifies_or_is_refused(
    settings: SignatureSettings, headers: dict[str, str], body: bytes, now: float
) -> None:
    refusal: Refused | None = None
    try:
        verify_signature(settings, headers, body, now)
    except Refused as exc:
        refusal = exc
    if refusal is not None:
        assert (refusal.status, bool(refusal.message)) == (401, True)
