"""Schedule triggers: each active, enabled instance's schedule-kind flows fire at their times.

A trigger of kind `schedule` (the built-in `schedule.cron`, or a custom one) says its fire times
through `Trigger.next_fires`; the body's `cron` is its `cron` input, when it has one.

A fire is an inbox row (source `schedule`, JSON body `{"scheduled_at", "cron"}`, received at the
fire time) with delivery id `schedule:<fire time, UTC ISO>`. The inbox's unique (instance, flow,
delivery id) constraint makes firing idempotent: a restart that looks back over its catch-up
window, or a second process ticking the same database, never fires one time twice.

`ScheduleTicker.tick()` fires everything due in (previous tick, now]; the first tick looks back
`catchup` seconds (never before the instance was created), so a fire missed by a short restart
still happens once. The clock is injected, so tests fire a day of schedules without sleeping.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.persistence.db import WRITE_OPTION
from app.persistence.inbox import insert_ignoring_duplicates
from app.persistence.models import InstanceRow
from app.persistence.repositories import table_of
from app.services.environment import EnvironmentCache
from app.services.hub import Hub
from app.services.threads import to_thread_shielded
from components.registry import Registry
from runtime.ids import new_execution_id
from runtime.model import Flow

__all__ = ["ScheduleTicker", "due_fires"]

log = logging.getLogger("flowyard.schedules")

_MAX_PER_TICK = 100
"""Fire times of one flow handled per tick; a long outage does not replay its whole backlog."""


def due_fires(registry: Registry, flow: Flow, after: float, until: float) -> list[datetime]:
    """Fire times in (after, until] of a flow whose trigger is schedule-kind, as the trigger says
    (`Trigger.next_fires`); [] for other flows. Raises `ValueError` for invalid inputs."""
    if until <= after:
        return []
    try:
        cls = registry.trigger(flow.trigger.action)
    except LookupError:
        return []
    if getattr(cls, "kind", "") != "schedule":
        return []
    inputs = cls.Inputs.model_validate(flow.trigger.inputs)
    start = datetime.fromtimestamp(after, UTC)
    times = cls().next_fires(inputs, start, _MAX_PER_TICK)
    return [t for t in times if t.timestamp() <= until]


class ScheduleTicker:
    """Fires due schedules; `tick()` is called every few seconds by the worker pool."""

    def __init__(
        self,
        hub: Hub,
        environments: EnvironmentCache,
        *,
        clock: Callable[[], float] = time.time,
        catchup: float = 300.0,
        on_fire: Callable[[], None] | None = None,
    ) -> None:
        self._hub = hub
        self._environments = environments
        self._clock = clock
        self._catchup = catchup
        self._on_fire = on_fire
        self._last: float | None = None

    async def tick(self) -> int:
        """Fire everything due since the last tick; return how many new inbox rows were made.

        Cancelled (the pool stopping), it ends once the fire's transaction has: nothing fires
        after the pool's `stop()`, and no connection outlives the engine."""
        fired = await to_thread_shielded(self.tick_blocking)
        if fired and self._on_fire is not None:
            self._on_fire()
        return fired

    def tick_blocking(self) -> int:
        now = self._clock()
        since = self._last if self._last is not None else now - self._catchup
        if now <= since:
            return 0
        fired = self._fire(since, now)
        self._last = now
        return fired

    def _fire(self, since: float, now: float) -> int:
        instances = table_of(InstanceRow)
        with self._hub.db.connect() as conn:
            active = conn.execute(
                select(instances.c.id, instances.c.created_at).where(
                    instances.c.status == "active", instances.c.enabled.is_(True)
                )
            ).all()
        rows: list[dict[str, Any]] = []
        for instance_id, created_at in active:
            try:
                env = self._environments.get_blocking(instance_id)
            except Exception:
                log.exception("cannot load instance %s for its schedules", instance_id)
                continue
            for flow in env.flows.values():
                try:
                    times = due_fires(self._hub.registry, flow, max(since, created_at), now)
                except ValueError:
                    log.exception("flow %s of instance %s has a bad schedule", flow.id, env.name)
                    continue
                rows.extend(
                    _row(instance_id, flow, env.tokens.get(flow.id, ""), at) for at in times
                )
        if not rows:
            return 0
        fired = 0
        with self._hub.db.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            for row in rows:
                fired += insert_ignoring_duplicates(conn, row)
        return fired


def _row(instance_id: str, flow: Flow, token: str, at: datetime) -> dict[str, Any]:
    body = {"scheduled_at": at.isoformat(), "cron": flow.trigger.inputs.get("cron")}
    return {
        "token": token,
        "instance_id": instance_id,
        "flow_id": flow.id,
        "execution_id": new_execution_id(),
        "method": "POST",
        "headers": {"content-type": "application/json"},
        "query": {},
        "body": json.dumps(body).encode(),
        "delivery_id": f"schedule:{at.astimezone(UTC).isoformat()}",
        "received_at": at.timestamp(),
        "status": "queued",
        "source": "schedule",
    }
