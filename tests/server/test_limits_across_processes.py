"""Per-flow limits hold across processes sharing one PostgreSQL: two worker pools, each with
its own engine (as two processes or hosts have), claim from the same inbox."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from app.persistence.db import open_database
from app.services.dispatcher import WorkerPool
from app.services.hub import Hub
from tests.server.test_dispatcher_support import (
    all_finished,
    deploy,
    enqueue,
    execution,
    make_hub,
    wait_until,
    webhook_flow,
)

pytestmark = pytest.mark.postgres_only

NAP = {"id": "nap", "action": "testkit.sleep", "inputs": {"seconds": 0.1}}


@asynccontextmanager
async def two_pools(tmp_path: Path) -> AsyncIterator[tuple[Hub, list[WorkerPool]]]:
    async with AsyncExitStack() as stack:
        hubs = [await stack.enter_async_context(make_hub(tmp_path / f"p{n}")) for n in (1, 2)]
        pools = [WorkerPool(hub, poll_interval=0.05) for hub in hubs]
        yield hubs[0], pools


async def run(pools: list[WorkerPool], hub: Hub) -> None:
    for pool in pools:
        await pool.start()
    try:
        await wait_until(all_finished(hub.db), seconds=30)
    finally:
        for pool in pools:
            await pool.stop()


def spans(hub: Hub, ids: list[str]) -> list[tuple[float, float]]:
    found = []
    for execution_id in ids:
        row = execution(hub.db, execution_id)
        assert row is not None and row.status == "succeeded"
        assert row.started_at is not None and row.finished_at is not None
        found.append((row.started_at, row.finished_at))
    return found


async def test_a_sequential_flow_runs_one_at_a_time_in_order_across_processes(
    tmp_path: Path,
) -> None:
    async with two_pools(tmp_path) as (hub, pools):
        instance_id = deploy(hub.db, [webhook_flow("main", [NAP], sequential=True)])
        base = time.time() - 100
        ids = [
            enqueue(hub.db, instance_id, "main", {"n": n}, received_at=base + n) for n in range(8)
        ]
        await run(pools, hub)
        ran = spans(hub, ids)
    assert ran == sorted(ran)  # in arrival order
    for (_, end), (start, _) in itertools.pairwise(ran):
        assert start >= end  # never two at once, whichever process ran them


async def test_a_concurrency_limit_counts_every_process(tmp_path: Path) -> None:
    async with two_pools(tmp_path) as (hub, pools):
        instance_id = deploy(hub.db, [webhook_flow("main", [NAP], concurrency=2)])
        ids = [enqueue(hub.db, instance_id, "main", {"n": n}) for n in range(12)]
        await run(pools, hub)
        ran = spans(hub, ids)
    events = sorted([(start, 1) for start, _ in ran] + [(end, -1) for _, end in ran])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 2


def test_both_pools_really_share_one_database(tmp_path: Path) -> None:
    first, second = open_database(tmp_path / "a"), open_database(tmp_path / "b")
    try:
        assert first.dialect.name == second.dialect.name == "postgresql"
        assert first.url == second.url
    finally:
        first.dispose()
        second.dispose()
