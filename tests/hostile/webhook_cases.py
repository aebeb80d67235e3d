"""The hostile catalogue of the webhook route, as data: one row per request and what must follow.

`HOOKS` are requests an HTTP client can send (httpx); `RAWS` are byte streams only a raw socket
sends (Content-Length larger than the body, half-close, slowloris, 1,000 headers, 8 MB of header,
smuggling shapes). Flows are those of `fixtures/target.yaml`: `echo` (POST/PUT, 1 MiB cap),
`small` (1 KiB cap), `github` (HMAC-SHA256), `standard` (Standard Webhooks), `unpadded` (Standard
Webhooks, a secret lacking base64 padding) and `reply` (synchronous, echoes `?v=` into a header).

`fixed_by` names the issue-19 fix a row needs; until that fix is merged the row fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.serving import standard_signature
from tests.hostile.harness import READ_TIMEOUT, UNSET

__all__ = [
    "BODY_TIMEOUT_WAIT",
    "HOOKS",
    "RAWS",
    "Hook",
    "Raw",
    "Sign",
    "raw_request",
]

GITHUB_SECRET = "gh-secret-1"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
UNPADDED_SECRET = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"

BODY_TIMEOUT_WAIT = READ_TIMEOUT + 8.0
"""Seconds a sender that never finishes its body waits for the 408."""

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
XML = "application/xml"
CAP = 1_048_576


@dataclass(frozen=True)
class Sign:
    """How a request is signed: the flow's scheme, then one thing a forger would get wrong."""

    scheme: Literal["hmac", "standard"]
    secret: str = ""
    """"" signs with the flow's own secret."""
    age: int = 0
    """Seconds before now that webhook-timestamp claims (negative: in the future)."""
    msg_id: str = ""
    """The webhook-id sent; "" derives one from the case id."""
    signed_id: str = ""
    """The webhook-id signed, when it differs from the one sent."""
    timestamp: str = ""
    """Sent as webhook-timestamp instead of a real one (malformed timestamps)."""
    signature: str = ""
    """Sent as the signature header instead of the computed one (malformed signatures)."""
    tamper: bool = False
    """Sign the body, then send it with one byte changed."""

    def apply(self, case_id: str, body: bytes) -> tuple[dict[str, str], bytes]:
        """The headers to send and the body as sent."""
        sent = body + b" " if self.tamper else body
        if self.scheme == "hmac":
            secret = (self.secret or GITHUB_SECRET).encode()
            digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
            return {"X-Hub-Signature-256": self.signature or f"sha256={digest}"}, sent
        msg_id = self.msg_id or f"msg_{case_id}"
        timestamp = self.timestamp or str(int(time.time()) - self.age)
        digest = standard_signature(
            self.secret or STANDARD_SECRET, self.signed_id or msg_id, timestamp, body
        )
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": self.signature or digest,
        }
        return headers, sent


@dataclass(frozen=True)
class Hook:
    """One request to a webhook and what must come back.

    A 2xx `expect` means the request is stored and must run to `succeeded` (its first step's
    `body` equal to `body_seen` when given); any other status means nothing is stored.
    """

    id: str
    expect: int | tuple[int, ...]
    body: bytes = b""
    content_type: str | None = JSON
    flow: str = "echo"
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    path: str = ""
    """Sent to this path instead of the flow's URL (unknown tokens, traversal)."""
    sign: Sign | None = None
    fragment: str = ""
    """Text the answer must contain."""
    body_seen: Any = UNSET
    """The parsed body the flow must see (`trigger.body`), for accepted requests."""
    outcome: str = ""
    """How the stored execution must end: "" is `succeeded` for a 2xx answer and nothing stored
    otherwise; a status (`failed`) means the request is stored and its flow refuses it."""
    then: int | None = None
    """Send the same request again (same delivery id): the status the redelivery must get."""
    absent_headers: tuple[str, ...] = ()
    """Response headers that must not be there (header injection through a flow's reply)."""
    fixed_by: str = ""


