"""Executions: list with filters, detail with every step record, replay.

Convention (as in the other services): `async` functions; database work runs in a worker thread
(`asyncio.to_thread`) so the event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, cast, func
from sqlmodel import Session, col, select

from app.persistence import session_scope
from app.persistence.inbox import queue_copy
from app.persistence.models import ExecutionRow, InboxRow, StepRecordRow
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub

__all__ = ["ExecutionFilter", "get_execution", "list_executions", "replay_execution"]

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "crashed")


@dataclass(frozen=True, kw_only=True)
class ExecutionFilter:
    """What `list_executions` selects. Times are Unix seconds; `text` searches the request body."""

    status: str | None = None
    flow_id: str | None = None
    instance_id: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0
    include_children: bool = False
    statuses: tuple[str, ...] = field(default=STATUSES, repr=False)


def _summary(row: ExecutionRow, source: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "flow_id": row.flow_id,
        "instance_id": row.instance_id,
        "parent_execution_id": row.parent_execution_id,
        "status": row.status,
        "queued_at": row.queued_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "duration_ms": row.duration_ms,
        "steps_run": row.steps_run,
        "recovered": row.recovered,
        "error": row.error,
        "source": source,
    }


def _check(filters: ExecutionFilter) -> None:
    problems: dict[str, str] = {}
    if filters.status is not None and filters.status not in filters.statuses:
        problems["status"] = f"unknown status '{filters.status}'; one of {', '.join(STATUSES)}"
    if not 1 <= filters.limit <= 500:
        problems["limit"] = "must be between 1 and 500"
    if filters.offset < 0:
        problems["offset"] = "must not be negative"
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        problems["since"] = "is after 'until'"
    if problems:
        raise InvalidInput("Invalid execution filter.", details=problems)


def _list(hub: Hub, filters: ExecutionFilter) -> dict[str, Any]:
    conditions: list[Any] = []
    if not filters.include_children:
        conditions.append(col(ExecutionRow.parent_execution_id).is_(None))
    if filters.flow_id:
        conditions.append(ExecutionRow.flow_id == filters.flow_id)
    if filters.instance_id:
        conditions.append(ExecutionRow.instance_id == filters.instance_id)
    if filters.since is not None:
        conditions.append(col(ExecutionRow.started_at) >= filters.since)
    if filters.until is not None:
        conditions.append(col(ExecutionRow.started_at) <= filters.until)
    if filters.text:
        pattern = "%" + filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matching = select(InboxRow.execution_id).where(
            cast(InboxRow.body, String).like(pattern + "%", escape="\\")
        )
        conditions.append(col(ExecutionRow.id).in_(matching))
    with session_scope(hub.db, write=False) as session:
        counts = dict(
            session.exec(
                select(ExecutionRow.status, func.count())
                .where(*conditions)
                .group_by(ExecutionRow.status)
            ).all()
        )
        query = select(ExecutionRow, InboxRow.source).outerjoin(
            InboxRow, col(InboxRow.execution_id) == col(ExecutionRow.id)
        )
        if filters.status:
            query = query.where(ExecutionRow.status == filters.status)
        rows = session.exec(
            query.where(*conditions)
            .order_by(col(ExecutionRow.started_at).desc().nulls_first(), col(ExecutionRow.id))
            .limit(filters.limit)
            .offset(filters.offset)
        ).all()
        return {
            "executions": [_summary(row, source) for row, source in rows],
            "counts": {status: counts.get(status, 0) for status in STATUSES},
            "total": sum(counts.values()) if not filters.status else counts.get(filters.status, 0),
        }


async def list_executions(hub: Hub, filters: ExecutionFilter) -> dict[str, Any]:
    """A page of executions (newest first) and the count of each status under the same filters."""
    _check(filters)
    return await asyncio.to_thread(_list, hub, filters)


def _step(row: StepRecordRow) -> dict[str, Any]:
    return {
        "step_id": row.step_id,
        "step_name": row.step_name,
        "action": row.action,
        "status": row.status,
        "attempt": row.attempt,
        "iteration": row.iteration_path[-1] if row.iteration_path else None,
        "iteration_path": row.iteration_path,
        "port": row.port,
        "started_at": row.started_at,
        "duration_ms": row.duration_ms,
        "input": row.input,
        "output": row.output,
        "error": row.error,
        "logs": row.logs,
    }


def _detail(hub: Hub, execution_id: str) -> dict[str, Any]:
    with session_scope(hub.db, write=False) as session:
        row = session.get(ExecutionRow, execution_id)
        if row is None:
            raise NotFound(f"There is no execution '{execution_id}'.")
        inbox = _inbox_row(session, execution_id)
        steps = session.exec(
            select(StepRecordRow)
            .where(StepRecordRow.execution_id == execution_id)
            .order_by(col(StepRecordRow.id))
        ).all()
        children = session.exec(
            select(ExecutionRow)
            .where(ExecutionRow.parent_execution_id == execution_id)
            .order_by(col(ExecutionRow.started_at))
        ).all()
        detail = _summary(row, inbox.source if inbox else None)
        detail["output"] = row.output
        detail["steps"] = [_step(s) for s in steps]
        detail["children"] = [_summary(c) for c in children]
        detail["request"] = (
            None
            if inbox is None
            else {
                "method": inbox.method,
                "headers": inbox.headers,
                "query": inbox.query,
                "body": inbox.body.decode("utf-8", errors="replace"),
                "received_at": inbox.received_at,
                "attempt": inbox.attempt,
                "replay_of": inbox.replay_of,
            }
        )
        return detail


def _inbox_row(session: Session, execution_id: str) -> InboxRow | None:
    return session.exec(select(InboxRow).where(col(InboxRow.execution_id) == execution_id)).first()


async def get_execution(hub: Hub, execution_id: str) -> dict[str, Any]:
    """One execution with all its step records (in the order they finished) and its request."""
    return await asyncio.to_thread(_detail, hub, execution_id)


def _replay(hub: Hub, execution_id: str) -> str:
    with session_scope(hub.db) as session:
        if session.get(ExecutionRow, execution_id) is None:
            raise NotFound(f"There is no execution '{execution_id}'.")
        original = _inbox_row(session, execution_id)
        if original is None:
            raise Conflict(
                f"Execution '{execution_id}' did not come from a request, so there is nothing "
                "to replay.",
                hint="Deploy and tear-down runs are repeated by redeploying the instance.",
            )
        new_id = uuid.uuid4().hex
        queue_copy(session.connection(), original, new_id, source="replay", now=time.time())
    return new_id


async def replay_execution(hub: Hub, execution_id: str) -> str:
    """Queue the execution's original request again as a new execution; return its id."""
    new_id = await asyncio.to_thread(_replay, hub, execution_id)
    if hub.dispatcher is not None:
        hub.dispatcher.notify()
    return new_id
