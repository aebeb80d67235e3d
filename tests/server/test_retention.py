"""Retention: old and surplus executions are pruned with their records; the file stays bounded."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from app.persistence.db import DB_FILE_NAME, open_database, session_scope
from app.persistence.models import ExecutionRow, InboxRow, StepRecordRow
from app.persistence.repositories import table_of
from app.services.retention import prune
from tests.server.test_dispatcher_support import deploy, webhook_flow

DAY = 86_400.0


def add_executions(
    engine: Engine,
    instance_id: str,
    started: list[float],
    *,
    status: str = "succeeded",
    inbox_status: str = "done",
    payload: int = 100,
) -> list[str]:
    """Executions with 3 step records each and their inbox rows; returns their ids."""
    ids = [uuid.uuid4().hex for _ in started]
    blob = "x" * payload
    with session_scope(engine) as session:
        conn = session.connection()
        conn.execute(
            insert(table_of(ExecutionRow)),
            [
                {
                    "id": eid,
                    "flow_id": "main",
                    "instance_id": instance_id,
                    "status": status,
                    "started_at": at,
                    "finished_at": at + 1,
                }
                for eid, at in zip(ids, started, strict=True)
            ],
        )
        conn.execute(
            insert(table_of(StepRecordRow)),
            [
                {
                    "execution_id": eid,
                    "step_id": f"s{n}",
                    "action": "testkit.echo",
                    "status": "succeeded",
                    "started_at": at,
                    "duration_ms": 1.0,
                    "iteration_path": [],
                    "logs": [],
                    "output": {"blob": blob},
                }
                for eid, at in zip(ids, started, strict=True)
                for n in range(3)
            ],
        )
        conn.execute(
            insert(table_of(InboxRow)),
            [
                {
                    "token": "t",
                    "instance_id": instance_id,
                    "flow_id": "main",
                    "execution_id": eid,
                    "headers": {},
                    "query": {},
                    "body": blob.encode(),
                    "received_at": at,
                    "status": inbox_status,
                }
                for eid, at in zip(ids, started, strict=True)
            ],
        )
    return ids


def add_sub_flow_runs(engine: Engine, parents: list[str], started: float) -> None:
    """Under each parent a child execution with 2 step records, and a grandchild under it."""
    with session_scope(engine) as session:
        conn = session.connection()
        for parent in parents:
            child, grandchild = f"{parent}-child", f"{parent}-grandchild"
            conn.execute(
                insert(table_of(ExecutionRow)),
                [
                    {
                        "id": eid,
                        "flow_id": "sub",
                        "parent_execution_id": up,
                        "status": "succeeded",
                        "started_at": started,
                    }
                    for eid, up in ((child, parent), (grandchild, child))
                ],
            )
            conn.execute(
                insert(table_of(StepRecordRow)),
                [
                    {
                        "execution_id": child,
                        "step_id": f"s{n}",
                        "action": "testkit.echo",
                        "status": "succeeded",
                        "started_at": started,
                        "duration_ms": 1.0,
                        "iteration_path": [],
                        "logs": [],
                    }
                    for n in range(2)
                ],
            )


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table_of(model))).scalar_one())


def remaining(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(table_of(ExecutionRow).c.id)).scalars())


def test_prunes_by_age_with_records_and_requests(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "data")
    instance_id = deploy(engine, [webhook_flow("main", [])])
    now = time.time()
    old = add_executions(engine, instance_id, [now - 10 * DAY, now - 3 * DAY])
    new = add_executions(engine, instance_id, [now - 0.5 * DAY, now - 60])
    # An old execution whose request is queued again (a recovery) is still needed.
    pending = add_executions(engine, instance_id, [now - 9 * DAY], inbox_status="queued")
    report = prune(engine, now=now, retention_days=2, max_executions=1000)
    assert report.executions == 2
    assert remaining(engine) == {*new, *pending}
    assert count(engine, StepRecordRow) == 3 * 3
    assert count(engine, InboxRow) == 3
    assert set(old).isdisjoint(remaining(engine))
    engine.dispose()


def test_prunes_the_oldest_beyond_the_count_budget(tmp_path: Path) -> None:
    engine = open_database(tmp_path / "data")
    instance_id = deploy(engine, [webhook_flow("main", [])])
    now = time.time()
    ids = add_executions(engine, instance_id, [now - 100 + n for n in range(10)])
    running = add_executions(
        engine, instance_id, [now - 200], status="running", inbox_status="running"
    )
    prune(engine, now=now, retention_days=30, max_executions=3, batch=2)
    assert remaining(engine) == {*ids[-3:], *running}
    assert count(engine, StepRecordRow) == 4 * 3
    engine.dispose()


def test_prune_cycles_leave_no_rows_behind(tmp_path: Path) -> None:
    """What keeps any database bounded: every row of a pruned execution goes, its sub-flow runs
    (and theirs) and their step records too, so PostgreSQL's autovacuum can reuse the space."""
    engine = open_database(tmp_path / "data")
    instance_id = deploy(engine, [webhook_flow("main", [])])
    start = time.time()
    for cycle in range(3):
        base = start + cycle * 1000
        ids = add_executions(engine, instance_id, [base + n for n in range(20)])
        add_sub_flow_runs(engine, ids, base)
        prune(engine, now=base + 400, retention_days=30, max_executions=5, batch=7)
        assert remaining(engine) == {
            *ids[-5:],
            *(f"{eid}-child" for eid in ids[-5:]),
            *(f"{eid}-grandchild" for eid in ids[-5:]),
        }
        assert count(engine, StepRecordRow) == 5 * (3 + 2)
        assert count(engine, InboxRow) == 5
    prune(engine, now=start + 10_000, retention_days=30, max_executions=0)
    assert (count(engine, ExecutionRow), count(engine, StepRecordRow)) == (0, 0)
    assert count(engine, InboxRow) == 0
    engine.dispose()


def file_size(data: Path) -> int:
    return sum(p.stat().st_size for p in data.glob(f"{DB_FILE_NAME}*"))


@pytest.mark.sqlite_only  # the file and its auto-vacuum; test_prune_cycles_leave_no_rows_behind
def test_database_file_stays_bounded_across_prune_cycles(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = open_database(data)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA auto_vacuum")).scalar() == 2  # incremental
    instance_id = deploy(engine, [webhook_flow("main", [])])
    sizes = []
    start = time.time()
    for cycle in range(6):
        base = start + cycle * 1000
        add_executions(engine, instance_id, [base + n for n in range(300)], payload=2000)
        prune(engine, now=base + 400, retention_days=30, max_executions=100)
        assert count(engine, ExecutionRow) == 100
        sizes.append(file_size(data))
    # After the first cycle the file stops growing: freed pages are returned or reused.
    assert max(sizes[2:]) <= sizes[1] * 1.2, sizes
    prune(engine, now=start + 10_000, retention_days=30, max_executions=0)
    assert count(engine, ExecutionRow) == 0
    assert file_size(data) < sizes[-1] / 2  # incremental vacuum gave the space back
    engine.dispose()
