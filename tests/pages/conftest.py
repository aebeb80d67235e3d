"""Fixtures for page tests with NiceGUI's simulated `user` (no browser).

- `hub`: an in-process `Hub` on a temp data dir (SQLite, built-in components plus any from
  `FLOWYARD_COMPONENTS_DIR`, a real `WorkerPool` polling every 50 ms), stopped after the test.
- `user`: NiceGUI's `user` fixture with `nicegui.app.state.hub` set to `hub` and every page module
  in `PAGE_MODULES` imported afresh (NiceGUI's test reset unregisters pages around each test, so
  they are registered again per test; a page module imported elsewhere is imported anew). Just
  ask for `user`; ask for `hub` too to prepare data.
- `import_integration`: `await import_integration("orders.yaml")` imports a YAML file (a name in
  `tests/pages/fixtures`, `tests/server/fixtures` or `tests/fixtures`, or any path) through the
  integrations service.
- Plain helpers: `import_yaml(hub, path)`, `send_webhook(hub, url, body)` (the ingest path, as the
  HTTP route calls it; returns the execution id) and `wait_for(predicate)`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nicegui
import pytest
from nicegui.testing import User

from app.persistence import SecretBox, load_secret_key, open_database
from app.persistence.db import dispose_when_idle
from app.services import integrations
from app.services.dispatcher import WorkerPool
from app.services.hub import Hub
from app.services.ingest import Incoming, Ingest
from app.settings import Settings
from components.registry import default_registry
from runtime.http import make_http_client

TESTS = Path(__file__).parent.parent
FIXTURE_DIRS = (
    Path(__file__).parent / "fixtures",
    TESTS / "server" / "fixtures",
    TESTS / "fixtures",
)

PAGE_MODULES: list[str] = [
    "app.pages.home",
    "app.pages.executions",
    "app.pages.connections",
    "app.pages.instances",
    "app.pages.deploy",
    "app.pages.editor",
    "app.pages.versions",
]
"""Modules whose `@ui.page` functions the `user` fixture registers; add yours here."""

ImportIntegration = Callable[[str | Path], Awaitable[integrations.IntegrationSummary]]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    """A Hub with a running worker pool on a fresh data dir."""
    data = tmp_path / "data"
    db = open_database(data)
    try:
        async with make_http_client() as http:
            hub = Hub(
                settings=Settings(data_dir=data),
                db=db,
                registry=default_registry(),
                http=http,
                box=SecretBox(load_secret_key(data)),
            )
            pool = WorkerPool(hub, poll_interval=0.05)
            await pool.start()
            try:
                yield hub
            finally:
                await pool.stop()
    finally:
        dispose_when_idle(db)  # a page's cancelled service call may still be committing


@pytest.fixture
async def user(user: User, hub: Hub) -> AsyncIterator[User]:
    """NiceGUI's simulated user, with our pages registered over `hub`."""
    nicegui.app.state.hub = hub
    for module in PAGE_MODULES:
        # NiceGUI's reset unregistered every page; a module a test imported at collection is
        # still cached, and importing it again would not register its pages again.
        sys.modules.pop(module, None)
        importlib.import_module(module)
    try:
        yield user
    finally:
        del nicegui.app.state.hub


def fixture_path(name: str | Path) -> Path:
    """`name` itself when it exists, else the file of that name in the fixture folders."""
    path = Path(name)
    if path.exists():
        return path
    for folder in FIXTURE_DIRS:
        if (folder / path).exists():
            return folder / path
    raise FileNotFoundError(f"no integration file {name} in {', '.join(map(str, FIXTURE_DIRS))}")


async def import_yaml(hub: Hub, name: str | Path) -> integrations.IntegrationSummary:
    """Import an integration file through the service (as `POST /api/integrations` does)."""
    path = fixture_path(name)
    return await integrations.import_integration(hub, path.read_text(), source=path.name)


@pytest.fixture
def import_integration(hub: Hub) -> ImportIntegration:
    """`await import_integration("webhooks.yaml")`: see `import_yaml`."""

    async def run(name: str | Path) -> integrations.IntegrationSummary:
        return await import_yaml(hub, name)

    return run


async def send_webhook(hub: Hub, url: str, body: Any, headers: dict[str, str] | None = None) -> str:
    """POST `body` (JSON) to a webhook URL through the ingest path; the new execution's id."""
    raw = json.dumps(body).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield raw

    sent = {"content-type": "application/json", **(headers or {})}
    reply = await Ingest(hub).receive_token(
        url.rsplit("/", 1)[-1], Incoming("POST", sent, {}, chunks())
    )
    assert reply.status == 202, reply
    execution_id: str = reply.body["execution_id"]
    return execution_id


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], seconds: float = 10.0, message: str = ""
) -> None:
    """Poll `predicate` until it is true; fail the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(message or f"condition not met within {seconds} s")
        await asyncio.sleep(0.05)
