"""Async webhooks received while the pool has a free worker run at once, handed over in memory.

Each test counts the rows the database claim hands out (`inbox.claim_rows`, used by the claim
loop and by the recorder's transactions): a handed-over row never passes through it, a queued
one always does. They run on SQLite and, with FLOWYARD_TEST_DB=postgresql, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, select

from app.persistence import inbox
from app.persistence.inbox import Claimed
from app.persistence.models import WebhookTokenRow
from app.persistence.repositories import table_of
from app.routes import webhooks
from app.services.dispatcher import WorkerPool
from app.services.hub import Hub
from app.services.inbox_writer import InboxWriter, inbox_values
from tests.server.test_dispatcher_support import (
    ECHO,
    all_finished,
    deploy,
    execution,
    inbox_rows,
    make_hub,
    sleep_step,
    step_records,
    wait_until,
    webhook_flow,
)


@dataclass
class Claims:
    """Execution ids the database claim handed out, in order."""

    ids: list[str] = field(default_factory=list)


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> Claims:
    seen = Claims()
    real = inbox.claim_rows

    def counting(conn: Connection, **options: Any) -> list[Claimed]:
        rows = real(conn, **options)
        seen.ids.extend(row.execution_id for row in rows)
        return rows

    monkeypatch.setattr(inbox, "claim_rows", counting)
    return seen


@dataclass
class Site:
    hub: Hub
    pool: WorkerPool
    client: httpx.AsyncClient
    instance_id: str
    tokens: dict[str, str]

    async def post(self, flow_id: str, body: Any, **headers: str) -> str:
        """Send a webhook; the execution id of its 202 (or of the first, for a duplicate)."""
        answer = await self.client.post(
            f"/webhooks/{self.tokens[flow_id]}", json=body, headers=headers
        )
        assert answer.status_code in (200, 202), answer.text
        execution_id: str = answer.json()["execution_id"]
        return execution_id

    def row(self, execution_id: str) -> Any:
        (found,) = [r for r in inbox_rows(self.hub.db) if r.execution_id == execution_id]
        return found


@asynccontextmanager
async def site(
    tmp_path: Path,
    flows: list[dict[str, Any]],
    *,
    workers: int = 4,
    poll_interval: float = 0.05,
    **settings: Any,
) -> AsyncIterator[Site]:
    """A webhook route in front of a started pool whose instance's flows are loaded."""
    async with make_hub(tmp_path, workers=workers, **settings) as hub:
        instance_id = deploy(hub.db, flows)
        with hub.db.connect() as conn:
            t = table_of(WebhookTokenRow)
            found = conn.execute(select(t.c.flow_id, t.c.token)).all()
        app = FastAPI()
        webhooks.install(app)
        app.state.hub = hub
        pool = WorkerPool(hub, poll_interval=poll_interval)
        hub.dispatcher = pool
        await pool.start()
        listener = pool._listener
        if listener is not None:
            # On PostgreSQL the listener forgets every instance once LISTEN is up (it may have
            # missed announcements); its callback is queued before `listening` is set.
            await wait_until(listener.listening.is_set)
            await asyncio.sleep(0)
        # The first request of an instance is queued while the pool loads its flows; warm up.
        await pool.environments.get(instance_id)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                yield Site(hub, pool, c, instance_id, {r.flow_id: r.token for r in found})
        finally:
            await pool.stop()


async def test_an_async_webhook_runs_at_once_without_being_claimed(
    tmp_path: Path, claims: Claims
) -> None:
    async with site(tmp_path, [webhook_flow("main", [sleep_step(0.5), ECHO])]) as s:
        execution_id = await s.post("main", {"n": 7})
        # Acknowledged already leased to this process and running: no claim took it.
        row = s.row(execution_id)
        assert (row.status, row.lease_until is not None) == ("running", True)
        assert row.id in s.pool.running
        await wait_until(all_finished(s.hub.db))
        row = s.row(execution_id)
        run = execution(s.hub.db, execution_id)
        steps = [r.step_id for r in step_records(s.hub.db, execution_id)]
    assert claims.ids == []
    assert (row.status, row.recovered) == ("done", False)
    assert run is not None and (run.status, run.output, run.recovered) == ("succeeded", 7, False)
    assert steps == ["trigger", "nap", "echo"]


