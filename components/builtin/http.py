"""The HTTP request action: call any HTTP API, with auth from a connection.

Requests go through the host's shared `ctx.http` client with `components.api.fetch`, which sends
exactly the step's headers, so the client's cookie jar, default headers and base URL never leak
between flows (and skips httpx's request objects on Flowyard's own client). Redirects are followed
here, not by httpx, because every hop's address is checked after DNS resolution: cloud metadata
addresses are always refused, private/loopback/link-local ones when `FLOWYARD_HTTP_BLOCK_PRIVATE=1`.
The shared client's transport applies the same policy to the address it connects to, so a DNS
answer that changes between this check and the connection (rebinding) is refused as well.

Outcomes: a transport error, timeout, 5xx or 429 raises `RetryableError` (with `retry_after` from
Retry-After); another 4xx raises `StepError`; with `on_http_error="output"` every status is data.
3xx answers that are not followed are data too.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import ipaddress
import json
import re
import socket
import time
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, field_validator

from components.api import (
    BLOCK_PRIVATE_ENV,
    HEADER_NAME,
    Action,
    Component,
    Fetched,
    HttpHeaders,
    Inputs,
    Result,
    RetryableError,
    StepConfigError,
    StepContext,
    StepError,
    address_refusal,
    block_private_addresses,
    fetch,
    host_refusal,
    literal_address,
)

__all__ = [
    "BLOCK_PRIVATE_ENV",
    "MAX_REDIRECTS",
    "MAX_RESPONSE_BYTES",
    "HttpRequest",
    "HttpRequestInputs",
    "HttpResponseOutput",
    "component",
]

MAX_REDIRECTS = 10
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
USER_AGENT = "Flowyard/1.0"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_SENSITIVE_PARAM = re.compile(
    r"token|key|secret|passw|pwd|sig|auth|credential|session|code", re.IGNORECASE
)
_TEXT_TYPES = frozenset(
    f"application/{t}" for t in ("xml", "javascript", "x-www-form-urlencoded", "x-ndjson", "csv")
)
_EXCERPT_CHARS = 300


class HttpRequestInputs(Inputs):
    """What to send, where, and how to treat the answer."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        "GET", title="Method", description="HTTP method."
    )
    url: str = Field(
        title="URL",
        description="Absolute http or https URL, e.g. `https://api.example.com/v1/orders`.",
    )
    headers: HttpHeaders = Field(
        default_factory=dict,
        title="Headers",
        description="Request headers. Credentials belong in a connection, not here.",
        json_schema_extra={"x-ui": "keyvalue"},
    )
    query: dict[str, Any] = Field(
        default_factory=dict,
        title="Query parameters",
        description="Added to the URL's query string; a list repeats the parameter, null omits it.",
        json_schema_extra={"x-ui": "keyvalue"},
    )
    body_type: Literal["none", "json", "form", "raw"] = Field(
        "none",
        title="Body type",
        description="`json` sends the body as JSON; `form` as a URL-encoded form (the body must be "
        "an object); `raw` sends text as is (set Content-Type in headers); `none` sends no body.",
    )
    body: Any = Field(None, title="Body", description="The request body, shaped by the body type.")
    connection: str | None = Field(
        None,
        title="Connection",
        description="Connection slot whose credentials authenticate the request (API key, basic, "
        "bearer token or OAuth2). Empty: no authentication.",
    )
    api_key_header: str = Field(
        "X-API-Key",
        pattern=HEADER_NAME.pattern,
        title="API key header",
        description="Header that carries the key of an API-key connection.",
    )
    timeout: float = Field(
        30.0,
        gt=0,
        le=600,
        title="Timeout (s)",
        description="Seconds for the whole request, redirects and DNS included; a timeout is "
        "retried like a network error.",
    )
    on_http_error: Literal["fail", "output"] = Field(
        "fail",
        title="On HTTP error",
        description="`fail`: a 4xx/5xx answer fails the step (5xx and 429 are retried). "
        "`output`: every answer is the step's output; check `status` in a branch.",
    )
    follow_redirects: bool = Field(
        True,
        title="Follow redirects",
        description=f"Follow up to {MAX_REDIRECTS} redirects; otherwise a 3xx answer is the "
        "output.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        try:
            url = _parse_url(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"'{value}' is not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"'{value}' is not an absolute http(s) URL; write it like "
                "'https://api.example.com/path'"
            )
        if url.userinfo:
            raise ValueError(
                "the URL contains a user name or password; put credentials in a basic "
                "connection instead, so they are stored encrypted and never logged"
            )
        return value


@functools.lru_cache(maxsize=1024)
def _parse_url(value: str) -> httpx.URL:
    """httpx's URL parser is pure Python (~40 us a URL here) and every run validates its URL and
    then sends it: URLs are immutable, so each text is parsed once."""
    return httpx.URL(value)


class HttpResponseOutput(BaseModel):
    """The answer: status, headers (lower-case names) and the parsed body."""

    status: int = Field(description="HTTP status code.")
    headers: dict[str, str] = Field(description="Response headers; repeated ones joined by ', '.")
    body: Any = Field(
        description="JSON answers as data, text and XML as a string, anything else as base64; "
        "null when the answer has no body."
    )
    body_base64: bool = Field(description="True when `body` is the base64 of binary content.")


class HttpRequest(Action[HttpRequestInputs]):
    key = "request"
    title = "HTTP request"
    description = (
        "Calls an HTTP API and outputs the status, headers and parsed body. Failed calls are "
        "retried when the error is transient (network, timeout, 5xx, 429)."
    )
    Inputs = HttpRequestInputs
    Output = HttpResponseOutput

    async def run(self, inputs: HttpRequestInputs, ctx: StepContext) -> Result:
        headers, secrets, auth_names = await _request_headers(inputs, ctx)
        content, content_type = _encode_body(inputs)
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = content_type
        url = _parse_url(inputs.url)
        if inputs.query:
            url = url.copy_merge_params(_pairs(inputs.query))
        shown = _display_url(url)
        try:
            async with asyncio.timeout(inputs.timeout):
                answer, final_url = await _fetch(
                    ctx, inputs, url, headers, content, auth_names, secrets
                )
                if await _reauthorized(inputs, ctx, headers, answer.status_code):
                    secrets.append(headers["Authorization"].removeprefix("Bearer "))
                    answer, final_url = await _fetch(
                        ctx, inputs, url, headers, content, auth_names, secrets
                    )
        except TimeoutError:
            ctx.log.warning("%s %s timed out after %g s", inputs.method, shown, inputs.timeout)
            raise RetryableError(
                f"{inputs.method} {shown} timed out after {inputs.timeout:g} s.",
                hint="Raise the step's timeout, or check that the service is reachable.",
            ) from None
        body, is_base64 = _parse_body(answer)
        output = HttpResponseOutput(
            status=answer.status_code,
            headers=dict(answer.headers),
            body=body,
            body_base64=is_base64,
        ).model_dump()
        if inputs.on_http_error == "fail":
            _raise_for_status(answer, body, is_base64, inputs.method, final_url, secrets)
        return Result(output)


async def _reauthorized(
    inputs: HttpRequestInputs, ctx: StepContext, headers: dict[str, str], status: int
) -> bool:
    """After a 401 with an OAuth connection the host refreshes: put a refreshed token in
    `headers` (to send once more); False when there is nothing to refresh."""
    conn = ctx.connections.get(inputs.connection or "")
    if status != 401 or conn is None or conn.tokens is None:
        return False
    rejected = headers["Authorization"].removeprefix("Bearer ")
    headers["Authorization"] = f"Bearer {await conn.tokens.refreshed(rejected)}"
    return True


async def _request_headers(
    inputs: HttpRequestInputs, ctx: StepContext
) -> tuple[dict[str, str], list[str], frozenset[str]]:
    """Headers to send, secret values to scrub from messages, and the auth header names."""
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    user = dict(inputs.headers)
    for name in [k for k in headers if k.lower() in {u.lower() for u in user}]:
        del headers[name]
    headers.update(user)
    if not inputs.connection:
        return headers, [], frozenset()
    slot = inputs.connection
    conn = ctx.connections.get(slot)
    if conn is None:
        raise StepConfigError(
            f"Connection '{slot}' is not available to this step.",
            hint=f"Add a connection slot '{slot}' to the integration and fill it in on the "
            "instance, or clear the step's Connection input.",
        )
    if conn.type == "api_key":
        name, value = inputs.api_key_header, conn.secret("api_key")
        secrets = [value]
    elif conn.type == "basic":
        username, password = conn.secret("username"), conn.secret("password")
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        name, value = "Authorization", f"Basic {token}"
        secrets = [password, token]
    elif conn.type in ("bearer", "oauth2"):
        token = await conn.bearer_token()  # an OAuth token is refreshed first when expiring
        name, value = "Authorization", f"Bearer {token}"
        secrets = [token]
    else:
        raise StepConfigError(
            f"Connection '{slot}' has type '{conn.type}', which the HTTP request step cannot use.",
            hint="Use an api_key, basic, bearer or oauth2 connection, or set the header yourself.",
        )
    for existing in [k for k in headers if k.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value
    return headers, [s for s in secrets if s], frozenset({name.lower()})


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pairs(values: Mapping[str, Any]) -> list[tuple[str, str | int | float | bool | None]]:
    """Query or form pairs: lists repeat the key, null omits it, objects become JSON."""
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in values.items():
        items = value if isinstance(value, list) else [value]
        pairs.extend((key, _param(item)) for item in items if item is not None)
    return pairs


def _encode_body(inputs: HttpRequestInputs) -> tuple[bytes | None, str | None]:
    body, kind = inputs.body, inputs.body_type
    if kind == "none":
        if body is not None:
            raise StepConfigError(
                "The body is set but the body type is 'none', so it would not be sent.",
                hint="Choose the body type json, form or raw, or clear the body.",
            )
        return None, None
    if kind == "json":
        try:
            return json.dumps(body, allow_nan=False, ensure_ascii=False).encode(), (
                "application/json"
            )
        except (TypeError, ValueError) as exc:
            raise StepConfigError(f"The body cannot be sent as JSON: {exc}.") from None
    if kind == "form":
        if not isinstance(body, dict):
            raise StepConfigError(
                f"A form body must be an object of fields, not {_json_type(body)}.",
                hint='Give the body as an object such as {"name": "Ada"}, or use body type json.',
            )
        return str(httpx.QueryParams(_pairs(body))).encode(), ("application/x-www-form-urlencoded")
    if body is None:
        return b"", None
    if not isinstance(body, str):
        raise StepConfigError(
            f"A raw body must be text, not {_json_type(body)}.",
            hint="Use body type json to send objects and lists.",
        )
    return body.encode(), "text/plain; charset=utf-8"


def _json_type(value: Any) -> str:
    kinds = ((bool, "a boolean"), (int | float, "a number"), (str, "a string"), (list, "a list"))
    if value is None:
        return "null"
    return next((name for t, name in kinds if isinstance(value, t)), "an object")


def _display_url(url: httpx.URL) -> str:
    """The URL as logs and messages show it: query values that look like credentials masked."""
    if not url.query:
        return str(url)
    base = str(url.copy_with(query=None, fragment=None))
    pairs = (
        "{}={}".format(k, "***" if _SENSITIVE_PARAM.search(k) else v)
        for k, v in url.params.multi_items()
    )
    return f"{base}?{'&'.join(pairs)}"


async def _check_address(url: httpx.URL, block_private: bool) -> None:
    """Refuse metadata (always) and private addresses (when blocked), after resolving the name."""
    host = url.host.rstrip(".").lower()
    if refusal := host_refusal(host):
        raise StepError(refusal)
    literal = literal_address(host)
    addresses = [literal] if literal is not None else await _resolve(url, host)
    for address in addresses:
        if refusal := address_refusal(host, address, block_private=block_private):
            private_only = address_refusal(host, address, block_private=False) is None
            hint = (
                f"Call a public address, or unset {BLOCK_PRIVATE_ENV} on the server to allow "
                "private networks."
            )
            raise StepError(refusal, hint=hint if private_only else "")


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_RESOLVED_SECONDS = 10.0
_resolved: dict[tuple[str, int], tuple[float, list[_Address]]] = {}
"""Addresses of recently checked names, each kept `_RESOLVED_SECONDS` (aiohttp's DNS cache keeps
them as long): without it every HTTP step made a DNS lookup of its own, beside the one of the
connection it then used. Only the messages depend on it; the shared client's transport checks the
addresses it connects to."""


async def _resolve(url: httpx.URL, host: str) -> list[_Address]:
    """The addresses `url`'s host name resolves to (cached, see `_resolved`)."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        name = url.raw_host.decode("ascii")  # the IDNA (punycode) form that DNS and httpx use
        cached = _resolved.get((name, port))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RetryableError(
            f"Could not resolve host '{host}': {exc}.",
            hint="Check the URL's host name and the server's DNS.",
        ) from None
    addresses: list[_Address] = []
    for info in infos:
        try:
            addresses.append(ipaddress.ip_address(str(info[4][0]).partition("%")[0]))
        except ValueError:
            continue
    if len(_resolved) >= 1024:
        _resolved.clear()
    _resolved[(name, port)] = (now + _RESOLVED_SECONDS, addresses)
    return addresses


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = 443 if url.scheme == "https" else 80
    return url.scheme, url.host, url.port or default


async def _fetch(
    ctx: StepContext,
    inputs: HttpRequestInputs,
    url: httpx.URL,
    headers: dict[str, str],
    content: bytes | None,
    auth_names: frozenset[str],
    secrets: list[str],
) -> tuple[Fetched, httpx.URL]:
    """Send the request, following redirects by hand; return the last answer and its URL."""
    block_private = block_private_addresses()
    method = inputs.method
    # A client answering from recordings (a test run) connects nowhere: no name to resolve.
    offline = getattr(ctx.http, "answers_offline", False) is True
    for _hop in range(MAX_REDIRECTS + 1):
        if not offline:
            await _check_address(url, block_private)
        shown = _display_url(url)
        started = time.perf_counter()
        try:
            answer = await fetch(
                ctx.http,
                method,
                url,
                headers=headers,
                content=content,
                io_timeout=inputs.timeout,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except httpx.TimeoutException:
            ctx.log.warning("%s %s timed out", method, shown)
            raise RetryableError(
                f"{method} {shown} timed out after {inputs.timeout:g} s.",
                hint="Raise the step's timeout, or check that the service is reachable.",
            ) from None
        except httpx.TransportError as exc:
            reason = _scrub(str(exc) or type(exc).__name__, secrets)
            ctx.log.warning("%s %s failed: %s", method, shown, reason)
            raise RetryableError(
                f"{method} {shown} failed: {reason}.",
                hint="Check that the service is reachable.",
            ) from None
        except httpx.HTTPError as exc:
            raise StepError(f"{method} {shown} failed: {_scrub(str(exc), secrets)}.") from None
        location = answer.headers.get("location")
        redirect = (
            inputs.follow_redirects
            and answer.status_code in _REDIRECT_STATUSES
            and location is not None
        )
        if not redirect and len(answer.content) > MAX_RESPONSE_BYTES:
            raise StepError(
                f"{method} {shown} answered with more than {MAX_RESPONSE_BYTES // 1_048_576} MiB.",
                hint="Ask the API for a smaller page of results.",
            )
        elapsed = round((time.perf_counter() - started) * 1000)
        ctx.log.info("%s %s -> %d (%d ms)", method, shown, answer.status_code, elapsed)
        if not redirect or location is None:
            return answer, url
        try:
            target = url.join(location)
        except httpx.InvalidURL:
            raise StepError(f"{method} {shown} redirected to an invalid URL.") from None
        if target.scheme not in ("http", "https"):
            raise StepError(f"{method} {shown} redirected to a non-HTTP URL ({target.scheme}).")
        if (answer.status_code == 303 and method != "HEAD") or (
            answer.status_code in (301, 302) and method == "POST"
        ):
            # What browsers (and httpx) do: the follow-up is a GET without the body.
            method, content = "GET", None
            headers = {
                k: v
                for k, v in headers.items()
                if k.lower() not in ("content-type", "content-length")
            }
        if _origin(target) != _origin(url):
            drop = _CREDENTIAL_HEADERS | auth_names
            headers = {k: v for k, v in headers.items() if k.lower() not in drop}
        url = target.copy_with(fragment=None, userinfo=b"")  # credentials never ride a redirect
    raise StepError(
        f"{inputs.method} {_display_url(url)} redirected more than {MAX_REDIRECTS} times.",
        hint="Check the URL; the service may be redirecting in a loop.",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_body(answer: Fetched) -> tuple[Any, bool]:
    """(body, is_base64): JSON as data, text and XML as str, other content as base64."""
    data = answer.content
    if not data:
        return None, False
    media = answer.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(data, parse_constant=_reject_constant), False
        except (ValueError, RecursionError):
            return _decode_text(answer), False
    if media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+xml"):
        return _decode_text(answer), False
    if not media:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), True


def _decode_text(answer: Fetched) -> str:
    try:
        return answer.content.decode(answer.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        return answer.content.decode("utf-8", errors="replace")


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _excerpt(body: Any, is_base64: bool, secrets: list[str]) -> str:
    if body is None:
        return "(empty body)"
    if is_base64:
        return f"(binary body, {len(body) * 3 // 4} bytes)"
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    text = _scrub(" ".join(text.split()), secrets)
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), 86_400.0)


def _raise_for_status(
    answer: Fetched,
    body: Any,
    is_base64: bool,
    method: str,
    url: httpx.URL,
    secrets: list[str],
) -> None:
    status = answer.status_code
    if status < 400:
        return
    reason = f" {answer.reason_phrase}" if answer.reason_phrase else ""
    message = (
        f"HTTP {status}{reason} from {method} {_display_url(url)}: "
        f"{_excerpt(body, is_base64, secrets)}"
    )
    if status == 429 or status >= 500:
        raise RetryableError(
            message,
            hint="The service is failing or rate-limiting.",
            retry_after=_retry_after(answer.headers.get("retry-after")),
        )
    hints = {
        401: "Check the connection's credentials.",
        403: "The credentials lack permission for this call.",
        404: "Check the URL and the ids in it.",
    }
    raise StepError(
        message,
        hint=hints.get(
            status, "Set 'On HTTP error' to 'output' to handle this status in a branch."
        ),
    )


component = Component(
    key="http",
    title="HTTP",
    category="Core",
    version="1.0.0",
    description="Call HTTP APIs, with API key, basic, bearer or OAuth2 auth from a connection.",
    actions=[HttpRequest],
)
