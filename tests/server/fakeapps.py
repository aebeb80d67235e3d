"""Small fake third-party apps on loopback: webhook subscriptions plus an echo endpoint.

Each runs an aiohttp server on its own event loop in a thread, so tests that drive a server
process synchronously can use it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from aiohttp import web


class FakeApp:
    """`POST/GET /subscriptions`, `DELETE /subscriptions/{id}`, `GET /echo` (echoes headers)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _app(self) -> web.Application:
        async def create(request: web.Request) -> web.Response:
            data = await request.json()
            if not isinstance(data, dict) or not isinstance(data.get("url"), str):
                return web.json_response({"error": "url required"}, status=400)
            sub_id = f"{self.name}-{next(self._ids)}"
            self.subscriptions[sub_id] = {"id": sub_id, **data}
            return web.json_response(self.subscriptions[sub_id], status=201)

        async def listing(request: web.Request) -> web.Response:
            return web.json_response(list(self.subscriptions.values()))

        async def remove(request: web.Request) -> web.Response:
            if self.subscriptions.pop(request.match_info["sub_id"], None) is None:
                return web.json_response({"error": "no such subscription"}, status=404)
            return web.Response(status=204)

        async def echo(request: web.Request) -> web.Response:
            return web.json_response({"headers": dict(request.headers)})

        @web.middleware
        async def log(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append((request.method, request.path, dict(request.headers)))
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[log])
        app.router.add_post("/subscriptions", create)
        app.router.add_get("/subscriptions", listing)
        app.router.add_delete("/subscriptions/{sub_id}", remove)
        app.router.add_get("/echo", echo)
        return app

    def start(self) -> FakeApp:
        self._thread.start()

        async def up() -> str:
            self._runner = web.AppRunner(self._app())
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

        self.url = asyncio.run_coroutine_threadsafe(up(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
