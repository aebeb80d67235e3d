"""Executions: list with filters, detail with every step record, replay.

Convention (as in the other services): `async` functions; database work runs in a worker thread
(`asyncio.to_thread`) so the event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from sqlalchemy import Integer, String, cast, func
from sqlmodel import Session, col, select

from app.persistence import repositories as repo
from app.persistence import session_scope
from app.persistence.inbox import queue_copy
from app.persistence.models import (
    ExecutionRow,
    FlowRow,
    InboxRow,
    InstanceRow,
    IntegrationRow,
    IntegrationVersionRow,
    StepRecordRow,
)
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from app.services.lifecycle import integration_of
from runtime.ids import new_execution_id
from runtime.model import Flow, Position

__all__ = [
    "TEST_RUN_PREFIX",
    "ExecutionFilter",
    "ExecutionFlow",
    "execution_flow",
    "execution_timeline",
    "get_execution",
    "list_executions",
    "queued_execution",
    "replay_execution",
]

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "crashed")

TEST_RUN_PREFIX = "test-"
"""Ids of designer test runs (`app.services.testruns`) start with this: their `source` is
"test". They have no inbox row and no instance, and the id is all that marks them, so the schema
needs no column for it."""


@dataclass(frozen=True, kw_only=True)
class ExecutionFilter:
    """What `list_executions` selects. Times are Unix seconds; `text` searches the request body;
    `source` is a request's source (webhook, replay, retry, schedule, manual) or "test"."""

    status: str | None = None
    flow_id: str | None = None
    instance_id: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None
    source: str | None = None
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
        "source": source if source is not None else _source_of(row.id),
    }


def _source_of(execution_id: str) -> str | None:
    """The source of an execution without an inbox row: "test" for test runs, else None."""
    return "test" if execution_id.startswith(TEST_RUN_PREFIX) else None


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


def _body_contains(text: str, dialect: str) -> Any:
    """Inbox rows whose raw body holds `text` (ASCII letters in any case), on either database.

    SQLite compares a BLOB cast to TEXT as its bytes. PostgreSQL cannot cast `bytea` to text
    without a valid encoding, so the body is read in `escape` form (bytes >= 0x80 as `\\ooo`,
    backslash doubled) and the text is written the same way before LIKE sees it.
    """
    if dialect == "postgresql":
        raw = text.encode("utf-8")
        text = "".join("\\\\" if b == 0x5C else f"\\{b:03o}" if b >= 0x80 else chr(b) for b in raw)
        body: Any = func.encode(InboxRow.body, "escape")
    else:
        body = cast(InboxRow.body, String)
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return select(InboxRow.execution_id).where(body.ilike(pattern, escape="\\"))


def _conditions(filters: ExecutionFilter, dialect: str) -> list[Any]:
    """Every filter but `status` (the counts by status are taken under the rest)."""
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
    if filters.source == "test":
        conditions.append(col(ExecutionRow.id).startswith(TEST_RUN_PREFIX, autoescape=True))
    elif filters.source:
        conditions.append(
            col(ExecutionRow.id).in_(
                select(InboxRow.execution_id).where(InboxRow.source == filters.source)
            )
        )
    if filters.text:
        matching = _body_contains(filters.text, dialect)
        conditions.append(col(ExecutionRow.id).in_(matching))
    return conditions


def _list(hub: Hub, filters: ExecutionFilter) -> dict[str, Any]:
    conditions = _conditions(filters, hub.db.dialect.name)
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
        "exchanges": row.exchanges,
        "pinned": row.pinned,
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
        detail["request"] = None if inbox is None else _request(inbox)
        return detail


def _request(inbox: InboxRow) -> dict[str, Any]:
    return {
        "method": inbox.method,
        "headers": inbox.headers,
        "query": inbox.query,
        "body": inbox.body.decode("utf-8", errors="replace"),
        "received_at": inbox.received_at,
        "attempt": inbox.attempt,
        "replay_of": inbox.replay_of,
    }


