"""The shared HTTP client: both transports work against a real loopback server, keep no cookies
(one client serves every flow) and never follow redirects on their own."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from components.api import fetch
from runtime.http import TransportName, make_http_client
from tests.loopback import serving


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def set_cookie(request: web.Request) -> web.Response:
        response = web.json_response({"cookie": request.headers.get("Cookie")})
        response.set_cookie("session", "secret-of-app-a")
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/set")

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"authorization": request.headers.get("Authorization")})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/set", set_cookie)
    app.router.add_get("/redirect", redirect)
    async with serving(app) as port:
        yield f"http://localhost:{port}"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_no_cookies_kept_and_no_redirects_followed(
    server: str, transport: TransportName
) -> None:
    async with make_http_client(transport) as client:
        first = await client.get(f"{server}/set")
        assert first.status_code == 200
        assert "secret-of-app-a" in first.headers["set-cookie"]
        second = await client.get(f"{server}/set")
        assert second.json() == {"cookie": None}
        redirected = await client.get(f"{server}/redirect")
        assert redirected.status_code == 302
        assert redirected.headers["location"] == "/set"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_requests_with_auth_still_get_it(server: str, transport: TransportName) -> None:
    """Plain requests skip httpx's client layers (`_Client.send`); one with auth takes them."""
    async with make_http_client(transport) as client:
        plain = await client.get(f"{server}/whoami")
        assert plain.json() == {"authorization": None}
        assert plain.request.url == httpx.URL(f"{server}/whoami")
        given = await client.get(f"{server}/whoami", auth=("ada", "pw"))
        assert given.json() == {"authorization": "Basic YWRhOnB3"}
        in_url = await client.get(server.replace("//", "//ada:pw@") + "/whoami")
        assert in_url.json() == {"authorization": "Basic YWRhOnB3"}
        streamed = await client.send(client.build_request("GET", f"{server}/whoami"), stream=True)
        assert await streamed.aread() == b'{"authorization": null}'
        await streamed.aclose()


def test_unknown_transport_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWYARD_HTTP_TRANSPORT", "curl")
    with pytest.raises(ValueError, match="must be 'aiohttp' or 'httpx'"):
        make_http_client()


async def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    """httpx-aiohttp maps every aiohttp connection error to ConnectTimeout; ours does not."""
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with make_http_client("aiohttp") as client:
            with pytest.raises(httpx.ConnectError) as caught:
                await client.get(f"http://127.0.0.1:{port}/")
    assert not isinstance(caught.value, httpx.TimeoutException)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_metadata_addresses_are_refused_by_the_client_itself(
    transport: TransportName,
) -> None:
    """Every component shares the client, so the client enforces the address policy: a custom
    component calling the metadata endpoint is refused without a connection being made."""
    async with make_http_client(transport) as client:
        for url in (
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
        ):
            with pytest.raises(httpx.ConnectError, match="cloud metadata"):
                await client.get(url)


async def test_private_addresses_are_refused_at_connect_time_when_blocked(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With FLOWYARD_HTTP_BLOCK_PRIVATE=1, a name that resolves to loopback is refused on the
    address the connection would use: a DNS answer that changed after a component's own check
    (rebinding) cannot reach the private network either."""
    async with make_http_client("aiohttp") as client:
        assert (await client.get(f"{server}/set")).status_code == 200  # allowed by default
    monkeypatch.setenv("FLOWYARD_HTTP_BLOCK_PRIVATE", "1")
    async with make_http_client("aiohttp") as client:
        literal = server.replace("localhost", "127.0.0.1")
        for url in (f"{server}/set", f"{literal}/set"):  # by name (resolved), by address
            with pytest.raises(httpx.ConnectError, match="private, loopback and link-local"):
                await client.get(url)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_fetch_sends_exactly_its_headers_and_url_credentials(
    server: str, transport: TransportName
) -> None:
    """`components.api.fetch`: the aiohttp client answers from its session directly, a URL with
    credentials (or httpx's transport) goes through `send`; the answers are the same."""
    async with make_http_client(transport) as client:
        plain = await fetch(
            client,
            "GET",
            f"{server}/whoami",  # text or an httpx.URL
            headers={"X-Test": "1"},
            io_timeout=5,
            max_bytes=1000,
        )
        assert plain.status_code == 200
        assert plain.reason_phrase == "OK"
        assert plain.headers["content-type"] == "application/json; charset=utf-8"
        assert plain.charset_encoding == "utf-8"
        assert json.loads(plain.content) == {"authorization": None}
        with_user = await fetch(
            client,
            "GET",
            httpx.URL(server.replace("http://", "http://ada:pw@") + "/whoami"),
            headers={},
            io_timeout=5,
            max_bytes=1000,
        )
        token = base64.b64encode(b"ada:pw").decode("ascii")
        assert json.loads(with_user.content) == {"authorization": f"Basic {token}"}


async def test_fetch_refuses_private_addresses_at_connect_time_when_blocked(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct path keeps the transport's address policy: names through the resolver,
    literal addresses before sending."""
    monkeypatch.setenv("FLOWYARD_HTTP_BLOCK_PRIVATE", "1")
    async with make_http_client("aiohttp") as client:
        literal = server.replace("localhost", "127.0.0.1")
        for url in (f"{server}/set", f"{literal}/set"):
            with pytest.raises(httpx.ConnectError, match="private, loopback and link-local"):
                await fetch(client, "GET", httpx.URL(url), headers={}, io_timeout=5, max_bytes=1000)
