"""Fixtures for component tests: a `StepContext` built by hand, fake DNS and a local HTTP server."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from multidict import CIMultiDict

from components import addresses
from components.api import Connection, Response, StepContext, StepLogger
from runtime.http import make_http_client
from runtime.state import BoundState, MemoryState

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Harness:
    """Builds `StepContext`s and records what steps did with them."""

    clients: list[httpx.AsyncClient] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    backend: MemoryState = field(default_factory=MemoryState)
    call_result: Any = None
    log: StepLogger = field(default_factory=StepLogger)

    def client(self, handler: Handler | None = None) -> httpx.AsyncClient:
        """A client on `httpx.MockTransport(handler)`, or a real one (loopback use only)."""
        transport = httpx.MockTransport(handler) if handler is not None else None
        client = httpx.AsyncClient(transport=transport, trust_env=False)
        self.clients.append(client)
        return client

    def ctx(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        connections: Mapping[str, Connection] | None = None,
        flow_id: str = "flow1",
        secrets: tuple[str, ...] = (),
    ) -> StepContext:
        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        async def call_flow(flow: str, payload: Any) -> Any:
            self.calls.append((flow, payload))
            return self.call_result

        self.log = StepLogger(secrets)
        return StepContext(
            log=self.log,
            http=http if http is not None else self.client(_no_network),
            config={},
            connections=dict(connections or {}),
            state=BoundState(self.backend, "inst1", flow_id),
            instance_id="inst1",
            flow_id=flow_id,
            webhook_urls={},
            execution_id="exec1",
            step_id="step1",
            call_flow=call_flow,
            respond=self.responses.append,
            sleep=sleep,
        )

    @property
    def messages(self) -> list[str]:
        return [line.message for line in self.log.lines]


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request {request.method} {request.url}")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    for client in h.clients:
        await client.aclose()


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Resolve host names from this dict instead of DNS: `fake_dns["api.test"] = ["1.2.3.4"]`.

    `*.test` names not in the dict resolve to a public address; other names fail like an unknown
    host. No test reaches the network: requests to these names go to a `MockTransport`.
    """
    table: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        assert host.isascii(), f"resolve the IDNA form, not {host!r}"
        addresses = table.get(host)
        if addresses is None and host.endswith(".test"):
            addresses = ["93.184.216.34"]  # a public address, so private-network blocking passes
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addresses
        ]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(addresses, "_resolved", {})  # no answers from another test's DNS
    return table


def _echo(request: web.Request, body: bytes) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": [[k, v] for k, v in request.query.items()],
            "headers": dict(request.headers),
            "body": body.decode("utf-8", errors="replace"),
        }
    )


async def _echo_handler(request: web.Request) -> web.Response:
    return _echo(request, await request.read())


async def _json_handler(request: web.Request) -> web.Response:
    del request
    return web.json_response({"hello": "world", "n": 1})


async def _slow_handler(request: web.Request) -> web.Response:
    del request
    await asyncio.sleep(5)
    return web.Response(text="too late")


async def _gzip_handler(request: web.Request) -> web.Response:
    del request
    body = gzip.compress(json.dumps({"packed": True, "pad": "x" * 2000}).encode())
    return web.Response(
        body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )


async def _repeated_handler(request: web.Request) -> web.Response:
    del request
    headers = CIMultiDict([("X-Tag", "a"), ("x-tag", "b"), ("Content-Type", "text/plain")])
    return web.Response(text="two tags", headers=headers)


async def _bytes_handler(request: web.Request) -> web.StreamResponse:
    """`?n=` bytes; `&chunked=1` without a Content-Length."""
    size = int(request.query["n"])
    if not request.query.get("chunked"):
        return web.Response(body=b"x" * size, content_type="application/octet-stream")
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, size, 1000):
        await response.write(b"x" * min(1000, size - start))
    await response.write_eof()
    return response


def _redirect(location: str, status: int = 302) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        del request
        return web.Response(status=status, headers={"Location": location})

    return handler


@pytest.fixture(params=["httpx", "flowyard"])
async def real_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """A client that really connects: httpx's own (the generic `fetch` path through `send`), and
    Flowyard's shared client (`runtime.http`, which `fetch` uses straight through aiohttp)."""
    client = httpx.AsyncClient(trust_env=False) if request.param == "httpx" else make_http_client()
    async with client:
        yield client


@pytest.fixture
async def local_server() -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 (ephemeral port); yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/echo", _echo_handler)
    app.router.add_get("/json", _json_handler)
    app.router.add_get("/slow", _slow_handler)
    app.router.add_get("/gzip", _gzip_handler)
    app.router.add_get("/repeated", _repeated_handler)
    app.router.add_get("/bytes", _bytes_handler)
    app.router.add_get("/to-metadata", _redirect("http://169.254.169.254/latest/meta-data/"))
    app.router.add_get("/to-json", _redirect("/json"))
    app.router.add_get("/loop", _redirect("/loop"))
    app.router.add_post("/see-other", _redirect("/echo", 303))
    app.router.add_post("/temporary", _redirect("/echo", 307))
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def json_response(data: Any, status: int = 200, **headers: str) -> httpx.Response:
    """A MockTransport answer with a JSON body."""
    return httpx.Response(
        status,
        content=json.dumps(data).encode(),
        headers={"content-type": "application/json", **headers},
    )
