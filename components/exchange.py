"""One HTTP exchange as data: send a request, read its answer up to a cap (re-exported by
`components.api`).

`await fetch(ctx.http, "POST", url, headers=..., content=..., io_timeout=10, max_bytes=...)` sends
one request without following redirects and returns a `Fetched`: status, reason, headers and the
body already read. Flowyard's shared client answers it from its aiohttp session directly
(`runtime.http`), without httpx's request, response and stream objects: measured here on a
loopback POST, 0.14-0.20 ms of CPU through httpx against 0.09-0.12 ms for aiohttp alone; the
engine's run of `bench/fixtures/e2e.yaml` (one HTTP step) went from 0.51-0.64 to 0.36-0.49 ms of
CPU. Any other httpx client (a test's `MockTransport`, httpx's own
transport) is used through `client.send`. Both ways raise httpx's exceptions:
`httpx.TimeoutException`, `httpx.TransportError` for the network, `httpx.HTTPError` otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

__all__ = ["DirectFetch", "FetchRequest", "Fetched", "fetch", "fetch_with_httpx", "read_capped"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """An answer, read."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    """Lower-case names; a repeated header's values joined by ", " (like httpx's `Headers`)."""
    charset_encoding: str | None
    """The Content-Type's charset, lower case, if it names one."""
    content: bytes
    """The body, decoded from its Content-Encoding. Reading stops once it is longer than
    `max_bytes`, so a longer `content` means the body was larger than the cap."""


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What `fetch` sends, as handed to a client's `fetch_direct`."""

    method: str
    url: httpx.URL
    headers: Mapping[str, str]
    content: bytes | None
    io_timeout: float
    max_bytes: int


DirectFetch = Callable[[FetchRequest], Awaitable[Fetched]]
"""`fetch` without httpx's objects: what Flowyard's shared client offers as `fetch_direct`."""


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL | str,
    *,
    headers: Mapping[str, str],
    content: bytes | None = None,
    io_timeout: float,
    max_bytes: int,
) -> Fetched:
    """Send `method url` with exactly `headers` (none of the client's defaults or cookies) and
    read the answer; `io_timeout` bounds connecting and each read. Redirects are not followed."""
    url = httpx.URL(url) if isinstance(url, str) else url
    request = FetchRequest(method, url, headers, content, io_timeout, max_bytes)
    direct: DirectFetch | None = getattr(client, "fetch_direct", None)
    if direct is None:
        return await fetch_with_httpx(client, request)
    return await direct(request)


async def fetch_with_httpx(client: httpx.AsyncClient, sent: FetchRequest) -> Fetched:
    """`fetch` through httpx's `send` and response stream, for any httpx client."""
    request = httpx.Request(
        sent.method,
        sent.url,
        headers=sent.headers,
        content=sent.content,
        extensions={"timeout": httpx.Timeout(sent.io_timeout).as_dict()},
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        content = await read_capped(response.aiter_bytes(), sent.max_bytes)
    finally:
        await response.aclose()
    return Fetched(
        status_code=response.status_code,
        reason_phrase=response.reason_phrase,
        headers=dict(response.headers.items()),
        charset_encoding=response.charset_encoding,
        content=content,
    )


async def read_capped(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """The chunks joined, read no further once they are longer than `max_bytes`."""
    read: list[bytes] = []
    size = 0
    async for chunk in chunks:
        read.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            break
    return b"".join(read)