def _deep(opening: bytes, closing: bytes, depth: int, inner: bytes = b"1") -> bytes:
    return opening * depth + inner + closing * depth


_GITHUB = Sign("hmac")
_STANDARD = Sign("standard")


# fmt: off
HOOKS: list[Hook] = [
    # --- the examples of issue 19 ---------------------------------------------------------------
    Hook("lone-surrogate-value", 202, b'{"a": "\\ud800"}', body_seen={"a": "\ufffd"},
         fixed_by="1: lone surrogates become U+FFFD"),
    Hook("lone-low-surrogate-in-text", 202, b'{"a": "x\\udc00y"}', body_seen={"a": "x\ufffdy"},
         fixed_by="1: lone surrogates become U+FFFD"),
    Hook("lone-surrogate-key", 202, b'{"\\ud800": 1}', body_seen={"\ufffd": 1},
         fixed_by="1: lone surrogates become U+FFFD"),
    Hook("standard-secret-without-padding", 202, b'{"type": "ok"}', flow="unpadded",
         sign=Sign("standard", secret=UNPADDED_SECRET), body_seen={"type": "ok"},
         fixed_by="9: Standard Webhooks secrets without padding"),
    # --- malformed JSON -------------------------------------------------------------------------
    Hook("json-trailing-comma", 400, b'{"a": 1,,}', fragment="position 8"),
    Hook("json-unclosed-object", 400, b'{"a": ', fragment="Malformed JSON body"),
    Hook("json-single-quotes", 400, b"{'a': 1}", fragment="Malformed JSON body"),
    Hook("json-comment", 400, b'{"a": 1 /* note */}', fragment="Malformed JSON body"),
    Hook("json-two-documents", 400, b"{} {}", fragment="Extra data"),
    Hook("json-raw-control-character", 400, b'{"a": "\x00"}', fragment="control character"),
    Hook("json-bad-escape", 400, b'{"a": "\\q"}', fragment="Malformed JSON body"),
    Hook("json-short-unicode-escape", 400, b'{"a": "\\u12"}', fragment="Malformed JSON body"),
    Hook("json-bare-word", 400, b"undefined", fragment="Malformed JSON body"),
    Hook("json-only-whitespace", 400, b"   \n\t ", fragment="Malformed JSON body"),
    Hook("json-nan", 400, b'{"a": NaN}', fragment="NaN is not valid JSON"),
    Hook("json-infinity", 400, b"[Infinity]", fragment="Infinity is not valid JSON"),
    Hook("json-minus-infinity", 400, b"[-Infinity]", fragment="Infinity is not valid JSON"),
    Hook("json-100k-nested-arrays", 400, _deep(b"[", b"]", 100_000), fragment="nested 100000"),
    Hook("json-5k-nested-objects", 400, _deep(b'{"a":', b"}", 5_000), fragment="nested 5000"),
    Hook("json-brackets-inside-strings", 202, b'{"a": "' + b"[" * 5_000 + b'"}',
         body_seen={"a": "[" * 5_000}),
    Hook("json-5000-digit-integer", 400, b'{"a": ' + b"9" * 5_000 + b"}",
         fragment="Malformed JSON body"),
    Hook("json-float-beyond-double", 202, b'{"a": 1e400}'),
    Hook("json-duplicate-keys", 202, b'{"a": 1, "a": 2}', body_seen={"a": 2}),
    Hook("json-escaped-nul", 202, b'{"a": "\\u0000"}', body_seen={"a": "\x00"}),
    Hook("json-empty-body", 202, b"", body_seen=None),
    Hook("json-scalar", 202, b"42", body_seen=42),
    Hook("json-long-string", 202, b'{"a": "' + b"x" * 900_000 + b'"}'),
    Hook("json-50k-keys", 202, json.dumps({f"k{i}": i for i in range(50_000)}).encode()),
    # --- encodings ------------------------------------------------------------------------------
    Hook("json-utf8-bom", 202, b"\xef\xbb\xbf" + b'{"a": 1}', body_seen={"a": 1}),
    Hook("json-utf16-with-bom", 202, '{"a": 1}'.encode("utf-16"), body_seen={"a": 1}),
    Hook("json-invalid-utf8", 400, b'{"a": "\xff"}', fragment="not valid UTF-8"),
    Hook("json-overlong-utf8", 400, b'{"a": "\xc0\xaf"}', fragment="not valid UTF-8"),
    Hook("json-unknown-charset", 400, b'{"a": 1}', content_type=f"{JSON}; charset=klingon",
         fragment="klingon"),
    Hook("json-latin1-charset", 202, '{"a": "café"}'.encode("latin-1"),
         content_type=f"{JSON}; charset=iso-8859-1", body_seen={"a": "café"}),
    Hook("text-invalid-utf8", 400, "café".encode("latin-1"), content_type="text/plain",
         fragment="not valid utf-8"),
    Hook("text-declared-latin1", 202, "café".encode("latin-1"),
         content_type="text/plain; charset=iso-8859-1", body_seen="café"),
    Hook("text-unknown-charset", 400, b"hi", content_type="text/plain; charset=x-nope",
         fragment="x-nope"),
    Hook("binary-octet-stream", 202, b"\x00\xff\xfe", content_type="application/octet-stream",
         body_seen={"base64": "AP/+", "content_type": "application/octet-stream", "size": 3}),
    Hook("binary-without-content-type", 202, b"\xff\x00", content_type=None,
         body_seen={"base64": "/wA=", "content_type": "application/octet-stream", "size": 2}),
    # --- forms ----------------------------------------------------------------------------------
    Hook("form-20k-fields", 400, b"&".join(b"k%d=v" % i for i in range(20_000)),
         content_type=FORM, fragment="more than 10000 fields"),
    Hook("form-bad-percent-utf8", 400, b"a=%ff", content_type=FORM, fragment="percent-encoded"),
    Hook("form-truncated-percent", 202, b"a=%f", content_type=FORM, body_seen={"a": "%f"}),
    Hook("form-repeated-key", 202, b"a=1&a=2", content_type=FORM, body_seen={"a": ["1", "2"]}),
    Hook("form-payload-field-not-json", 202, b"payload=%7Bnot+json", content_type=FORM),
    # --- XML ------------------------------------------------------------------------------------
    Hook("xml-billion-laughs", 400,
         b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
         b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
         b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
         b"<lolz>&lol3;</lolz>", content_type=XML, fragment="DOCTYPE"),
    Hook("xml-xxe-file", 400,
         b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
         b"<foo>&xxe;</foo>", content_type=XML, fragment="DOCTYPE"),
    Hook("xml-xxe-parameter-entity", 400,
         b'<!DOCTYPE foo [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><foo/>',
         content_type=XML, fragment="DOCTYPE"),
    Hook("xml-external-dtd", 400, b'<!DOCTYPE foo SYSTEM "http://127.0.0.1:9/x.dtd"><foo/>',
         content_type="text/xml", fragment="DOCTYPE"),
    Hook("xml-10k-nested", 400, _deep(b"<a>", b"</a>", 10_000, b""), content_type=XML,
         fragment="nested"),
    Hook("xml-mismatched-tag", 400, b"<a><b></a>", content_type=XML, fragment="mismatched tag"),
    Hook("xml-not-xml", 400, b"hello", content_type=XML, fragment="Malformed XML body"),
    Hook("xml-wrong-declared-encoding", 400,
         '<?xml version="1.0" encoding="utf-16"?><a>é</a>'.encode(), content_type=XML,
         fragment="XML body"),
    Hook("xml-default-namespace", 202, b'<a xmlns="urn:x"><b>1</b></a>', content_type=XML),
    Hook("xml-soap-suffix-type", 400, b"<a>", content_type="application/soap+xml",
         fragment="Malformed XML body"),
    # --- size -----------------------------------------------------------------------------------
    Hook("body-over-the-1mib-cap", 413, b"x" * (CAP + 1), content_type="text/plain",
         fragment=str(CAP)),
    Hook("body-over-a-1kib-trigger-cap", 413, b'{"a": "' + b"x" * 2_000 + b'"}', flow="small",
         fragment="1024 bytes"),
    Hook("body-at-the-1kib-trigger-cap", 202, b'"' + b"x" * 1_022 + b'"', flow="small",
         body_seen="x" * 1_022),
    # --- methods --------------------------------------------------------------------------------
    Hook("method-get", 405, method="GET", fragment="does not accept GET"),
    Hook("method-delete", 405, method="DELETE", fragment="does not accept DELETE"),
    Hook("method-patch", 405, b"{}", method="PATCH", fragment="does not accept PATCH"),
    Hook("method-options", 405, method="OPTIONS"),
    Hook("method-trace", 405, method="TRACE"),
    Hook("method-webdav", 405, b"{}", method="PROPFIND"),
    Hook("method-unknown-to-http", 400, b"{}", method="BREW", fragment="Invalid HTTP request"),
    Hook("reply-flow-answers-synchronously", 200, b"", flow="reply", query="v=ok",
         fragment="ok"),
    # --- URLs -----------------------------------------------------------------------------------
    Hook("token-unknown", 404, b"{}", path="/webhooks/not-a-token",
         fragment="no webhook at this URL"),
    Hook("token-10k-chars", 404, b"{}", path="/webhooks/" + "a" * 10_000),
    Hook("token-encoded-traversal", 404, b"{}", path="/webhooks/..%2F..%2Fapi%2Fhealth"),
    Hook("token-nul", 404, b"{}", path="/webhooks/%00"),
    Hook("token-emoji", 404, b"{}", path="/webhooks/%F0%9F%92%A9"),
    Hook("token-encoded-surrogate", 404, b"{}", path="/webhooks/%ED%A0%80"),
    Hook("token-sql-injection", 404, b"{}", path="/webhooks/%27%20OR%201%3D1%20--"),
    Hook("shared-unknown-integration", 404, b"{}", path="/webhooks/shared/nope"),
    Hook("designer-test-url-unknown", 404, b"{}", path="/webhooks/test/nope"),
    # --- query strings and headers --------------------------------------------------------------
    Hook("query-1k-repeats-of-one-key", 202, b"{}", query="&".join(["a=1"] * 1_000)),
    Hook("query-invalid-percent-utf8", 202, b"{}", query="a=%ff%fe"),
    Hook("reply-header-crlf-injection", 502, flow="reply", method="GET",
         query="v=a%0d%0aSet-Cookie:%20evil=1", fragment="line break",
         absent_headers=("set-cookie", "x-echo"), outcome="failed"),
    Hook("sync-header-where-not-allowed", 202, b"{}", headers={"X-Flowyard-Sync": "true"}),
    Hook("idempotency-key-10k-chars", 202, b'{"n": 1}', headers={"Idempotency-Key": "k" * 10_000},
         then=200),
    # --- signatures: GitHub-style HMAC ----------------------------------------------------------
    Hook("hmac-valid-then-redelivered", 202, b'{"ref": "main"}', flow="github", sign=_GITHUB,
         headers={"X-GitHub-Delivery": "gh-1"}, then=200),
    Hook("hmac-missing", 401, b'{"ref": "x"}', flow="github", fragment="is missing"),
    Hook("hmac-wrong-prefix", 401, b"{}", flow="github", sign=Sign("hmac", signature="sha1=ab"),
         fragment="does not start with"),
    Hook("hmac-not-hex", 401, b"{}", flow="github", sign=Sign("hmac", signature="sha256=zz"),
         fragment="hex digest"),
    Hook("hmac-empty-digest", 401, b"{}", flow="github", sign=Sign("hmac", signature="sha256="),
         fragment="does not match"),
    Hook("hmac-wrong-secret", 401, b"{}", flow="github", sign=Sign("hmac", secret="guess"),
         fragment="does not match"),
    Hook("hmac-tampered-body", 401, b'{"ref": "x"}', flow="github",
         sign=Sign("hmac", tamper=True), fragment="does not match"),
    # --- signatures: Standard Webhooks ----------------------------------------------------------
    Hook("standard-valid-then-replayed", 202, b'{"type": "a"}', flow="standard", sign=_STANDARD,
         body_seen={"type": "a"}, then=200),
    Hook("standard-missing-headers", 401, b"{}", flow="standard", fragment="are missing"),
    Hook("standard-stale-timestamp", 401, b"{}", flow="standard", sign=Sign("standard", age=3600),
         fragment="too old"),
    Hook("standard-future-timestamp", 401, b"{}", flow="standard",
         sign=Sign("standard", age=-3600), fragment="future"),
    Hook("standard-timestamp-not-a-number", 401, b"{}", flow="standard",
         sign=Sign("standard", timestamp="yesterday"), fragment="malformed"),
    Hook("standard-timestamp-20-digits", 401, b"{}", flow="standard",
         sign=Sign("standard", timestamp="9" * 20), fragment="malformed"),
    Hook("standard-timestamp-negative", 401, b"{}", flow="standard",
         sign=Sign("standard", timestamp="-5"), fragment="malformed"),
    Hook("standard-no-v1-signature", 401, b"{}", flow="standard",
         sign=Sign("standard", signature="v2,abcd"), fragment="no `v1,<base64>`"),
    Hook("standard-signature-not-base64", 401, b"{}", flow="standard",
         sign=Sign("standard", signature="v1,!!!"), fragment="does not match"),
    Hook("standard-17-signatures", 401, b"{}", flow="standard",
         sign=Sign("standard", signature=" ".join(["v1,AAAA"] * 17)), fragment="too many"),
    Hook("standard-wrong-secret", 401, b"{}", flow="standard",
         sign=Sign("standard", secret="whsec_" + base64.b64encode(b"guess" * 4).decode()),
         fragment="does not match"),
    Hook("standard-tampered-body", 401, b'{"type": "a"}', flow="standard",
         sign=Sign("standard", tamper=True), fragment="does not match"),
    Hook("standard-id-swapped", 401, b"{}", flow="standard",
         sign=Sign("standard", msg_id="msg_b", signed_id="msg_a"), fragment="does not match"),
]
# fmt: on


