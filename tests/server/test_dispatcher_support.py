"""Helpers for the in-process worker tests: a hub on a temp data dir and instances set up by hand.

No tests here; the worker, retention and schedule tests import these.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import col, select

from app.persistence.crypto import SecretBox
from app.persistence.db import dispose_when_idle, open_database, session_scope
from app.persistence.models import (
    ExecutionRow,
    InboxRow,
    InstanceRow,
    StepRecordRow,
    WebhookTokenRow,
)
from app.persistence.repositories import (
    create_instance,
    publish_version,
    save_integration,
    set_config_values,
    table_of,
)
from app.services.dispatcher import WorkerPool
from app.services.hub import Hub
from app.settings import Settings
from components.registry import default_registry
from runtime.http import make_http_client
from runtime.model import Integration

GOLDEN_COMPONENTS = Path(__file__).parent.parent / "golden" / "components"
KEY = b"2QmZbTg6eyeHFJzqNTSJ7fZQ0xGkKqH5n1d9_8v4b8s="


@asynccontextmanager
async def make_hub(tmp_path: Path, **settings: Any) -> AsyncIterator[Hub]:
    data = tmp_path / "data"
    engine = open_database(data)
    try:
        async with make_http_client() as http:
            yield Hub(
                settings=Settings(data_dir=data, **settings),
                db=engine,
                registry=default_registry(GOLDEN_COMPONENTS),
                http=http,
                box=SecretBox(KEY),
            )
    finally:
        dispose_when_idle(engine)  # a cancelled claim or fire may still be committing


ECHO = {"id": "echo", "action": "testkit.echo", "inputs": {"value": "{{ trigger.body.n }}"}}
"""A step that outputs the webhook body's `n`."""


def sleep_step(seconds: float) -> dict[str, Any]:
    """A step `nap` that sleeps `seconds`."""
    return {"id": "nap", "action": "testkit.sleep", "inputs": {"seconds": seconds}}


def webhook_flow(flow_id: str, steps: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """A flow: webhook trigger, then `steps` in a chain."""
    edges, previous = [], "trigger"
    for step in steps:
        edges.append({"from": previous, "to": step["id"]})
        previous = step["id"]
    return {
        "id": flow_id,
        "trigger": {"id": "trigger", "action": "webhook.webhook"},
        "steps": steps,
        "edges": edges,
        "settings": settings,
    }


def deploy(
    engine: Engine,
    flows: list[dict[str, Any]],
    *,
    name: str = "demo",
    status: str = "active",
    enabled: bool = True,
    config: list[dict[str, Any]] | None = None,
    values: dict[str, Any] | None = None,
    created_at: float | None = None,
    **document: Any,
) -> str:
    """Store an integration with `flows`, publish it and make an instance of it by hand.

    `document` holds further top-level fields of the integration (e.g. `errors`)."""
    integration = Integration.model_validate(
        {"name": f"Integration {name}", "flows": flows, "config": config or [], **document}
    )
    with session_scope(engine) as session:
        save_integration(session, integration)
        version = publish_version(session, integration.name)
        instance_id = create_instance(session, name, integration.name, version)
        row = session.get(InstanceRow, instance_id)
        assert row is not None
        row.status, row.enabled = status, enabled
        if created_at is not None:
            row.created_at = created_at
        if values:
            set_config_values(session, instance_id, values)
        for flow in flows:
            session.add(
                WebhookTokenRow(
                    token=uuid.uuid4().hex,
                    instance_id=instance_id,
                    flow_id=flow["id"],
                    created_at=time.time(),
                )
            )
    return instance_id


def enqueue(
    engine: Engine,
    instance_id: str,
    flow_id: str,
    body: Any,
    *,
    received_at: float | None = None,
    raw: bytes | None = None,
    **columns: Any,
) -> str:
    """Insert a queued inbox row the way webhook ingest does; return its execution id.

    The stored body is `body` as JSON, or the `raw` bytes; `columns` override the rest."""
    execution_id = uuid.uuid4().hex
    values = {
        "token": "t",
        "instance_id": instance_id,
        "flow_id": flow_id,
        "execution_id": execution_id,
        "headers": {"content-type": "application/json"},
        "query": {},
        "body": json.dumps(body).encode() if raw is None else raw,
        "received_at": time.time() if received_at is None else received_at,
        **columns,
    }
    with session_scope(engine) as session:
        session.connection().execute(insert(table_of(InboxRow)).values(**values))
    return execution_id


def inbox_rows(engine: Engine) -> list[InboxRow]:
    with session_scope(engine, write=False) as session:
        return list(session.exec(select(InboxRow).order_by(col(InboxRow.id))))


def execution(engine: Engine, execution_id: str) -> ExecutionRow | None:
    with session_scope(engine, write=False) as session:
        return session.get(ExecutionRow, execution_id)


def executions(engine: Engine) -> list[ExecutionRow]:
    with session_scope(engine, write=False) as session:
        query = select(ExecutionRow).order_by(col(ExecutionRow.started_at))
        return list(session.exec(query))


def step_records(engine: Engine, execution_id: str) -> list[StepRecordRow]:
    with session_scope(engine, write=False) as session:
        query = (
            select(StepRecordRow)
            .where(col(StepRecordRow.execution_id) == execution_id)
            .order_by(col(StepRecordRow.id))
        )
        return list(session.exec(query))


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def all_finished(engine: Engine) -> Callable[[], bool]:
    return lambda: all(r.status in ("done", "failed", "dead") for r in inbox_rows(engine))


async def run_all(hub: Hub, **options: Any) -> None:
    """Run a worker pool (`options` for `WorkerPool`) until every inbox row is finished."""
    pool = WorkerPool(hub, poll_interval=0.05, **options)
    await pool.start()
    try:
        await wait_until(all_finished(hub.db))
    finally:
        await pool.stop()
