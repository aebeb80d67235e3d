"""The inbox side of ingest: the row a request becomes, and the group-commit writer that stores it.

One core-SQL insert per request (no ORM objects on the hot path). `InboxWriter` group-commits:
inserts that arrive while a transaction runs share the next one, and each caller's future resolves
only after its transaction committed. A delivery id or dedup key already in the inbox for
(instance, flow) is not inserted again: the caller gets the first request's execution id and
`duplicate=True`. Database work runs on the ingest path's own threads (`threads.in_ingest_thread`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from app.persistence.db import WRITE_OPTION
from app.persistence.inbox import insert_executions, lease_within_limits, notify_queued
from app.persistence.models import InboxRow
from app.persistence.prepared import Prepared
from app.persistence.repositories import table_of
from app.services.threads import in_ingest_thread
from runtime.ids import new_execution_id

__all__ = ["MAX_BATCH", "InboxWriter", "Pending", "find_delivery", "inbox_values"]

MAX_BATCH = 500
"""Most inbox rows one group commit writes."""

_insert_inbox = Prepared(insert(table_of(InboxRow)))


@dataclass(slots=True)
class Pending:
    """One request to store. `future` gets (execution id, duplicate?) after the commit."""

    values: dict[str, Any]
    future: asyncio.Future[tuple[str, bool]]
    limit: int | None = None


class InboxWriter:
    """Group commit: one writer at a time; requests arriving meanwhile share the next transaction.

    No long-lived task: `submit` starts a drain task when none runs, and it ends when the queue is
    empty, so nothing is left pending at shutdown. `group=False` writes each row in its own
    transaction (`asyncio.to_thread` per request), kept for the benchmark's comparison.
    """

    def __init__(self, engine: Engine, *, group: bool = True) -> None:
        self.engine = engine
        self.group = group
        self._queue: list[Pending] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, values: dict[str, Any], *, limit: int | None = None) -> tuple[str, bool]:
        """Store one inbox row (or find its duplicate); returns after the commit.

        A row submitted already leased to the caller (`status` "running", `lease_until` set: the
        caller runs it at once) also gets its execution row in the same transaction, and its
        inbox id written into `values["id"]`. With `limit` (its flow's concurrency) it stays
        leased only while its flow runs fewer rows than that (`inbox.lease_within_limits`);
        else it is stored queued, and `values["status"]` says which it was.
        """
        loop = asyncio.get_running_loop()
        if not self.group:
            return (await in_ingest_thread(self._write, [values], [limit]))[0]
        pending = Pending(values, loop.create_future(), limit)
        self._queue.append(pending)
        if self._drain is None or self._drain.done():
            self._drain = loop.create_task(self._run())
        return await pending.future

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                results = await in_ingest_thread(
                    self._write, [p.values for p in batch], [p.limit for p in batch]
                )
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)

    def _write(
        self, rows: list[dict[str, Any]], limits: list[int | None]
    ) -> list[tuple[str, bool]]:
        try:
            return self._write_batch(rows, limits)
        except IntegrityError:
            if len(rows) == 1:
                raise
            # Another process inserted a delivery id first: redo row by row so only it is a dupe.
            return [
                self._write_batch([row], [limit])[0]
                for row, limit in zip(rows, limits, strict=True)
            ]

    def _write_batch(
        self, rows: list[dict[str, Any]], limits: list[int | None] | None = None
    ) -> list[tuple[str, bool]]:
        """Store `rows` in one transaction; `limits` as `submit` takes them (None: no limits)."""
        if limits is None:
            limits = [None] * len(rows)
        inbox = table_of(InboxRow)
        results: list[tuple[str, bool]] = []
        fresh: list[dict[str, Any]] = []
        limited: list[tuple[dict[str, Any], int]] = []
        seen: dict[tuple[str, str, str, str], str] = {}
        with self.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            for row, limit in zip(rows, limits, strict=True):
                first: str | None = None
                for kind in ("delivery_id", "dedup_key"):
                    value = row.get(kind)
                    if value is None:
                        continue
                    key = (kind, row["instance_id"], row["flow_id"], value)
                    first = (
                        seen.get(key)
                        or conn.execute(
                            select(inbox.c.execution_id)
                            .where(
                                inbox.c.instance_id == row["instance_id"],
                                inbox.c.flow_id == row["flow_id"],
                                inbox.c[kind] == value,
                            )
                            .order_by(inbox.c.id)
                            .limit(1)
                        ).scalar()
                    )
                    if first is not None:
                        break
                if first is not None:
                    results.append((first, True))
                    continue
                for kind in ("delivery_id", "dedup_key"):
                    if row.get(kind) is not None:
                        key = (kind, row["instance_id"], row["flow_id"], row[kind])
                        seen[key] = row["execution_id"]
                fresh.append(row)
                if limit is not None and row["status"] == "running":
                    limited.append((row, limit))
                results.append((row["execution_id"], False))
            if limited:
                lease_within_limits(
                    conn, [r for r, _ in limited], [n for _, n in limited], now=time.time()
                )
            if fresh:
                _insert_inbox.executemany(conn, fresh)
                leased = [row for row in fresh if row["status"] == "running"]
                if leased:
                    _take_leased(conn, leased)
                if len(leased) < len(fresh):
                    notify_queued(conn)
        return results


def _take_leased(conn: Connection, rows: list[dict[str, Any]]) -> None:
    inbox = table_of(InboxRow)
    by_execution = {row["execution_id"]: row for row in rows}
    found = conn.execute(
        select(inbox.c.id, inbox.c.execution_id).where(inbox.c.execution_id.in_(by_execution))
    )
    for row_id, execution_id in found:
        by_execution[execution_id]["id"] = row_id
    insert_executions(
        conn,
        [
            {
                "id": row["execution_id"],
                "flow_id": row["flow_id"],
                "instance_id": row["instance_id"],
                "status": "queued",
                "queued_at": row["received_at"],
                "recovered": False,
                "steps_run": 0,
            }
            for row in rows
        ],
    )


def inbox_values(
    *,
    token: str,
    instance_id: str,
    flow_id: str,
    method: str,
    headers: Mapping[str, str],
    query: Mapping[str, Any],
    body: bytes,
    delivery: str | None,
    dedup: str | None,
) -> dict[str, Any]:
    """The inbox row of a request, with a new execution id."""
    return {
        "token": token[:128],
        "instance_id": instance_id,
        "flow_id": flow_id,
        "execution_id": new_execution_id(),
        "method": method,
        "headers": dict(headers),
        "query": dict(query),
        "body": body,
        "delivery_id": delivery,
        "received_at": time.time(),
        "status": "queued",
        "lease_until": None,
        "source": "webhook",
        "attempt": 1,
        "recovered": False,
        "dedup_key": dedup,
    }


def find_delivery(engine: Engine, instance_id: str, token: str, delivery: str) -> str | None:
    """Execution id of an earlier request to `token` with this delivery id, if any."""
    inbox = table_of(InboxRow)
    with engine.connect() as conn:
        found: str | None = conn.execute(
            select(inbox.c.execution_id)
            .where(
                inbox.c.instance_id == instance_id,
                inbox.c.token == token,
                inbox.c.delivery_id == delivery,
            )
            .limit(1)
        ).scalar()
    return found
