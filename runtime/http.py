"""The shared outbound HTTP client: httpx's API over a chosen transport, one per process.

`bench/http_client.py` measures the transports side by side (2,000 GETs at concurrency 50 against
a loopback server in another process; 2-core machine, busy): httpx's own transport served 530-720
req/s, the aiohttp transport 1,800-3,300, raw aiohttp 4,300-14,000; through the engine, 250-300
vs 1,350-2,650 HTTP steps/s. httpcore's pool bookkeeping is the cost (encode/httpcore#1035), not
sniffio. So the default is the aiohttp transport (`httpx-aiohttp`);
`FLOWYARD_HTTP_TRANSPORT=httpx` selects httpx's own. Since plain requests skip the client's
layers (`_Client`), the aiohttp transport serves ~5,000 req/s there and ~3,800 HTTP steps/s
through the engine (raw aiohttp 15,000-17,000, quiet machine). `components.api.fetch`, which
the HTTP step uses, goes further: `_Client.fetch_direct` sends on the aiohttp session itself,
without httpx's request, response and stream objects (`bench.http_client`'s engine loop: 5,900
HTTP steps/s, from 3,800).
Redirects are never followed by the client: the HTTP component follows them itself so it can
check every hop's address. The aiohttp transport enforces the address policy of
`components.addresses` for every component: on literal addresses before sending, and through its
resolver on the addresses a name resolves to, which are the ones it connects to (so DNS
rebinding after a component's check is refused too). httpx's own transport checks literal
addresses only.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Literal

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from httpx_aiohttp import AiohttpTransport

from components.addresses import (
    address_refusal,
    block_private_addresses,
    host_refusal,
    literal_address,
)
from components.exchange import Fetched, FetchRequest, fetch_with_httpx, read_capped
from runtime.recorded import note_exchange, note_response

__all__ = ["AddressRefused", "TransportName", "make_http_client"]

TransportName = Literal["aiohttp", "httpx"]

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class AddressRefused(OSError):
    """The address policy (`components.addresses`) refuses every address of a host."""


class _PolicyResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the policy allows: the check is made on the
    addresses the connection then uses, so a DNS answer that changed since a component's own
    check (rebinding) cannot reach a refused address."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if refusal := host_refusal(host):
            raise AddressRefused(refusal)
        block_private = block_private_addresses()
        allowed, refusals = [], []
        for result in await self._inner.resolve(host, port, family):
            address = ipaddress.ip_address(result["host"].partition("%")[0])
            if refusal := address_refusal(host, address, block_private=block_private):
                refusals.append(refusal)
            else:
                allowed.append(result)
        if not allowed and refusals:
            raise AddressRefused(refusals[0])
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _aiohttp_session() -> aiohttp.ClientSession:
    """Created lazily inside the running loop; cookies are never kept (see above)."""
    connector = aiohttp.TCPConnector(
        limit=_LIMITS.max_connections or 100, keepalive_timeout=30, resolver=_PolicyResolver()
    )
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def _literal_refusal(url: httpx.URL) -> str | None:
    """The policy's refusal of a URL whose host is an IP address (no resolver sees those)."""
    address = literal_address(url.host)
    if address is None:
        return host_refusal(url.host)
    return address_refusal(url.host, address, block_private=block_private_addresses())


class _Transport(AiohttpTransport):
    """httpx-aiohttp's transport, with refused connections reported as what they are, and URLs
    with credentials sent (it passed them to aiohttp beside the header, which aiohttp refuses).

    Its exception map picks `ConnectTimeout` for every `ClientConnectionError`, so a refused
    connection (a `ClientConnectorError`, failing in milliseconds) read as "timed out after 30 s".
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if refusal := _literal_refusal(request.url):
            raise httpx.ConnectError(refusal, request=request)
        if request.url.userinfo:
            # httpx has turned URL credentials into an Authorization header already; aiohttp
            # refuses a request that has both.
            request.url = request.url.copy_with(userinfo=b"")
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(
                cause, aiohttp.ServerTimeoutError | aiohttp.ConnectionTimeoutError
            ):
                raise httpx.ConnectError(_connect_failure(cause), request=request) from cause
            raise

    async def fetch(self, sent: FetchRequest) -> Fetched:
        """`components.exchange.fetch` straight on the aiohttp session (see `_Client`)."""
        if refusal := _literal_refusal(sent.url):
            raise httpx.ConnectError(refusal)
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        seconds = sent.io_timeout
        timeout = aiohttp.ClientTimeout(
            total=None, connect=seconds, sock_connect=seconds, sock_read=seconds
        )
        try:
            async with self.client.request(
                sent.method,
                str(sent.url),
                headers=sent.headers,
                data=sent.content or None,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                return Fetched(
                    status_code=response.status,
                    reason_phrase=response.reason or "",
                    headers=_joined_headers(response.headers.items()),
                    charset_encoding=(response.charset or "").lower() or None,
                    content=await _read_capped(response, sent.max_bytes),
                )
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(_connect_failure(exc)) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connection timed out") from exc
        except TimeoutError as exc:  # aiohttp's read timeouts are TimeoutErrors too
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(str(exc)) from exc
        except aiohttp.ClientResponseError as exc:  # e.g. a malformed status line or header
            raise httpx.RemoteProtocolError(exc.message or str(exc)) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.UnsupportedProtocol(f"invalid URL {exc}") from exc
        except aiohttp.ClientConnectionError as exc:  # disconnected, reset, ...
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc) or type(exc).__name__) from exc


def _connect_failure(error: aiohttp.ClientConnectorError) -> str:
    """Why a connection failed: the address policy's refusal (from the resolver) as it is
    worded, anything else as aiohttp words it."""
    refused = error.os_error
    return str(refused) if isinstance(refused, AddressRefused) else str(error)


def _joined_headers(items: Any) -> dict[str, str]:
    """Lower-case names, a repeated header's values joined by ", " (as httpx's `Headers`)."""
    joined: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The (decompressed) body; reading stops once it is longer than `max_bytes`."""
    length = response.content_length
    if length is not None and length <= max_bytes and "Content-Encoding" not in response.headers:
        return await response.read()  # one read, not a chunk iterator, for the usual small body
    return await read_capped(response.content.iter_chunked(64 * 1024), max_bytes)


