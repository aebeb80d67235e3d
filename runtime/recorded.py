"""Recorded HTTP exchanges: what a step sent and got, and answering a run from recordings.

Capturing. While the engine runs a step it opens `capturing(record.exchanges)`; every request
the shared client (`runtime.http`) or a `RecordedClient` makes meanwhile is appended there as an
exchange in the JSON form below. Credential headers are masked by name here; the engine then
masks the run's secret values (connection fields, secret config) like everything it records.

    {"request": {"method": "POST", "url": "http://...", "headers": {...}, "body": {...}},
     "response": {"status": 201, "headers": {...}, "body": {...}, "body_base64": false}}

Bodies are JSON when they parse as JSON, else text, else base64 (`body_base64: true`).

Answering. `RecordedClient(Responder(exchanges))` is an `httpx.AsyncClient` that sends nothing:
each request is answered by the first unused recording whose request matches (then, once all
matching ones are used, the last one again), and a request no recording matches fails the step
with `NoRecording`, naming the call and listing what was recorded. A recording's request
matches by method and URL: an absolute URL compares scheme, host, port and path, a URL starting
with `/` only the path (any host); its query, when it has one, must hold the same parameters
(any order); its `body`, when given, must match the request's JSON body partially
(`runtime.matching`). Headers are never compared. `RecordedExchange` is that form as a model
(test suites' `responses:`), and `exchanges_to_recordings` turns a past run's step records into
recordings (for replay).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.errors import StepError
from runtime.matching import first_mismatch

__all__ = [
    "NoRecording",
    "RecordedClient",
    "RecordedExchange",
    "RecordedRequest",
    "RecordedResponse",
    "Responder",
    "capturing",
    "exchange_json",
    "exchanges_to_recordings",
    "note_exchange",
    "note_response",
]

MAX_BODY_BYTES = 1024 * 1024
"""A body longer than this is kept cut to this size with `body_truncated: true`."""

_CREDENTIAL_HEADER = re.compile(
    r"^(authorization|proxy-authorization|cookie|set-cookie)$|api[-_]?key|token|secret|signature",
    re.IGNORECASE,
)
_MASK = "***"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_current: ContextVar[list[dict[str, Any]] | None] = ContextVar("flowyard_exchanges", default=None)


# --- the recorded form --------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordedRequest(_Strict):
    """Which request a recording answers (see the module doc for how it matches)."""

    method: str = Field("GET", description="HTTP method, e.g. GET or POST.")
    url: str = Field(
        description="Absolute URL (`http://host/path?query`), or a path (`/path?query`) to match "
        "any host."
    )
    body: Any = Field(
        None, description="When set, the request's JSON body must match it partially."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="As sent (recorded runs); never compared."
    )

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.upper()
        if upper not in _METHODS:
            raise ValueError(f"'{value}' is not an HTTP method; use one of {', '.join(_METHODS)}")
        return upper

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"'{value}' is not a URL: {exc}") from None
        if not value.startswith("/") and (url.scheme not in ("http", "https") or not url.host):
            raise ValueError(
                f"'{value}' is neither an absolute http(s) URL nor a path starting with '/'"
            )
        return value


class RecordedResponse(_Strict):
    """The answer a recording gives."""

    status: int = Field(200, ge=100, le=599, description="HTTP status code.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Response headers; Content-Type defaults to JSON for objects and lists.",
    )
    body: Any = Field(None, description="JSON data, text, or base64 when `body_base64`.")
    body_base64: bool = False
    body_truncated: bool = False


class RecordedExchange(_Strict):
    """One request and its answer: what a step record keeps, and what a test may declare."""

    request: RecordedRequest
    response: RecordedResponse = Field(default_factory=RecordedResponse)


# --- capturing ----------------------------------------------------------------------------------


@contextmanager
def capturing(into: list[dict[str, Any]]) -> Iterator[None]:
    """Append every exchange made in this context (this task and tasks it starts) to `into`."""
    token = _current.set(into)
    try:
        yield
    finally:
        _current.reset(token)


def _body(content: bytes, content_type: str) -> dict[str, Any]:
    truncated = len(content) > MAX_BODY_BYTES
    data = content[:MAX_BODY_BYTES]
    out: dict[str, Any] = {"body": None, "body_base64": False}
    if truncated:
        out["body_truncated"] = True
    if not data:
        return out
    media = content_type.partition(";")[0].strip().lower()
    if not truncated and (media == "application/json" or media.endswith("+json") or not media):
        try:
            out["body"] = json.loads(data)
            return out
        except (ValueError, RecursionError):
            pass
    try:
        out["body"] = data.decode("utf-8")
    except UnicodeDecodeError:
        out["body"], out["body_base64"] = base64.b64encode(data).decode("ascii"), True
    return out


@functools.lru_cache(maxsize=512)
def _is_credential(name: str) -> bool:
    # Every HTTP step's exchange passes its headers here; names repeat, so decide each once.
    return _CREDENTIAL_HEADER.search(name) is not None


def _headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        text = _MASK if _is_credential(key) else value
        shown[key] = f"{shown[key]}, {text}" if key in shown else text
    return shown


def exchange_json(
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    request_body: bytes | None,
    status: int,
    response_headers: Mapping[str, str],
    response_body: bytes,
) -> dict[str, Any]:
    """One exchange in the recorded JSON form, credential headers masked."""
    sent = _headers(request_headers.items())
    request_fields = _body(request_body or b"", sent.get("content-type", ""))
    got = _headers(response_headers.items())
    return {
        "request": {
            "method": method.upper(),
            "url": url,
            "headers": sent,
            "body": request_fields["body"],
        },
        "response": {
            "status": status,
            "headers": got,
            **_body(response_body, got.get("content-type", "")),
        },
    }


def note_exchange(
    method: str,
    url: str,
    request_headers: Mapping[str, str],
    request_body: bytes | None,
    status: int,
    response_headers: Mapping[str, str],
    response_body: bytes,
) -> None:
    """Record one exchange if a step is capturing (a no-op otherwise)."""
    into = _current.get()
    if into is not None:
        into.append(
            exchange_json(
                method, url, request_headers, request_body, status, response_headers, response_body
            )
        )


def note_response(response: httpx.Response) -> None:
    """Record an httpx exchange whose body has been read, if a step is capturing."""
    if _current.get() is None:
        return
    request = response.request
    note_exchange(
        request.method,
        str(request.url),
        request.headers,
        request.content,
        response.status_code,
        response.headers,
        response.content,
    )


def exchanges_to_recordings(
    exchanges: Iterable[Mapping[str, Any]], *, match_body: bool = False
) -> list[RecordedExchange]:
    """Recordings that answer the same calls again, in order (step records' `exchanges`).

    Request bodies are left out of matching unless `match_body`: a replay on an edited flow
    may send a different body to the same URL and should still get the recorded answer.
    """
    recordings = []
    for exchange in exchanges:
        request = dict(exchange["request"])
        if not match_body:
            request["body"] = None
        recordings.append(
            RecordedExchange.model_validate({"request": request, "response": exchange["response"]})
        )
    return recordings


# --- answering ----------------------------------------------------------------------------------


class NoRecording(StepError):
    """A request had no recording to answer it (the step fails; it is not retried)."""

    kind = "no_recording"


def _query(url: httpx.URL) -> list[tuple[str, str]]:
    return sorted(url.params.multi_items())


def _request_matches(
    recorded: RecordedRequest, method: str, url: httpx.URL, content: bytes | None
) -> bool:
    if recorded.method != method.upper():
        return False
    want = httpx.URL(recorded.url)
    if not recorded.url.startswith("/") and (
        want.scheme != url.scheme
        or want.host != url.host
        or (want.port or _default_port(want)) != (url.port or _default_port(url))
    ):
        return False
    if want.path != url.path:
        return False
    if want.query and _query(want) != _query(url):
        return False
    if recorded.body is None:
        return True
    try:
        sent = json.loads(content or b"null")
    except (ValueError, RecursionError):
        sent = (content or b"").decode("utf-8", errors="replace")
    return first_mismatch(recorded.body, sent) is None


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def _content(response: RecordedResponse) -> tuple[bytes, dict[str, str]]:
    headers = {k.lower(): v for k, v in response.headers.items()}
    body = response.body
    if body is None:
        return b"", headers
    if response.body_base64 and isinstance(body, str):
        try:
            return base64.b64decode(body, validate=True), headers
        except (binascii.Error, ValueError):
            return body.encode(), headers
    if isinstance(body, str):
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        return body.encode(), headers
    headers.setdefault("content-type", "application/json")
    return json.dumps(body, ensure_ascii=False).encode(), headers


class Responder:
    """Answers requests from recordings, each used once in order, the last match repeated."""

    def __init__(self, recordings: Sequence[RecordedExchange]) -> None:
        self.recordings = list(recordings)
        self._used = [False] * len(self.recordings)

    def answer(self, method: str, url: httpx.URL, content: bytes | None) -> RecordedResponse:
        """The recorded answer to this request; `NoRecording` when none matches."""
        found = [
            i
            for i, r in enumerate(self.recordings)
            if _request_matches(r.request, method, url, content)
        ]
        if not found:
            raise NoRecording(
                f"No recorded response for {method.upper()} {url}{self._listing()}.",
                hint="Declare one in the test's `responses:` (or the flow's `test_responses:`), "
                "or run with --live to call the real service.",
            )
        index = next((i for i in found if not self._used[i]), found[-1])
        self._used[index] = True
        return self.recordings[index].response

    def _listing(self) -> str:
        if not self.recordings:
            return " (there are no recordings)"
        calls = [f"{r.request.method} {r.request.url}" for r in self.recordings[:5]]
        more = f", and {len(self.recordings) - 5} more" if len(self.recordings) > 5 else ""
        return f" (recorded: {', '.join(calls)}{more})"

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """httpx's `MockTransport` handler: the answer, noted as the step's exchange."""
        content = await request.aread()
        answer = self.answer(request.method, request.url, content)
        body, headers = _content(answer)
        response = httpx.Response(answer.status, headers=headers, content=body, request=request)
        note_exchange(
            request.method,
            str(request.url),
            request.headers,
            content,
            answer.status,
            response.headers,
            body,
        )
        return response


class RecordedClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` answered by a `Responder`: nothing reaches the network.

    `answers_offline` tells the HTTP step not to resolve host names first (nothing connects).
    """

    answers_offline = True

    def __init__(self, responder: Responder) -> None:
        super().__init__(transport=httpx.MockTransport(responder.handle))
        self.responder = responder
