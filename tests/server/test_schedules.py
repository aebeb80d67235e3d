"""Schedule triggers fire per active instance, once per fire time, across restarts."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from app.services.dispatcher import WorkerPool
from app.services.environment import EnvironmentCache
from app.services.schedules import ScheduleTicker
from components.api import Component, Inputs, Trigger
from tests.server.test_dispatcher_support import (
    all_finished,
    deploy,
    execution,
    inbox_rows,
    make_hub,
    wait_until,
)

T0 = datetime(2025, 1, 6, 9, 1, tzinfo=UTC).timestamp()


def scheduled_flow(cron: str = "*/5 * * * *") -> dict[str, Any]:
    return {
        "id": "tick",
        "trigger": {"id": "trigger", "action": "schedule.cron", "inputs": {"cron": cron}},
        "steps": [
            {
                "id": "echo",
                "action": "testkit.echo",
                "inputs": {"value": "{{ trigger.body.scheduled_at }}"},
            }
        ],
        "edges": [{"from": "trigger", "to": "echo"}],
    }


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_fires_once_per_fire_time_and_a_restart_does_not_double_fire(
    tmp_path: Path,
) -> None:
    async with make_hub(tmp_path) as hub:
        active = deploy(hub.db, [scheduled_flow()], created_at=T0 - 3600)
        deploy(hub.db, [scheduled_flow()], name="off", enabled=False, created_at=T0 - 3600)
        deploy(hub.db, [scheduled_flow()], name="new", status="deploying", created_at=T0 - 3600)
        clock = Clock(T0)
        ticker = ScheduleTicker(hub, EnvironmentCache(hub), clock=clock, catchup=300)
        assert await ticker.tick() == 1  # 09:00, inside the catch-up window
        assert await ticker.tick() == 0
        clock.now = T0 + 10 * 60  # 09:11
        assert await ticker.tick() == 2  # 09:05, 09:10
        # A restart (or a second process) looks back over 09:06-09:11 again: nothing new.
        restarted = ScheduleTicker(hub, EnvironmentCache(hub), clock=clock, catchup=300)
        assert await restarted.tick() == 0
        rows = inbox_rows(hub.db)
        assert {r.instance_id for r in rows} == {active}
        assert [r.delivery_id for r in rows] == [
            "schedule:2025-01-06T09:00:00+00:00",
            "schedule:2025-01-06T09:05:00+00:00",
            "schedule:2025-01-06T09:10:00+00:00",
        ]
        assert {r.source for r in rows} == {"schedule"}
        assert json.loads(rows[0].body) == {
            "scheduled_at": "2025-01-06T09:00:00+00:00",
            "cron": "*/5 * * * *",
        }

        pool = WorkerPool(hub, poll_interval=0.05, schedule_interval=3600)
        await pool.start()
        try:
            await wait_until(all_finished(hub.db))
        finally:
            await pool.stop()
        first = execution(hub.db, rows[0].execution_id)
        assert first is not None
        assert (first.status, first.output) == ("succeeded", "2025-01-06T09:00:00+00:00")


async def test_nothing_fires_before_the_instance_existed(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        deploy(hub.db, [scheduled_flow("0 * * * *")], created_at=T0 - 30)  # after 09:00
        ticker = ScheduleTicker(hub, EnvironmentCache(hub), clock=Clock(T0), catchup=3600)
        assert await ticker.tick() == 0


async def test_time_zone_is_followed(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        flow = scheduled_flow("0 10 * * *")
        flow["trigger"]["inputs"]["timezone"] = "Europe/Berlin"  # 10:00 CET is 09:00 UTC
        deploy(hub.db, [flow], created_at=T0 - 86_400)
        ticker = ScheduleTicker(hub, EnvironmentCache(hub), clock=Clock(T0), catchup=300)
        assert await ticker.tick() == 1
        (row,) = inbox_rows(hub.db)
        assert row.delivery_id == "schedule:2025-01-06T09:00:00+00:00"
        assert json.loads(row.body)["scheduled_at"] == "2025-01-06T10:00:00+01:00"


async def test_a_cancelled_tick_ends_after_its_fire_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pool's stop() cancels the ticker; a fire still committing in its thread must be over
    # when the cancelled tick ends, or it would fire after stop() and use a disposed engine.
    async with make_hub(tmp_path) as hub:
        deploy(hub.db, [scheduled_flow()], created_at=T0 - 3600)
        ticker = ScheduleTicker(hub, EnvironmentCache(hub), clock=Clock(T0), catchup=300)
        firing, release = threading.Event(), threading.Event()
        fire = ticker._fire

        def slow_fire(since: float, now: float) -> int:
            firing.set()
            release.wait(10)
            return fire(since, now)

        monkeypatch.setattr(ticker, "_fire", slow_fire)
        tick = asyncio.create_task(ticker.tick())
        await asyncio.to_thread(firing.wait, 10)
        tick.cancel()
        await asyncio.sleep(0.05)
        assert not tick.done()  # waiting for the fire, not gone while it runs
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await tick
        assert [r.delivery_id for r in inbox_rows(hub.db)] == ["schedule:2025-01-06T09:00:00+00:00"]


class PulseInputs(Inputs):
    minute: int = Field(ge=0, le=59, title="Minute", description="Minute past each hour.")


class Pulse(Trigger[PulseInputs]):
    """A custom schedule-kind trigger: the ticker asks it, not cron, when it fires."""

    key = "hourly"
    title = "Hourly pulse"
    kind = "schedule"
    Inputs = PulseInputs

    def next_fires(self, inputs: PulseInputs, after: datetime, count: int) -> list[datetime]:
        hour = after.replace(minute=inputs.minute, second=0, microsecond=0)
        first = hour if hour > after else hour + timedelta(hours=1)
        return [first + timedelta(hours=i) for i in range(count)]


async def test_a_custom_schedule_trigger_says_when_it_fires(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        hub.registry.add(Component(key="pulse", title="Pulse", triggers=[Pulse]), source="test")
        flow = scheduled_flow()
        flow["trigger"] = {"id": "trigger", "action": "pulse.hourly", "inputs": {"minute": 7}}
        deploy(hub.db, [flow], created_at=T0 - 86_400)
        clock = Clock(T0)  # 09:01
        ticker = ScheduleTicker(hub, EnvironmentCache(hub), clock=clock, catchup=3600)
        assert await ticker.tick() == 1  # 08:07, inside the hour looked back over
        clock.now = T0 + 2 * 3600  # 11:01
        assert await ticker.tick() == 2  # 09:07, 10:07
        assert [r.delivery_id for r in inbox_rows(hub.db)] == [
            "schedule:2025-01-06T08:07:00+00:00",
            "schedule:2025-01-06T09:07:00+00:00",
            "schedule:2025-01-06T10:07:00+00:00",
        ]