async def test_finished_handed_over_runs_do_not_send_the_claim_loop_to_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_claims: list[float] = []
    real = WorkerPool._claim

    def counting(pool: WorkerPool) -> None:
        loop_claims.append(time.monotonic())
        real(pool)

    monkeypatch.setattr(WorkerPool, "_claim", counting)
    # a long poll interval: only a finished run could wake the loop into another claim
    async with site(tmp_path, [webhook_flow("main", [ECHO])], poll_interval=30) as s:
        # Claims that find nothing: at start, and on PostgreSQL once LISTEN is up (it forgets
        # every instance and wakes the loop for whatever was queued meanwhile: two notifies).
        # Wait until the last one came back short.
        woken = 0 if s.pool._listener is None else 2
        await wait_until(
            lambda: s.pool._notified >= woken and s.pool._drained_until > time.monotonic()
        )
        before = len(loop_claims)
        assert before >= 1
        for n in range(3):
            await s.post("main", {"n": n})
            await wait_until(all_finished(s.hub.db))
            await wait_until(lambda: not s.pool.running)
        await asyncio.sleep(0.1)
        assert len(loop_claims) == before
        s.pool.notify()  # something was queued: the loop claims again at once
        await wait_until(lambda: len(loop_claims) == before + 1)


async def test_with_every_worker_busy_a_webhook_is_queued_and_claimed(
    tmp_path: Path, claims: Claims
) -> None:
    async with site(tmp_path, [webhook_flow("main", [sleep_step(0.6), ECHO])], workers=1) as s:
        first = await s.post("main", {"n": 1})
        second = await s.post("main", {"n": 2})
        assert (s.row(first).status, s.row(second).status) == ("running", "queued")
        await wait_until(all_finished(s.hub.db))
        runs = [execution(s.hub.db, e) for e in (first, second)]
    assert claims.ids == [second]
    assert [(r.status, r.output) for r in runs if r is not None] == [
        ("succeeded", 1),
        ("succeeded", 2),
    ]


async def test_a_flow_at_its_concurrency_limit_queues_even_with_free_workers(
    tmp_path: Path, claims: Claims
) -> None:
    flow = webhook_flow("main", [sleep_step(0.6), ECHO], concurrency=1)
    async with site(tmp_path, [flow], workers=4) as s:
        first = await s.post("main", {"n": 1})
        second = await s.post("main", {"n": 2})
        # the limit is decided in the transaction that stores the row, like a claim decides it
        assert (s.row(first).status, s.row(second).status) == ("running", "queued")
        await wait_until(all_finished(s.hub.db))
        runs = [execution(s.hub.db, e) for e in (first, second)]
    assert claims.ids == [second]
    assert all(r is not None and r.status == "succeeded" for r in runs)
    a, b = runs
    assert a is not None and b is not None and a.finished_at is not None
    assert b.started_at is not None and b.started_at >= a.finished_at  # one at a time


async def test_a_sequential_flow_always_goes_through_the_queue(
    tmp_path: Path, claims: Claims
) -> None:
    flow = webhook_flow("main", [ECHO], sequential=True)
    async with site(tmp_path, [flow]) as s:
        ids = [await s.post("main", {"n": n}) for n in range(3)]
        await wait_until(all_finished(s.hub.db))
        runs = [execution(s.hub.db, e) for e in ids]
    assert sorted(claims.ids) == sorted(ids)  # FIFO order is the claim's to decide
    assert [r.output for r in runs if r is not None] == [0, 1, 2]


async def test_redeliveries_and_dedup_keys_are_refused_as_before(
    tmp_path: Path, claims: Claims
) -> None:
    flows = [
        webhook_flow("main", [sleep_step(0.3), ECHO]),
        webhook_flow("keyed", [ECHO], dedup_key="{{ trigger.body.n }}"),
    ]
    async with site(tmp_path, flows, workers=2) as s:
        first = await s.post("main", {"n": 1}, **{"webhook-id": "msg-1"})
        again = await s.client.post(
            f"/webhooks/{s.tokens['main']}", json={"n": 1}, headers={"webhook-id": "msg-1"}
        )
        assert (again.status_code, again.json()) == (
            200,
            {"execution_id": first, "duplicate": True},
        )
        keyed = await s.post("keyed", {"n": 5})
        twice = await s.client.post(f"/webhooks/{s.tokens['keyed']}", json={"n": 5})
        assert twice.json() == {"execution_id": keyed, "duplicate": True}
        await wait_until(all_finished(s.hub.db))
        await wait_until(lambda: not s.pool.running)
        # the duplicates' reserved workers were freed: both workers can be held again
        held = [s.pool.try_reserve(s.instance_id, "main") for _ in range(3)]
        assert [h is not None for h in held] == [True, True, False]
        for h in held:
            if h is not None:  # give them back, as a failed store would
                failed: asyncio.Future[tuple[str, bool]] = (
                    asyncio.get_running_loop().create_future()
                )
                h.hand_over(failed, {})
                failed.set_exception(RuntimeError("not stored"))
        await asyncio.sleep(0)
        assert s.pool.try_reserve(s.instance_id, "main") is not None
        stored = sorted(r.execution_id for r in inbox_rows(s.hub.db))
    assert claims.ids == []
    assert stored == sorted([first, keyed])


