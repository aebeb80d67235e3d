"""`flowyard worker`: a process that only claims and runs executions from a shared database.

Any number of workers, on any hosts, and any number of `flowyard serve` processes share one
PostgreSQL database. A worker runs the same `WorkerPool` as `serve` (claims under a lease, renews
it, records its executions itself, fires schedules, prunes) with no UI and no API; `--health-port`
adds `GET /health` for a process supervisor. SIGTERM or SIGINT stops it gracefully: it claims
nothing new, lets running executions finish for `grace` seconds, then hands back what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from aiohttp import web

from app.persistence import SecretBox, load_secret_key
from app.persistence.db import DatabaseError, dispose_when_idle, open_database_checked, shared
from app.services.apis import registry_for
from app.services.dispatcher import WorkerPool
from app.services.hub import Hub
from app.settings import Settings
from runtime.http import make_http_client

__all__ = ["WorkerError", "run_worker"]

log = logging.getLogger("flowyard.worker")


class WorkerError(RuntimeError):
    """The worker cannot start; the message says why in one line."""


async def run_worker(
    settings: Settings,
    *,
    health_port: int | None = None,
    grace: float = 30.0,
    stop: asyncio.Event | None = None,
    parent: int | None = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT (or until `stop` is set, or process `parent` is gone:
    local workers end with the server that started them); see the module docstring."""
    try:
        db = open_database_checked(settings.data_dir)
    except DatabaseError as exc:
        raise WorkerError(str(exc)) from None
    try:
        if not shared(db):
            raise WorkerError(
                "flowyard worker needs a database several processes can share: set "
                "FLOWYARD_DATABASE_URL to a PostgreSQL URL (a SQLite file belongs to the one "
                "`flowyard serve` that runs its executions)."
            )
        try:
            box = SecretBox(load_secret_key(settings.data_dir, create=False))
        except Exception as exc:
            raise WorkerError(str(exc)) from None
        registry = registry_for(settings)
        for problem in registry.problems:
            log.warning("component %s not loaded: %s", problem.source, problem.message)
        async with make_http_client() as http:
            hub = Hub(settings=settings, db=db, registry=registry, http=http, box=box)
            pool = WorkerPool(hub)
            hub.dispatcher = pool
            stop = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            health = await _serve_health(pool, health_port) if health_port is not None else None
            orphaned = (
                asyncio.create_task(_until_orphaned(parent, stop)) if parent is not None else None
            )
            await pool.start()
            try:
                await stop.wait()
            finally:
                log.info("stopping: finishing or handing back %d executions", len(pool.running))
                await pool.stop(grace)
                if health is not None:
                    await health.cleanup()
                if orphaned is not None:
                    orphaned.cancel()
    finally:
        dispose_when_idle(db)


async def _until_orphaned(parent: int, stop: asyncio.Event) -> None:
    # Polled: no event tells a process that its parent died (short of Linux's PR_SET_PDEATHSIG).
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    log.warning("the server that started this worker is gone: stopping")
    stop.set()


async def _serve_health(pool: WorkerPool, port: int) -> web.AppRunner:
    """`GET /health` on 127.0.0.1:`port`: `{"status": "ok", "role": "worker", "running": n}`."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": "worker", "running": len(pool.running)})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
