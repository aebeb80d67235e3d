"""Rows stored already leased to their receiving process keep their flow's concurrency limit.

`inbox.lease_within_limits` decides it in the transaction that inserts the rows, counting the
rows running under a live lease as a claim does; a row over its limit is stored queued. Runs on
SQLite and, with FLOWYARD_TEST_DB=postgresql, on PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine, insert, select, update

from app.persistence import inbox
from app.persistence.db import session_scope
from app.persistence.models import InboxRow, InstanceRow
from app.persistence.repositories import (
    create_instance,
    publish_version,
    save_integration,
    table_of,
)
from runtime.model import Integration

_inbox = table_of(InboxRow)


def active_instance(engine: Engine) -> str:
    """An active instance of an empty integration 'Demo'."""
    with session_scope(engine) as session:
        save_integration(session, Integration(name="Demo"))
        instance = create_instance(session, "demo", "Demo", publish_version(session, "Demo"))
    with engine.begin() as conn:
        instances = table_of(InstanceRow)
        conn.execute(update(instances).where(instances.c.id == instance).values(status="active"))
    return instance


def _row(instance: str, flow: str, **columns: Any) -> dict[str, Any]:
    return {
        "token": "t",
        "instance_id": instance,
        "flow_id": flow,
        "execution_id": uuid.uuid4().hex,
        "method": "POST",
        "headers": {},
        "query": {},
        "body": b"{}",
        "received_at": time.time(),
        "status": "queued",
        "lease_until": None,
        "source": "webhook",
        "attempt": 1,
        "dedup_key": None,
        **columns,
    }


def _leased(instance: str, flow: str) -> dict[str, Any]:
    return _row(instance, flow, status="running", lease_until=time.time() + 60)


def test_rows_beyond_their_flows_limit_are_stored_queued(engine: Engine) -> None:
    instance = active_instance(engine)
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            insert(_inbox),
            [
                _leased(instance, "a"),  # one of flow a runs already (live lease)
                _row(instance, "a", status="running", lease_until=now - 5),  # a dead worker's
                _row(instance, "b"),  # queued rows do not count
            ],
        )
    fresh = [_leased(instance, "a"), _leased(instance, "a"), _leased(instance, "b")]
    with engine.begin() as conn:
        inbox.lease_within_limits(conn, fresh, [2, 2, 1], now=now)
        conn.execute(insert(_inbox), fresh)
    # flow a: 1 running + the first new row reach its limit of 2; flow b runs none yet
    assert [(r["status"], r["lease_until"] is not None) for r in fresh] == [
        ("running", True),
        ("queued", False),
        ("running", True),
    ]
    with engine.connect() as conn:
        found = conn.execute(select(_inbox.c.execution_id, _inbox.c.status))
        stored = {r.execution_id: r.status for r in found}
    assert [stored[r["execution_id"]] for r in fresh] == ["running", "queued", "running"]


def test_a_leased_row_is_what_a_claim_would_have_returned(engine: Engine) -> None:
    instance = active_instance(engine)
    values = _leased(instance, "a") | {"dedup_key": "k"}
    with engine.begin() as conn:
        values["id"] = conn.execute(insert(_inbox).values(values).returning(_inbox.c.id)).scalar()
    row = inbox.claimed_from(values)
    assert (row.id, row.execution_id, row.recovered, row.dedup_key) == (
        values["id"],
        values["execution_id"],
        False,
        "k",
    )
    # counted as running by the next claim, like a claimed row
    with engine.begin() as conn:
        taken = inbox.claim_rows(
            conn,
            now=time.time(),
            lease_seconds=60,
            limit=5,
            limits_of=lambda *_: inbox.FlowLimits(concurrency=1),
        )
    assert taken == []
