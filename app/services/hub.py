"""The process-wide services every route and worker uses, created once at server start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from sqlalchemy import Engine

from app.persistence import SecretBox
from app.persistence.inbox import Claimed, notify_instance_changed
from app.settings import Settings
from components.api import Response, TriggerEvent
from components.registry import Registry
from runtime.observer import ExecutionResult

__all__ = ["Dispatcher", "Hub", "Reservation", "SyncOutcome"]

log = logging.getLogger("flowyard.server")


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What a synchronous webhook waited for: the flow's reply, or its end without one."""

    response: Response | None
    result: ExecutionResult | None
    """Set when the execution ended (the reply falls back to its last output)."""


class Reservation(Protocol):
    """A free worker held for one async webhook until its inbox row is stored."""

    limit: int
    """The flow's concurrency: the row is stored leased only while fewer of its flow run."""

    def hand_over(self, stored: asyncio.Future[tuple[str, bool]], values: dict[str, Any]) -> None:
        """Call once with the store of `values` (`InboxWriter.submit(values, limit=limit)`):
        when it committed the row leased, the row runs at once; otherwise the worker is freed."""
        ...


class Dispatcher(Protocol):
    """Runs executions: claims inbox rows, runs them, records them (`app.services.dispatcher`)."""

    def notify(self) -> None:
        """Wake the workers: an inbox row was committed."""
        ...

    def start_now(self, row: Claimed) -> None:
        """Run `row` in this process at once: it was committed already leased to this process
        (a synchronous webhook, whose reply `wait_for_reply` then gives)."""
        ...

    def try_reserve(self, instance_id: str, flow_id: str) -> Reservation | None:
        """A worker of this process for an async webhook of (instance, flow) about to be
        stored, or None: store it queued and `notify()`."""
        ...

    async def wait_for_reply(self, execution_id: str, seconds: float) -> SyncOutcome | None:
        """Wait for the execution's reply or its end; None after `seconds`."""
        ...

    async def run_lifecycle(
        self, instance_id: str, flow_id: str, event: TriggerEvent
    ) -> ExecutionResult:
        """Run one flow of an instance now (deploy/delete flows), recorded like any execution."""
        ...

    def invalidate(self, instance_id: str | None) -> None:
        """Forget cached flows, config and connections of an instance (it changed); None: of
        every instance."""
        ...


@dataclass
class Hub:
    """Shared services. Routes and services receive it; nothing reaches around it."""

    settings: Settings
    db: Engine
    registry: Registry
    http: httpx.AsyncClient
    box: SecretBox
    dispatcher: Dispatcher | None = None
    route_caches: list[Callable[[str | None], None]] = field(default_factory=list)
    """Forget-an-instance callbacks of the webhook routing caches (an `Ingest` adds its own);
    None: forget every instance."""

    async def instance_changed(self, instance_id: str) -> None:
        """An instance was enabled, disabled, deployed, upgraded, edited or deleted: drop every
        cached view of it, so webhooks and runs see the change at once whichever page or route
        made it, here and (on PostgreSQL, by NOTIFY) in every other process. Awaited, so the
        announcement's connection is back in the pool when the change returns."""
        self.forget_instance(instance_id)
        if self.db.dialect.name == "postgresql":
            await asyncio.to_thread(self._announce, instance_id)

    def _announce(self, instance_id: str) -> None:
        try:
            notify_instance_changed(self.db, instance_id)
        except Exception as exc:  # an outage also drops the listeners, which then forget all
            log.warning(
                "could not tell other processes that instance %s changed: %s", instance_id, exc
            )

    def forget_instance(self, instance_id: str | None) -> None:
        """Drop this process's cached views of an instance (None: of every instance)."""
        for forget in self.route_caches:
            forget(instance_id)
        if self.dispatcher is not None:
            self.dispatcher.invalidate(instance_id)

    def webhook_url(self, token: str) -> str:
        return f"{self.settings.base_url}/webhooks/{token}"

    @property
    def runner(self) -> Dispatcher:
        if self.dispatcher is None:
            raise RuntimeError("the dispatcher has not been started")
        return self.dispatcher
