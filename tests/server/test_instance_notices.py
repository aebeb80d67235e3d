"""A change to an instance reaches every process sharing one PostgreSQL: the process that made it
announces it (NOTIFY flowyard_instances), and every other worker pool drops what it cached, so an
upgraded instance runs its new version and a rotated key is used everywhere, without a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from app.services import instances
from app.services.dispatcher import WorkerPool
from app.services.hub import Hub
from tests.server.test_dispatcher_support import deploy, make_hub, wait_until, webhook_flow

pytestmark = pytest.mark.postgres_only

LOG = {"id": "say", "action": "log.message", "inputs": {"message": "hi"}}


@asynccontextmanager
async def two_processes(tmp_path: Path) -> AsyncIterator[tuple[list[Hub], list[WorkerPool]]]:
    """Two hubs with their own engines and started pools (as two hosts have), one database."""
    async with AsyncExitStack() as stack:
        hubs = [await stack.enter_async_context(make_hub(tmp_path / f"p{n}")) for n in (1, 2)]
        pools = [WorkerPool(hub, poll_interval=0.05) for hub in hubs]
        for pool in pools:
            await pool.start()
            stack.push_async_callback(pool.stop)
        for pool in pools:
            listener = pool._listener
            assert listener is not None
            await wait_until(listener.listening.is_set, seconds=10)
        yield hubs, pools


async def test_a_change_made_in_one_process_is_forgotten_by_the_others(tmp_path: Path) -> None:
    async with two_processes(tmp_path) as (hubs, pools):
        instance_id = deploy(hubs[0].db, [webhook_flow("main", [LOG])])
        first = await pools[1].environments.get(instance_id)
        assert first.enabled
        assert pools[1].environments.cached(instance_id) is first

        await instances.set_enabled(hubs[0], instance_id, False)

        await wait_until(lambda: pools[1].environments.cached(instance_id) is None, seconds=10)
        again = await pools[1].environments.get(instance_id)
        assert not again.enabled  # the other process reads the change, not its stale copy


async def test_a_listener_that_lost_its_connection_forgets_every_instance(
    tmp_path: Path,
) -> None:
    """Announcements made while a listener is away are lost: when it listens again it drops
    everything it cached (what a PostgreSQL restart makes every process do)."""
    async with two_processes(tmp_path) as (hubs, pools):
        ids = [deploy(hubs[0].db, [webhook_flow("main", [LOG])], name=n) for n in ("a", "b")]
        for instance_id in ids:
            await pools[1].environments.get(instance_id)
        with hubs[0].db.begin() as conn:  # cut every LISTEN connection, as a restart would
            cut = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            ).all()
        assert cut
        await wait_until(
            lambda: all(pools[1].environments.cached(i) is None for i in ids), seconds=15
        )
