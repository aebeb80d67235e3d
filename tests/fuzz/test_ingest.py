"""Property: any body, content type and signature headers sent to a webhook through the ASGI app
is answered 2xx or 4xx within a bound, never 5xx and never left hanging.

The app runs in-process (`create_app`, its lifespan driven by hand) on an event loop in a thread of
its own, so each Hypothesis example is one request on a server that stays up between examples.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.server import create_app
from app.settings import Settings
from tests.fuzz.strategies import bodies, content_types
from tests.hostile.harness import FIXTURES

ANSWER_SECONDS = 10.0
"""A request not answered within this is stuck."""


class InProcessApp:
    """The app's lifespan held open on a background event loop; `call` runs a coroutine there."""

    def __init__(self, data_dir: Path) -> None:
        self.app = create_app(Settings(ui=False, data_dir=data_dir, workers=8))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: Future[None] = Future()
        self.urls: dict[str, str] = {}

    def call(self, coroutine: Any, timeout: float = ANSWER_SECONDS) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        started: Future[None] = Future()

        async def hold() -> None:
            self._stop = asyncio.Event()
            try:
                async with self.app.router.lifespan_context(self.app):
                    started.set_result(None)
                    await self._stop.wait()
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise
            finally:
                self._done.set_result(None)

        asyncio.run_coroutine_threadsafe(hold(), self.loop)
        started.result(30)

    def stop(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._done.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def _deploy(app: InProcessApp) -> dict[str, str]:
    async with app.client() as client:
        text = (FIXTURES / "target.yaml").read_text()
        imported = await client.post(
            "/api/integrations", content=text, headers={"Content-Type": "application/yaml"}
        )
        assert imported.status_code == 201, imported.text
        deployed = await client.post(
            "/api/instances", json={"name": "fuzz", "integration": imported.json()["name"]}
        )
        assert deployed.status_code == 201, deployed.text
        return {f["flow_id"]: httpx.URL(f["webhook_url"]).path for f in deployed.json()["flows"]}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    running = InProcessApp(tmp_path_factory.mktemp("fuzz-ingest") / "data")
    running.start()
    running.urls = running.call(_deploy(running), timeout=60)
    yield running
    running.stop()


async def _post(
    app: InProcessApp, path: str, body: bytes, headers: dict[str, Any]
) -> httpx.Response:
    async with app.client() as client:
        return await client.post(path, content=body, headers=headers)


_header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60
) | st.sampled_from(["", "v1,AAAA", "sha256=00", "9" * 20, "-1"])


@given(
    flow=st.sampled_from(["echo", "small", "github", "standard", "unpadded"]),
    body=bodies,
    content_type=content_types,
    signature=st.dictionaries(
        st.sampled_from(
            [
                "X-Hub-Signature-256",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "Idempotency-Key",
                "X-GitHub-Delivery",
                "X-Flowyard-Sync",
            ]
        ),
        _header_values,
        max_size=4,
    ),
)
def test_any_request_gets_2xx_or_4xx(
    app: InProcessApp, flow: str, body: bytes, content_type: str, signature: dict[str, str]
) -> None:
    # the bytes a server could receive: any printable text, UTF-8 encoded, no line breaks
    printable = "".join(c for c in content_type if c >= " " and c != "\x7f")
    headers: dict[str, Any] = {**signature, "Content-Type": printable.encode()}
    response = app.call(_post(app, app.urls[flow], body, headers))
    assert 200 <= response.status_code < 500, response.text[:500]