def _inbox_row(session: Session, execution_id: str) -> InboxRow | None:
    return session.exec(select(InboxRow).where(col(InboxRow.execution_id) == execution_id)).first()


async def get_execution(hub: Hub, execution_id: str) -> dict[str, Any]:
    """One execution with all its step records (in the order they finished) and its request.

    A request acknowledged but not picked up by a worker yet is answered too, with status
    `queued` and no steps: the id a webhook answered with never reads as unknown."""
    try:
        return await asyncio.to_thread(_detail, hub, execution_id)
    except NotFound:
        queued = await asyncio.to_thread(_queued, hub, execution_id)
        if queued is None:
            raise
        return queued


def _replay(hub: Hub, execution_id: str) -> str:
    with session_scope(hub.db) as session:
        if session.get(ExecutionRow, execution_id) is None:
            raise NotFound(f"There is no execution '{execution_id}'.")
        original = _inbox_row(session, execution_id)
        if original is None and execution_id.startswith(TEST_RUN_PREFIX):
            raise Conflict(
                f"Execution '{execution_id}' is a test run from the designer.",
                hint="Run the test again from the flow's test panel.",
            )
        if original is None:
            raise Conflict(
                f"Execution '{execution_id}' did not come from a request, so there is nothing "
                "to replay.",
                hint="Deploy and tear-down runs are repeated by redeploying the instance.",
            )
        new_id = new_execution_id()
        queue_copy(session.connection(), original, new_id, source="replay", now=time.time())
    return new_id


async def replay_execution(hub: Hub, execution_id: str) -> str:
    """Queue the execution's original request again as a new execution; return its id."""
    new_id = await asyncio.to_thread(_replay, hub, execution_id)
    if hub.dispatcher is not None:
        hub.dispatcher.notify()
    return new_id


# --- for the executions page --------------------------------------------------------------------


def _queued(hub: Hub, execution_id: str) -> dict[str, Any] | None:
    with session_scope(hub.db, write=False) as session:
        inbox = _inbox_row(session, execution_id)
        if inbox is None:
            return None
        return {
            "id": execution_id,
            "flow_id": inbox.flow_id,
            "instance_id": inbox.instance_id,
            "parent_execution_id": None,
            "status": "queued",
            "queued_at": inbox.received_at,
            "started_at": None,
            "finished_at": None,
            "duration_ms": None,
            "steps_run": 0,
            "recovered": False,
            "error": None,
            "source": inbox.source,
            "output": None,
            "steps": [],
            "children": [],
            "request": _request(inbox),
        }


async def queued_execution(hub: Hub, execution_id: str) -> dict[str, Any] | None:
    """The request of `execution_id` shaped like `get_execution`'s answer, with status `queued`
    and no steps; None when there is no such request.

    For a request acknowledged but not picked up by a worker yet, which `get_execution` does not
    know until then: ask `get_execution` first (a worker may start it at any moment)."""
    return await asyncio.to_thread(_queued, hub, execution_id)


def _timeline(hub: Hub, filters: ExecutionFilter, bucket: int) -> list[dict[str, Any]]:
    conditions = _conditions(filters, hub.db.dialect.name)
    if filters.status:
        conditions.append(ExecutionRow.status == filters.status)
    slot = cast(ExecutionRow.started_at, Integer) // bucket  # integer division in SQLite and PG
    duration_ms = col(ExecutionRow.duration_ms)
    query = (
        sqlalchemy.select(
            slot,
            col(ExecutionRow.status),
            func.count(),
            func.sum(duration_ms),
            func.count(duration_ms),
            func.max(duration_ms),
        )
        .where(col(ExecutionRow.started_at).is_not(None), *conditions)
        .group_by(slot, col(ExecutionRow.status))
    )
    buckets: dict[int, dict[str, Any]] = {}
    with session_scope(hub.db, write=False) as session:
        for index, status, count, total_ms, timed, max_ms in session.connection().execute(query):
            entry = buckets.setdefault(
                int(index),
                {
                    "start": int(index) * bucket,
                    "counts": {},
                    "total_ms": 0.0,
                    "timed": 0,
                    "max_ms": None,
                },
            )
            entry["counts"][status] = count
            entry["total_ms"] += total_ms or 0.0
            entry["timed"] += timed
            if max_ms is not None:
                entry["max_ms"] = max(max_ms, entry["max_ms"] or 0.0)
    result = []
    for _, entry in sorted(buckets.items()):
        timed = entry.pop("timed")
        total_ms = entry.pop("total_ms")
        entry["avg_ms"] = total_ms / timed if timed else None
        result.append(entry)
    return result


