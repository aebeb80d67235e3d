"""Retention: prune old executions so the database stays within a time and size budget.

`prune` deletes finished top-level executions started more than `retention_days` ago, and the
oldest ones beyond the newest `max_executions`, together with their step records, child
executions and finished inbox rows. It works in bounded batches, each its own short transaction,
so webhook ingest is never blocked for long. Executions whose request is still queued or running
are kept. Then SQLite returns the freed pages to the file system (`PRAGMA incremental_vacuum`,
which needs `auto_vacuum=INCREMENTAL`, set by `app.persistence.db` on new databases) and truncates
the WAL (`wal_checkpoint(TRUNCATE)`). On an older database without auto-vacuum the freed pages
are reused by new rows, so the file still stops growing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, false, func, or_, select

from app.persistence.db import WRITE_OPTION
from app.persistence.inbox import FINISHED
from app.persistence.models import ExecutionRow, InboxRow, StepRecordRow
from app.persistence.repositories import table_of

__all__ = ["PruneReport", "prune", "reclaim_space"]

_FINISHED_EXECUTIONS = ("succeeded", "failed", "cancelled", "crashed")
_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class PruneReport:
    executions: int
    inbox_rows: int


def _prunable(now: float, retention_days: float, cutoff: tuple[float, str] | None) -> Any:
    e, i = table_of(ExecutionRow).c, table_of(InboxRow).c
    started = func.coalesce(e.started_at, e.queued_at, 0.0)
    too_old = started < now - retention_days * _DAY
    over_budget: Any = false()
    if cutoff is not None:
        at, last_id = cutoff
        over_budget = or_(
            e.started_at.is_(None), e.started_at < at, and_(e.started_at == at, e.id <= last_id)
        )
    pending = exists().where(i.execution_id == e.id, i.status.in_(("queued", "running")))
    return and_(
        e.parent_execution_id.is_(None),
        e.status.in_(_FINISHED_EXECUTIONS),
        or_(too_old, over_budget),
        ~pending,
    )


def prune(
    engine: Engine,
    *,
    now: float,
    retention_days: float,
    max_executions: int,
    batch: int = 500,
    vacuum: bool = True,
) -> PruneReport:
    """Delete what is past retention (see the module docstring); return what was deleted."""
    executions, steps, inbox = table_of(ExecutionRow), table_of(StepRecordRow), table_of(InboxRow)
    e = executions.c
    writer = engine.execution_options(**{WRITE_OPTION: True})
    with engine.connect() as conn:
        newest_dropped = conn.execute(
            select(e.started_at, e.id)
            .where(e.parent_execution_id.is_(None), e.status.in_(_FINISHED_EXECUTIONS))
            .order_by(e.started_at.desc(), e.id.desc())
            .offset(max_executions)
            .limit(1)
        ).first()
    cutoff = None
    if newest_dropped is not None:
        cutoff = (newest_dropped.started_at or 0.0, newest_dropped.id)
    condition = _prunable(now, retention_days, cutoff)
    pruned = inbox_rows = 0
    while True:
        with writer.begin() as conn:
            ids = list(
                conn.execute(
                    select(e.id).where(condition).order_by(e.started_at).limit(batch)
                ).scalars()
            )
            if not ids:
                break
            conn.execute(delete(steps).where(steps.c.execution_id.in_(ids)))
            children = delete(executions).where(e.parent_execution_id.in_(ids))
            conn.execute(children)  # their step records and grandchildren cascade
            inbox_rows += conn.execute(
                delete(inbox).where(inbox.c.execution_id.in_(ids), inbox.c.status.in_(FINISHED))
            ).rowcount
            conn.execute(delete(executions).where(e.id.in_(ids)))
            pruned += len(ids)
        if len(ids) < batch:
            break
    # Finished requests whose execution is already gone (or never recorded) age out too.
    old = now - retention_days * _DAY
    while True:
        with writer.begin() as conn:
            ids = list(
                conn.execute(
                    select(inbox.c.id)
                    .where(inbox.c.status.in_(FINISHED), inbox.c.received_at < old)
                    .limit(batch)
                ).scalars()
            )
            if ids:
                inbox_rows += conn.execute(delete(inbox).where(inbox.c.id.in_(ids))).rowcount
        if len(ids) < batch:
            break
    if vacuum and (pruned or inbox_rows):
        reclaim_space(engine)
    return PruneReport(pruned, inbox_rows)


def reclaim_space(engine: Engine) -> None:
    """SQLite: give free pages back to the file system and truncate the WAL. Else nothing."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection  # sqlite3.Connection, in autocommit mode (db.py)
        (mode,) = driver.execute("PRAGMA auto_vacuum").fetchone()
        if mode == 2:  # INCREMENTAL
            # Each step of this pragma frees one page and sqlite3's `execute` steps once;
            # `executescript` runs it to completion.
            driver.executescript("PRAGMA incremental_vacuum;")
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        raw.close()
