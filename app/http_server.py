"""How Flowyard serves HTTP: uvicorn's httptools protocol with limits on what a sender can hold.

`uvicorn_options(settings)` is what `flowyard serve` and `flowyard desktop` pass to uvicorn. Its
protocol (`guarded_protocol(limits)`) adds, for every request on every route (webhooks, API, UI):

- **Header caps**: a request head (request line and headers) over `max_head_bytes`, or with more
  than `max_headers` header fields, is answered `431` with a JSON `{"error", "hint"}` and the
  connection closed, before the app sees it. The bytes are counted as they arrive, so a sender
  cannot make the server buffer more than one read past the cap.
- **Read timeout**: a request whose head and body have not fully arrived `read_timeout` seconds
  after its first byte (a Content-Length larger than the body sent, a trickle) is answered `408`
  and the connection closed; the app's `receive()` then reports a disconnect, so a handler waiting
  for the body ends and stores nothing.
- **Half-close**: a client that sends its request and then shuts down its sending side still gets
  the answer (the connection closes after it). Without this the request was stored and run but
  its answer was lost, so the sender retried and the delivery ran twice.

Idle keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings

__all__ = ["RequestLimits", "guarded_protocol", "uvicorn_options"]


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What one request may hold and how long it may take to arrive."""

    max_head_bytes: int = 65_536
    max_headers: int = 200
    read_timeout: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> RequestLimits:
        return cls(settings.max_header_bytes, settings.max_headers, settings.read_timeout)


def _answer(status: str, error: str, hint: str) -> bytes:
    body = json.dumps({"error": error, "hint": hint}).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class _GuardedProtocol(HttpToolsProtocol):
    limits: RequestLimits = RequestLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between requests, the next bytes are a head
        self._head_bytes = 0  # raw bytes read while in a head (may include a body's start)
        self._head_size = 0  # the head's own size, from the parser
        self._header_count = 0
        self._message_complete = False
        self._refused = False
        self._timer: asyncio.TimerHandle | None = None

    # -- header caps --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused or (self._in_head and self._head_bytes > self.limits.max_head_bytes):
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._message_complete = True, False
        self._header_count = self._head_size = 0
        self._start_timer()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4
        if self._header_count > self.limits.max_headers:
            self._refused = True
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused or self._head_size > self.limits.max_head_bytes:
            self._refused = True
            return
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._stop_timer()
        self._in_head, self._head_bytes, self._message_complete = True, 0, True
        if not self._refused:
            super().on_message_complete()

    def _refuse_head(self) -> None:
        self._refused = True
        self._stop_timer()
        limits = self.limits
        self.transport.write(
            _answer(
                "431 Request Header Fields Too Large",
                f"The request's headers are too large: at most {limits.max_headers} header "
                f"fields and {limits.max_head_bytes} bytes are accepted.",
                "Send fewer or smaller headers (put large values in the body).",
            )
        )
        self.transport.close()

    # -- read timeout -------------------------------------------------------------------------

    def _start_timer(self) -> None:
        self._stop_timer()
        self._timer = self.loop.call_later(self.limits.read_timeout, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self._in_head or cycle is None or not cycle.response_started:
            self.transport.write(
                _answer(
                    "408 Request Timeout",
                    f"The request did not fully arrive within {self.limits.read_timeout:g} "
                    "seconds (is its Content-Length larger than the body sent?).",
                    "Send the whole request at once, with a Content-Length that matches it.",
                )
            )
        if cycle is not None and not self._in_head and not cycle.response_complete:
            cycle.disconnected = True  # the handler's receive() now reports a disconnect
            cycle.message_event.set()
        self._refused = True
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    # -- half-close ---------------------------------------------------------------------------

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio allows True
        cycle = self.cycle
        if self._message_complete and cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # answer this request, then close
            return True
        return None


def guarded_protocol(limits: RequestLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol enforcing `limits` (see the module docstring)."""
    return type("GuardedHttpProtocol", (_GuardedProtocol,), {"limits": limits})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` serving Flowyard's app."""
    return {
        "http": guarded_protocol(RequestLimits.of(settings)),
        "ws": "websockets-sansio",  # the UI talks socket.io over websockets, not polling
        "log_level": "warning",
        "proxy_headers": False,
        "server_header": False,
    }