async def test_a_reserved_worker_is_not_offered_twice(tmp_path: Path) -> None:
    async with site(tmp_path, [webhook_flow("main", [ECHO])], workers=1) as s:
        held = s.pool.try_reserve(s.instance_id, "main")
        assert held is not None
        # a second request in the same instant finds no free worker, and is queued
        assert s.pool.try_reserve(s.instance_id, "main") is None
        failed: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()
        held.hand_over(failed, {})
        failed.set_exception(RuntimeError("the commit failed"))
        await asyncio.sleep(0)
        assert s.pool.try_reserve(s.instance_id, "main") is not None


async def test_a_handed_over_row_of_a_crashed_process_is_recovered(
    tmp_path: Path, claims: Claims, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = webhook_flow("main", [sleep_step(1.0), ECHO])
    async with site(tmp_path, [flow], lease_seconds=1.0) as s:
        execution_id = await s.post("main", {"n": 3})
        assert s.row(execution_id).id in s.pool.running
        # A process killed mid-run gives nothing back: its row stays running under its lease.
        with monkeypatch.context() as m:
            m.setattr(inbox, "requeue", lambda *args, **kwargs: None)
            await s.pool.stop(grace=0)
        assert s.row(execution_id).status == "running"
    assert claims.ids == []
    # The next process (SQLite: at start-up; PostgreSQL: once the lease expires) re-runs it.
    async with make_hub(tmp_path, lease_seconds=1.0) as hub:
        again = WorkerPool(hub, poll_interval=0.05)
        await again.start()
        try:
            await wait_until(all_finished(hub.db), seconds=20)
        finally:
            await again.stop()
        (row,) = inbox_rows(hub.db)
        run = execution(hub.db, execution_id)
        steps = [r.step_id for r in step_records(hub.db, execution_id)]
    assert claims.ids == [execution_id]
    assert (row.execution_id, row.status, row.recovered) == (execution_id, "done", True)
    assert run is not None and (run.status, run.recovered) == ("succeeded", True)
    assert steps == ["trigger", "nap", "echo"]


async def test_graceful_stop_hands_back_a_running_handed_over_row(
    tmp_path: Path, claims: Claims
) -> None:
    async with site(tmp_path, [webhook_flow("main", [sleep_step(30), ECHO])]) as s:
        execution_id = await s.post("main", {"n": 1})
        assert s.row(execution_id).id in s.pool.running
        await s.pool.stop(grace=0.05)
        # given back to the queue at once, to re-run as recovered here or on another worker
        row = s.row(execution_id)
        assert (row.status, row.lease_until, row.recovered) == ("queued", None, True)
    assert claims.ids == []


async def test_a_row_stored_while_the_pool_stops_is_handed_back_unstarted(tmp_path: Path) -> None:
    async with site(tmp_path, [webhook_flow("main", [ECHO])]) as s:
        values = inbox_values(
            token="t",
            instance_id=s.instance_id,
            flow_id="main",
            method="POST",
            headers={"content-type": "application/json"},
            query={},
            body=b'{"n": 1}',
            delivery=None,
            dedup=None,
        )
        held = s.pool.try_reserve(s.instance_id, "main")
        assert held is not None
        values["status"], values["lease_until"] = "running", values["received_at"] + 60
        stored = asyncio.ensure_future(InboxWriter(s.hub.db).submit(values, limit=held.limit))
        held.hand_over(stored, values)
        await s.pool.stop()  # begins while the row is being committed leased to the pool
        assert stored.done() and stored.result()[1] is False
        assert not s.pool.running
        row = s.row(values["execution_id"])
        assert (row.status, row.lease_until, row.recovered) == ("queued", None, False)
