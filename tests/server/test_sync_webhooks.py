"""Synchronous webhooks run in the process that received them, at once, beside the workers."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.persistence.models import WebhookTokenRow
from app.persistence.repositories import table_of
from app.routes import webhooks
from app.services.dispatcher import WorkerPool
from tests.server.test_dispatcher_support import (
    all_finished,
    deploy,
    enqueue,
    execution,
    inbox_rows,
    make_hub,
    wait_until,
    webhook_flow,
)

NAP = {"id": "nap", "action": "testkit.sleep", "inputs": {"seconds": 0.3}}
ANSWER = {
    "id": "answer",
    "action": "respond.respond",
    "inputs": {"status": 200, "body": "{{ 'hello ' & trigger.body.name }}"},
}


async def test_a_sync_webhook_is_answered_at_once_behind_a_backlog(tmp_path: Path) -> None:
    # Two workers, both busy with a backlog of slow executions: a synchronous request used to
    # queue behind all of them (its row was claimed in arrival order like any other).
    async with make_hub(tmp_path, workers=2) as hub:
        sync = webhook_flow("sync", [ANSWER])
        sync["trigger"]["inputs"] = {"sync": True, "sync_timeout": 10}
        instance_id = deploy(hub.db, [webhook_flow("slow", [NAP]), sync])
        backlog = [enqueue(hub.db, instance_id, "slow", {"n": n}) for n in range(20)]
        with hub.db.connect() as conn:
            tokens = table_of(WebhookTokenRow)
            token = conn.execute(
                select(tokens.c.token).where(tokens.c.flow_id == "sync")
            ).scalar_one()
        app = FastAPI()
        webhooks.install(app)
        app.state.hub = hub
        pool = WorkerPool(hub, poll_interval=0.05)
        hub.dispatcher = pool
        await pool.start()
        try:
            await wait_until(lambda: len(pool.running) == 2)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                answer = await c.post(f"/webhooks/{token}", json={"name": "ada"})
            assert (answer.status_code, answer.text) == (200, "hello ada")
            # the backlog is still waiting: the sync request did not queue behind it
            assert sum(r.status == "queued" for r in inbox_rows(hub.db)) >= 15
            await wait_until(all_finished(hub.db), seconds=30)
        finally:
            await pool.stop()
        runs = [execution(hub.db, e) for e in backlog]
        assert {run.status for run in runs if run is not None} == {"succeeded"}
        (sync_row,) = [r for r in inbox_rows(hub.db) if r.flow_id == "sync"]
        assert sync_row.status == "done"
        run = execution(hub.db, sync_row.execution_id)
        assert run is not None and run.status == "succeeded"