def raw_request(
    head: str = "POST {path} HTTP/1.1",
    headers: tuple[str, ...] = ("Content-Type: application/json",),
    body: bytes = b"",
    *,
    length: int | str | None = -1,
) -> bytes:
    """A request as bytes; `{path}` and `{host}` are filled in when sent. `length` -1 is the
    body's true Content-Length, None sends none, anything else is sent as it is."""
    lines = [head, "Host: {host}", *headers]
    if length == -1:
        lines.append(f"Content-Length: {len(body)}")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


@dataclass(frozen=True)
class Raw:
    """A byte stream sent over a raw socket to the `echo` flow (`{path}`) and what must happen.

    `expect` lists acceptable statuses; `None` in it accepts no answer (the server closed, or
    stayed silent for `wait` seconds). A 2xx must run; anything else stores nothing. The canary
    runs while the request is being sent and awaited.
    """

    id: str
    expect: tuple[int | None, ...]
    parts: tuple[bytes, ...]
    interval: float = 0.0
    half_close: bool = False
    wait: float = 10.0
    fixed_by: str = ""


_THOUSAND_HEADERS = tuple(f"X-Header-{i}: value" for i in range(1_000))
_CHUNK = b"10000\r\n" + b"a" * 65_536 + b"\r\n"
_CHUNKS_OVER_CAP = _CHUNK * 17 + b"0\r\n\r\n"
_TEN_THOUSAND_PARAMS = "&".join(f"p{i}={i}" for i in range(10_000))
_CHUNKED = ("Transfer-Encoding: chunked",)

