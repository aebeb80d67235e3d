"""Webhook ack rate of `/webhooks/{token}` beside a bare starlette + sqlite3 app, in the same run.

    .venv/bin/python -m bench.ingest [--requests 3000] [--concurrency 64]

Each server runs in its own process under uvicorn on 127.0.0.1 with a fresh data directory; an
aiohttp client in this process posts small JSON bodies at a fixed concurrency and counts acks/s:

- baseline: starlette, one `INSERT` + `COMMIT` per request on one sqlite3 connection (WAL,
  synchronous=NORMAL, like ours), straight on the event loop;
- ours, group commit: the real webhook route (token lookup, checks, parse, core-SQL insert
  committed by `InboxWriter` before the 202), with a no-op dispatcher;
- ours, `asyncio.to_thread` per request: the same with one transaction per request.

Target (issue 3): ours ≥ 40% of the baseline. Ratios, not verdicts: timings never gate a test.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

BODY = b'{"event": "account.updated", "id": "evt_01", "data": {"plan": "pro", "seats": 25}}'
TOKEN = "bench-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- servers (run in child processes) ------------------------------------------------------------


def _serve_baseline(port: int, data_dir: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    conn = sqlite3.connect(Path(data_dir) / "bare.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE inbox (id INTEGER PRIMARY KEY, token TEXT, body BLOB, received_at REAL)"
    )
    counter = 0

    async def receive(request: Request) -> JSONResponse:
        nonlocal counter
        body = await request.body()
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO inbox (token, body, received_at) VALUES (?, ?, ?)",
            (request.path_params["token"], body, time.time()),
        )
        conn.execute("COMMIT")
        counter += 1
        return JSONResponse({"execution_id": str(counter)}, status_code=202)

    app = Starlette(routes=[Route("/webhooks/{token}", receive, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class _NoopDispatcher:
    def notify(self) -> None:
        pass

    async def wait_for_reply(self, execution_id: str, seconds: float) -> Any:
        return None

    async def run_lifecycle(self, instance_id: str, flow_id: str, event: Any) -> Any:
        raise RuntimeError("not used by the benchmark")

    def invalidate(self, instance_id: str) -> None:
        pass


def _serve_ours(port: int, data_dir: str, group_commit: bool) -> None:
    import uvicorn
    from fastapi import FastAPI
    from sqlalchemy import insert, update

    from app.persistence import SecretBox, load_secret_key, open_database, session_scope
    from app.persistence.models import InstanceRow, WebhookTokenRow
    from app.persistence.repositories import create_instance, save_integration, table_of
    from app.routes import webhooks
    from app.services.hub import Hub
    from app.services.ingest import Ingest
    from app.settings import Settings
    from components.registry import default_registry
    from runtime.http import make_http_client
    from runtime.model import Integration

    directory = Path(data_dir)
    db = open_database(directory)
    integration = Integration.model_validate(
        {
            "name": "bench",
            "flows": [{"id": "hook", "trigger": {"id": "t", "action": "webhook.webhook"}}],
        }
    )
    with session_scope(db) as session:
        version = save_integration(session, integration)
        instance_id = create_instance(session, "bench", "bench", version)
    with db.begin() as conn:
        instances = table_of(InstanceRow)
        conn.execute(update(instances).where(instances.c.id == instance_id).values(status="active"))
        conn.execute(
            insert(table_of(WebhookTokenRow)).values(
                token=TOKEN, instance_id=instance_id, flow_id="hook", created_at=time.time()
            )
        )
    app = FastAPI()
    app.include_router(webhooks.router)
    hub = Hub(
        settings=Settings(data_dir=directory, port=port),
        db=db,
        registry=default_registry(),
        http=make_http_client(),
        box=SecretBox(load_secret_key(directory)),
        dispatcher=_NoopDispatcher(),
    )
    app.state.hub = hub
    app.state.ingest = Ingest(hub, group_commit=group_commit)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- load ----------------------------------------------------------------------------------------


async def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.post(url, data=BODY) as response:
                    if response.status in (200, 202):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def _load(url: str, requests: int, concurrency: int) -> tuple[float, int]:
    """Acks per second and the number of non-202 answers."""
    headers = {"Content-Type": "application/json"}
    remaining = requests
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, failures


def _measure(target: Any, args: tuple[Any, ...], requests: int, concurrency: int) -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        process = multiprocessing.get_context("spawn").Process(
            target=target, args=(port, data_dir, *args), daemon=True
        )
        process.start()
        try:
            url = f"http://127.0.0.1:{port}/webhooks/{TOKEN}"
            asyncio.run(_wait_ready(url))
            asyncio.run(_load(url, min(500, requests), concurrency))  # warm-up
            best = 0.0
            for _ in range(3):
                rate, failures = asyncio.run(_load(url, requests, concurrency))
                if failures:
                    raise RuntimeError(f"{failures} requests were not acknowledged with 202")
                best = max(best, rate)
            return best
        finally:
            process.terminate()
            process.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    options = parser.parse_args()
    n, c = options.requests, options.concurrency
    print(f"webhook ack rate: {n} POSTs x3 (best), concurrency {c}, uvicorn on 127.0.0.1")
    baseline = _measure(_serve_baseline, (), n, c)
    print(f"  baseline starlette+sqlite3, commit per request : {baseline:8.0f} acks/s  (1.00)")
    for label, group in (("group commit", True), ("to_thread per request", False)):
        rate = _measure(_serve_ours, (group,), n, c)
        print(f"  flowyard /webhooks, {label:<27}: {rate:8.0f} acks/s  ({rate / baseline:.2f})")
    print("  target: flowyard ack rate >= 0.40 of the baseline")

    _end_to_end(options, baseline)

if __name__ == "__main__":
    main()