async def execution_timeline(
    hub: Hub, filters: ExecutionFilter, bucket_seconds: int
) -> list[dict[str, Any]]:
    """Executions started per time bucket under `filters` (paging ignored), oldest first.

    Each bucket: `start` (Unix seconds, a multiple of `bucket_seconds`), `counts` by status,
    `avg_ms` and `max_ms` of the durations known. Empty buckets are left out.
    """
    _check(filters)
    if bucket_seconds < 1:
        raise InvalidInput("Invalid bucket.", details={"bucket_seconds": "must be at least 1"})
    return await asyncio.to_thread(_timeline, hub, filters, int(bucket_seconds))


@dataclass(frozen=True, slots=True)
class ExecutionFlow:
    """The flow an execution ran, from its integration version, with its canvas layout."""

    integration: str
    version: int
    flow: Flow
    layout: dict[str, Position]


def _test_run_integration(execution_id: str) -> int | None:
    prefix, _, rest = execution_id.partition("-")
    row_id = rest.partition("-")[0]
    return int(row_id) if prefix == "test" and row_id.isdigit() else None


def _flow_of(hub: Hub, execution_id: str) -> ExecutionFlow | None:
    with session_scope(hub.db, write=False) as session:
        row: ExecutionRow | InboxRow | None = session.get(ExecutionRow, execution_id)
        if row is None:
            row = _inbox_row(session, execution_id)  # acknowledged, not started yet
        if row is None:
            raise NotFound(f"There is no execution '{execution_id}'.")
        instance = session.get(InstanceRow, row.instance_id) if row.instance_id else None
        if instance is not None:
            name, version_row = integration_of(session, instance.version_id)
            version = version_row.version
        else:
            # A test run, or a run of a deleted instance: the newest version holding a flow with
            # this id, of the test run's integration (its id says which: `test-<row id>-...`,
            # see `app.services.testruns`), else of the one integration having such a flow.
            query = (
                select(IntegrationRow.name, func.max(IntegrationVersionRow.version))
                .join(
                    IntegrationVersionRow,
                    col(IntegrationVersionRow.integration_id) == col(IntegrationRow.id),
                )
                .join(FlowRow, col(FlowRow.version_id) == col(IntegrationVersionRow.id))
                .where(FlowRow.flow_id == row.flow_id)
            )
            test_of = _test_run_integration(execution_id)
            if test_of is not None:
                query = query.where(IntegrationRow.id == test_of)
            holders = session.exec(query.group_by(IntegrationRow.name)).all()
            if len(holders) != 1:
                return None
            name, version = holders[0]
        try:
            integration = repo.load_integration(session, name, version)
        except repo.NotFound:
            return None
    flow = next((f for f in integration.flows if f.id == row.flow_id), None)
    if flow is None:
        return None
    return ExecutionFlow(
        integration=integration.name,
        version=integration.version,
        flow=flow,
        layout=dict(integration.layout.get(flow.id, {})),
    )


async def execution_flow(hub: Hub, execution_id: str) -> ExecutionFlow | None:
    """The flow graph an execution ran (its instance's integration version), or None if unknown.

    An execution without an instance (a test run, or its instance was deleted) is matched to the
    newest version of the one integration with a flow of that id; None when none or several
    have one. NotFound when there is no such execution.
    """
    return await asyncio.to_thread(_flow_of, hub, execution_id)