# fmt: off
RAWS: list[Raw] = [
    Raw("content-length-larger-than-body", (408,),
        (raw_request(body=b'{"a": 1}', length=100),), wait=BODY_TIMEOUT_WAIT,
        fixed_by="5: 408 after a body read timeout"),
    Raw("half-close-mid-body", (None, 400),
        (raw_request(body=b'{"a": 1}', length=100),), half_close=True),
    Raw("slowloris-header-trickle", (None, 408, 431),
        (b"POST {path} HTTP/1.1\r\nHost: {host}\r\n", *[b"X-a: b\r\n"] * 12),
        interval=0.5, wait=2.0),
    Raw("a-thousand-headers", (431,), (raw_request(headers=_THOUSAND_HEADERS, body=b"{}"),),
        fixed_by="4: 431 for too many headers"),
    Raw("an-8mb-header", (431,),
        (raw_request(headers=("X-Big: " + "a" * (8 * 1_048_576),), body=b"{}"),), wait=20.0,
        fixed_by="4: 431 for too large headers"),
    Raw("query-with-10k-params", (202, 400, 414, 431),
        (raw_request(f"POST {{path}}?{_TEN_THOUSAND_PARAMS} HTTP/1.1", body=b"{}"),)),
    Raw("chunked-body-over-the-cap", (413,),
        (raw_request(headers=_CHUNKED, length=None) + _CHUNKS_OVER_CAP,)),
    Raw("chunked-bad-chunk-size", (400,),
        (raw_request(headers=_CHUNKED, length=None) + b"zz\r\nab\r\n",)),
    Raw("content-length-and-chunked", (400,),
        (raw_request(headers=_CHUNKED, length=2) + b"2\r\n{}\r\n0\r\n\r\n",)),
    Raw("two-content-lengths", (400,), (raw_request(headers=("Content-Length: 3",), body=b"{}"),)),
    Raw("negative-content-length", (400,), (raw_request(body=b"{}", length=-2),)),
    Raw("content-length-not-a-number", (400,), (raw_request(body=b"{}", length="two"),)),
    Raw("expect-100-continue-over-the-cap", (413,),
        (raw_request(headers=("Expect: 100-continue",), length=64 * CAP),)),
    Raw("utf8-in-a-header-value", (202,),
        (raw_request(headers=("Content-Type: application/json", "X-Name: café"), body=b"{}"),)),
    Raw("utf8-in-a-header-name", (400,), (raw_request(headers=("X-Namé: x",), body=b"{}"),)),
    Raw("nul-in-a-header-value", (400,), (raw_request(headers=("X-A: a\x00b",), body=b"{}"),)),
    Raw("cr-injected-header-line", (400,),
        (raw_request(headers=("X-A: a\rInjected: 1",), body=b"{}"),)),
    Raw("obsolete-header-folding", (400, 202),
        (raw_request(headers=("X-A: a", " folded"), body=b"{}"),)),
    Raw("bare-lf-line-endings", (400,),
        (b"POST {path} HTTP/1.1\nHost: {host}\nContent-Length: 2\n\n{}",)),
    Raw("tls-client-hello", (None, 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,)),
    # never completes its head: answered 408 once the read timeout passes
    Raw("http-0.9-request-line", (408,), (b"GET {path}\r\n",), wait=READ_TIMEOUT + 3.0),
    Raw("dot-dot-path-to-the-api", (404,),
        (raw_request("POST /webhooks/../api/health HTTP/1.1", body=b"{}"),)),
    Raw("foreign-host-header", (400,),
        (b"POST {path} HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n\r\n{}",)),
    # uvicorn routes an absolute-form target by its path; the Host header, which the host check
    # reads, names this server (browsers never send this form to an origin server)
    Raw("absolute-form-target-routed-by-path", (202,),
        (raw_request("POST http://evil.example{path} HTTP/1.1", body=b"{}"),)),
]
# fmt: on