class _CheckedHTTPTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, refusing literal addresses the policy refuses (it has no resolver
    hook, so names are checked only by the components that check them)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if refusal := _literal_refusal(request.url):
            raise httpx.ConnectError(refusal, request=request)
        return await super().handle_async_request(request)


def make_http_client(transport: TransportName | None = None) -> httpx.AsyncClient:
    """A new client for the process (or one test); close it with `aclose()` or `async with`."""
    name = transport or os.environ.get("FLOWYARD_HTTP_TRANSPORT", "aiohttp")
    if name not in ("aiohttp", "httpx"):
        raise ValueError(f"FLOWYARD_HTTP_TRANSPORT must be 'aiohttp' or 'httpx', not {name!r}")
    headers = {"User-Agent": "Flowyard/0.1"}
    # One client serves every flow: a cookie set by one app must never reach another request.
    cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    chosen: httpx.AsyncBaseTransport = (
        _CheckedHTTPTransport(limits=_LIMITS)
        if name == "httpx"
        else _Transport(limits=_LIMITS, client=_aiohttp_session)
    )
    return _Client(
        transport=chosen,
        timeout=_TIMEOUT,
        follow_redirects=False,
        headers=headers,
        cookies=cookies,
    )


class _Client(httpx.AsyncClient):
    """httpx's client; a request it would only pass through goes straight to the transport.

    `send` runs auth, redirect, cookie and logging layers around the transport call: ~0.1 ms of
    CPU a request here, a third of a whole HTTP step's cost (0.35 -> 0.23 ms, loopback POST). For
    this client they do nothing: it follows no redirects, keeps no cookies (the policy above),
    and has no auth or event hooks. So a request without auth of its own (none given, no
    credentials in the URL) is sent as is; anything else takes httpx's path.
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._direct = transport

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        response = await self._send(
            request, stream=stream, auth=auth, follow_redirects=follow_redirects
        )
        if not stream:  # a streamed body is not read yet; `fetch_direct` notes its exchange
            note_response(response)  # the running step's record keeps it (runtime.recorded)
        return response

    async def _send(
        self,
        request: httpx.Request,
        *,
        stream: bool,
        auth: Any,
        follow_redirects: Any,
    ) -> httpx.Response:
        passthrough = (
            follow_redirects is not True  # the client's default is False
            and auth is httpx.USE_CLIENT_DEFAULT
            and self.auth is None
            and not request.url.userinfo
            and not self.is_closed
        )
        if not passthrough:
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        request.extensions.setdefault("timeout", self.timeout.as_dict())
        try:
            response = await self._direct.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request  # as httpx's own path does
            raise
        response.request = request
        try:
            if not stream:
                await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response

    async def fetch_direct(self, sent: FetchRequest) -> Fetched:
        """`components.api.fetch` for this client: on the aiohttp transport, straight through
        its session without httpx's request, response and stream objects (about 0.13 ms of CPU
        less per HTTP step here); otherwise, or for a URL with credentials, through `send`."""
        transport = self._direct
        if isinstance(transport, _Transport) and not sent.url.userinfo and not self.is_closed:
            answer = await transport.fetch(sent)
        else:
            answer = await fetch_with_httpx(self, sent)
        note_exchange(  # the running step's record keeps it (runtime.recorded)
            sent.method,
            str(sent.url),
            sent.headers,
            sent.content,
            answer.status_code,
            answer.headers,
            answer.content,
        )
        return answer
