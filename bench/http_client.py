"""Outbound HTTP throughput of the shared client, each variant beside raw aiohttp in the same run.

    make bench            # or: .venv/bin/python -m bench.http_client

A small aiohttp server answers a JSON body on 127.0.0.1 from its own process, so its CPU does not
share the client's event loop. 2,000 GETs at concurrency 50 go through raw `aiohttp.ClientSession`
(the baseline), `make_http_client("aiohttp")` and `make_http_client("httpx")`; then the
`http.request` action runs inside a 500-item loop through the engine, once per transport. Every
figure is the best of 3 after a warm-up. Ratios, not verdicts: timings never gate a test.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import aiohttp
from aiohttp import web

from bench.engine import best_of
from components.api import TriggerEvent
from components.builtin.http import BLOCK_PRIVATE_ENV
from components.registry import default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import TransportName, make_http_client
from runtime.model import Flow
from runtime.observer import MemoryRecorder, Status

REQUESTS = 2_000
CONCURRENCY = 50
LOOP_ITEMS = 500
LOOP_CONCURRENCY = 32  # loop.items caps concurrency at 32, so the engine line cannot use 50
TRANSPORTS: tuple[TransportName, ...] = ("aiohttp", "httpx")
BODY = {"id": 1, "name": "Ada", "tags": ["a", "b"], "ok": True}


def _serve(conn: Connection) -> None:
    """Server process: answer GET / with BODY; send the bound port back, then serve forever."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response(BODY)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def gather_limited(n: int, limit: int, fetch: Callable[[], Awaitable[None]]) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one() -> None:
        async with semaphore:
            await fetch()

    await asyncio.gather(*(one() for _ in range(n)))


async def measure(n: int, run: Callable[[], Awaitable[None]]) -> float:
    """Operations per second: one warm-up run (pool filled, code paths hot), then best of 3."""
    await run()
    return n / await best_of(3, run)


async def raw_aiohttp(url: str, limit: int) -> float:
    async with aiohttp.ClientSession() as session:

        async def fetch() -> None:
            async with session.get(url) as response:
                await response.read()

        return await measure(REQUESTS, lambda: gather_limited(REQUESTS, limit, fetch))


async def shared_client(url: str, transport: TransportName) -> float:
    async with make_http_client(transport) as client:

        async def fetch() -> None:
            response = await client.get(url)
            response.raise_for_status()

        return await measure(REQUESTS, lambda: gather_limited(REQUESTS, CONCURRENCY, fetch))


def loop_flow(url: str) -> Flow:
    return Flow.model_validate(
        {
            "id": "http_loop",
            "settings": {"max_steps": 10_000_000, "timeout": 3600},
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {
                    "id": "each",
                    "action": "loop.items",
                    "inputs": {"items": "{{ trigger.body }}", "concurrency": LOOP_CONCURRENCY},
                },
                {"id": "get", "action": "http.request", "inputs": {"url": url}},
            ],
            "edges": [
                {"from": "trigger", "to": "each"},
                {"from": "each", "to": "get", "port": "body"},
            ],
        }
    )


async def engine_steps(url: str, transport: TransportName) -> float:
    """http.request steps per second inside a concurrent loop, through the whole engine."""
    registry, flow, items = default_registry(), loop_flow(url), list(range(LOOP_ITEMS))
    async with make_http_client(transport) as client:

        async def run() -> None:
            context = RunContext(registry=registry, http=client)
            result = await run_flow(flow, TriggerEvent(body=items), context, MemoryRecorder())
            assert result.status == Status.SUCCEEDED, result.error

        return await measure(LOOP_ITEMS, run)


def report(name: str, value: float, unit: str, base_name: str, base: float) -> None:
    print(f"{name}: {value:.0f} {unit} ({base_name} {base:.0f} req/s, ratio {value / base:.2f})")


def sniffio_status() -> str:
    try:
        module = importlib.import_module("sniffio")
    except ImportError as exc:
        return f"no ({exc})"
    return f"yes ({getattr(module, '__version__', '?')})"


async def main(url: str) -> None:
    print(f"sniffio imports: {sniffio_status()}")
    print(f"{REQUESTS:,} GETs at concurrency {CONCURRENCY}, server in a separate process")
    raw = await raw_aiohttp(url, CONCURRENCY)
    print(f"raw aiohttp: {raw:.0f} req/s (baseline)")
    for transport in TRANSPORTS:
        value = await shared_client(url, transport)
        report(f"{transport} transport", value, "req/s", "raw aiohttp", raw)
    raw_loop = await raw_aiohttp(url, LOOP_CONCURRENCY)
    print(f"{LOOP_ITEMS}-item loop at concurrency {LOOP_CONCURRENCY}, one http.request per item")
    for transport in TRANSPORTS:
        value = await engine_steps(url, transport)
        base_name = f"raw aiohttp at concurrency {LOOP_CONCURRENCY}"
        report(
            f"http.request via engine, {transport} transport", value, "steps/s", base_name, raw_loop
        )


if __name__ == "__main__":
    # The bench calls loopback on purpose; a private-address block inherited from the shell
    # would refuse every step.
    os.environ.pop(BLOCK_PRIVATE_ENV, None)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited loop state
    parent, child = spawn.Pipe()
    server = spawn.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        port = parent.recv()
        asyncio.run(main(f"http://127.0.0.1:{port}/"))
    finally:
        server.terminate()
        server.join()
