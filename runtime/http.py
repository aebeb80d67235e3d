"""The shared outbound HTTP client: httpx's API over a chosen transport, one per process.

`bench/http_client.py` measures the transports side by side (2,000 GETs at concurrency 50 against
a loopback server in another process; 2-core machine, busy): httpx's own transport served 530-720
req/s, the aiohttp transport 1,800-3,300, raw aiohttp 4,300-14,000; through the engine, 250-300
vs 1,350-2,650 HTTP steps/s. httpcore's pool bookkeeping is the cost (encode/httpcore#1035), not
sniffio. So the default is the aiohttp transport (`httpx-aiohttp`);
`FLOWYARD_HTTP_TRANSPORT=httpx` selects httpx's own.
Redirects are never followed by the client: the HTTP component follows them itself so it can
check every hop's address.
"""

from __future__ import annotations

import os
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["TransportName", "make_http_client"]

TransportName = Literal["aiohttp", "httpx"]

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _aiohttp_session() -> aiohttp.ClientSession:
    """Created lazily inside the running loop; cookies are never kept (see above)."""
    connector = aiohttp.TCPConnector(limit=_LIMITS.max_connections or 100, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


class _Transport(AiohttpTransport):
    """httpx-aiohttp's transport, with refused connections reported as what they are.

    Its exception map picks `ConnectTimeout` for every `ClientConnectionError`, so a refused
    connection (a `ClientConnectorError`, failing in milliseconds) read as "timed out after 30 s".
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(
                cause, aiohttp.ServerTimeoutError | aiohttp.ConnectionTimeoutError
            ):
                raise httpx.ConnectError(str(cause), request=request) from cause
            raise


def make_http_client(transport: TransportName | None = None) -> httpx.AsyncClient:
    """A new client for the process (or one test); close it with `aclose()` or `async with`."""
    name = transport or os.environ.get("FLOWYARD_HTTP_TRANSPORT", "aiohttp")
    if name not in ("aiohttp", "httpx"):
        raise ValueError(f"FLOWYARD_HTTP_TRANSPORT must be 'aiohttp' or 'httpx', not {name!r}")
    headers = {"User-Agent": "Flowyard/0.1"}
    # One client serves every flow: a cookie set by one app must never reach another request.
    cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    if name == "httpx":
        return httpx.AsyncClient(
            limits=_LIMITS,
            timeout=_TIMEOUT,
            follow_redirects=False,
            headers=headers,
            cookies=cookies,
        )
    return httpx.AsyncClient(
        transport=_Transport(limits=_LIMITS, client=_aiohttp_session),
        timeout=_TIMEOUT,
        follow_redirects=False,
        headers=headers,
        cookies=cookies,
    )
