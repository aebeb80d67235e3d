"""The engine's database-backed services: instance state and the execution recorder.

Both work on an `Engine` (not a session): they run their own short transactions in a worker thread
(`asyncio.to_thread`) so the event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from app.persistence.db import WRITE_OPTION, unavailable
from app.persistence.models import INSTANCE_SCOPE, ExecutionRow, InstanceStateRow, StepRecordRow
from app.persistence.prepared import Prepared, upsert
from app.persistence.repositories import table_of
from components.api import Response
from runtime.observer import ExecutionInfo, ExecutionResult, StepRecord

__all__ = [
    "Batched",
    "Report",
    "SqlRecorder",
    "SqlStateBackend",
    "WriteHook",
    "finished_report",
    "started_report",
    "step_report",
]

log = logging.getLogger("flowyard.recorder")


class SqlStateBackend:
    """`runtime.state.StateBackend` over the `instance_state` table. Values are stored as JSON."""

    def __init__(self, engine: Engine, *, on_write: WriteHook | None = None) -> None:
        self._engine = engine
        self._on_write = on_write
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._table = table_of(InstanceStateRow)

    def _where(self, instance_id: str, flow_id: str | None, key: str) -> Any:
        c = self._table.c
        return and_(
            c.instance_id == instance_id,
            c.flow_id == (flow_id or INSTANCE_SCOPE),
            c.key == key,
        )

    async def load(self, instance_id: str, flow_id: str | None, key: str) -> tuple[bool, Any]:
        return await asyncio.to_thread(self._load, instance_id, flow_id, key)

    async def store(self, instance_id: str, flow_id: str | None, key: str, value: Any) -> None:
        await asyncio.to_thread(self._store, instance_id, flow_id, key, value)

    async def remove(self, instance_id: str, flow_id: str | None, key: str) -> None:
        await asyncio.to_thread(self._remove, instance_id, flow_id, key)

    def _load(self, instance_id: str, flow_id: str | None, key: str) -> tuple[bool, Any]:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(self._table.c.value).where(self._where(instance_id, flow_id, key))
            ).first()
        return (False, None) if row is None else (True, row.value)

    def _store(self, instance_id: str, flow_id: str | None, key: str, value: Any) -> None:
        with self._writer.begin() as conn:
            upsert(
                conn,
                self._table,
                {
                    "instance_id": instance_id,
                    "flow_id": flow_id or INSTANCE_SCOPE,
                    "key": key,
                    "value": value,
                    "updated_at": time.time(),
                },
                ["instance_id", "flow_id", "key"],
                ["value", "updated_at"],
            )

    def _remove(self, instance_id: str, flow_id: str | None, key: str) -> None:
        with self._writer.begin() as conn:
            conn.execute(delete(self._table).where(self._where(instance_id, flow_id, key)))


@dataclass(frozen=True, eq=False)
class Batched:
    """A `flush(then=...)` write made together with the other `Batched` writes of the same
    `write` function in its transaction: one `write(connection, [item, ...])` call (one
    executemany) instead of a statement per `then`."""

    write: Callable[[Connection, list[Any]], None]
    item: Any
    execution_id: str | None = None
    """The execution this write belongs to: it stays with that execution's records when a
    batch has to be written one execution at a time."""


Then = Callable[[Connection], None] | Batched
"""What `SqlRecorder.flush(then=...)` runs in the transaction that commits the reports before it."""

_Op = tuple[str, Any]
"""("execution", values) | ("step", values) | ("then", a `Then` run in the same transaction)."""

Report = _Op
"""What an observer report becomes in a recorder's buffer: ("execution", values) or ("step",
values), made by `started_report`, `step_report` and `finished_report` (plain values, so an engine
process can make them and send them to the server)."""


def started_report(info: ExecutionInfo) -> Report:
    return (
        "execution",
        {
            "id": info.execution_id,
            "flow_id": info.flow_id,
            "parent_execution_id": info.parent_execution_id,
            "status": "running",
            "started_at": info.started_at,
        },
    )


def step_report(record: StepRecord) -> Report:
    return (
        "step",
        {
            "execution_id": record.execution_id,
            "step_id": record.step_id,
            "step_name": record.step_name,
            "action": record.action,
            "iteration_path": list(record.iteration),
            "status": record.status.value,
            "attempt": record.attempt,
            "port": record.port,
            "started_at": record.started_at,
            "duration_ms": record.duration_ms,
            "input": record.input,
            "output": record.output,
            "error": record.error,
            "logs": list(record.logs),
            "exchanges": record.exchanges,
            "pinned": record.pinned,
        },
    )


def finished_report(result: ExecutionResult) -> Report:
    return (
        "execution",
        {
            "id": result.execution_id,
            "flow_id": result.flow_id,
            "status": result.status.value,
            "started_at": result.started_at,
            "finished_at": result.started_at + result.duration_ms / 1000,
            "duration_ms": result.duration_ms,
            "steps_run": result.steps_run,
            "error": result.error,
            "output": result.output,
        },
    )


WriteHook = Callable[[Connection], Callable[[bool], None] | None]
"""Runs last in every write transaction of a `SqlRecorder`; what it returns is called with
whether that transaction committed."""

_executions = table_of(ExecutionRow)
_steps = table_of(StepRecordRow)
_insert_steps = Prepared(insert(_steps))


class SqlRecorder:
    """`runtime.observer.Observer` that stores executions and finished step records in batches.

    Batching contract:
    - The observer methods only append to an in-memory buffer (no I/O, never blocks the engine).
    - Nothing is durable until `await flush()` returns: it writes everything buffered so far in
      one transaction (one commit), in the order it was reported, from a worker thread. Calls are
      serialised; reports arriving during a flush go to the next one, so concurrent executions
      that each flush when they end share commits (group commit).
    - If the write fails because the database is unavailable (locked, gone, out of space), the
      batch is put back at the front of the buffer and the error raised; the next `flush()`
      retries it. If it fails for any other reason (a value the database refuses), the batch is
      written again one execution at a time: an execution whose records still cannot be written
      is stored as failed (kind `unstorable`, the reason in its error, its step records
      dropped) with its `then` writes, and every other execution is stored as reported. One
      execution's bad data never holds up the others.
    - Stored: execution start (status `running`, parent) and end (status, times, error, output,
      steps run), and every finished step record. `step_started` and `response_ready` are not
      stored (live status and sync replies travel another way).
    - The execution row is upserted by id: a host that inserted it first (with its instance and
      queue time, at ingest) keeps those columns.
    - `flush(then=write)` also runs `write(connection)` in the transaction that commits
      everything reported before it (a host marks its queue row finished there, atomically with
      the records); if that transaction fails, `write` is put back with the batch, unless the
      host takes it back with `forget(write)`. `Batched(write, item)` writes run after the
      plain ones, as one `write(connection, items)` per function.
    - `on_write(connection)`, if given, runs last in every write transaction (a host claims its
      next queue rows there); the callable it may return learns whether the transaction committed.
    - Secrets: the engine reports everything redacted (secret-typed inputs, connection values
      and `RunContext.secrets` wherever they appear); this recorder stores what it is told.
    - Inputs, outputs, errors and log lines go to their JSON columns as reported; the engine's
      serializer (`app.persistence.db.json_text`) writes dataclasses as objects and anything JSON
      cannot hold as its string form.
    """

    def __init__(self, engine: Engine, *, on_write: WriteHook | None = None) -> None:
        self._engine = engine
        self._on_write = on_write
        self._pending: list[_Op] = []
        self._lock = asyncio.Lock()
        self._start = 0
        self._inflight: asyncio.Future[None] | None = None
        self.commits = 0
        """Transactions committed so far (for tests and metrics)."""

    @property
    def pending(self) -> int:
        """Reports buffered and not yet written."""
        return len(self._pending)

    def execution_started(self, info: ExecutionInfo) -> None:
        self._pending.append(started_report(info))

    def step_started(self, record: StepRecord) -> None:
        pass

    def step_finished(self, record: StepRecord) -> None:
        self._pending.append(step_report(record))

    def response_ready(self, execution_id: str, response: Response) -> None:
        pass

    def execution_finished(self, result: ExecutionResult) -> None:
        self._pending.append(finished_report(result))

    def report(self, reports: list[Report]) -> None:
        """Buffer reports made elsewhere (an engine process) by the functions below, in order."""
        self._pending.extend(reports)

    def forget(self, then: Then) -> None:
        """Drop a `then` write a failed flush put back (its caller will handle it another way)."""
        # Later reports move one number down: their callers may write once more than needed,
        # never less.
        self._pending = [op for op in self._pending if not (op[0] == "then" and op[1] is then)]

    async def flush(self, then: Then | None = None) -> None:
        """Write everything reported so far in one transaction; see the class docstring."""
        if then is not None:
            self._pending.append(("then", then))
        # Reports are numbered in order; `_start` is the number of `_pending[0]`. A caller whose
        # reports a previous flush already committed returns without a transaction of its own,
        # even when other executions have reported more since (group commit).
        mark = self._start + len(self._pending)
        async with self._lock:
            if self._inflight is not None:  # a cancelled flush's write, still running
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._inflight)
                self._inflight = None
            if self._start >= mark:
                return
            batch, self._pending = self._pending, []
            self._start += len(batch)
            write = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # The thread cannot be stopped and may still commit: requeue only if it fails,
                # so a cancelled flush never writes a batch twice.
                self._inflight = write
                write.add_done_callback(lambda done: self._requeue_if_failed(done, batch))
                raise
            except Exception as exc:
                if unavailable(exc):
                    self._requeue(batch)
                    raise
                log.warning(
                    "a batch of records could not be written (%s); writing it again "
                    "one execution at a time",
                    exc,
                )
                await asyncio.to_thread(self._write_each, batch)

    def _requeue(self, batch: list[_Op]) -> None:
        self._pending[:0] = batch
        self._start -= len(batch)

    def _requeue_if_failed(self, done: asyncio.Future[None], batch: list[_Op]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self._requeue(batch)

    def _write(self, batch: list[_Op]) -> None:
        # Reports of one execution are merged into one row (later reports win), written before
        # all step records (their foreign key) in order of first report, so a parent precedes
        # its children; same-shaped rows share one executemany.
        merged: dict[str, dict[str, Any]] = {}
        steps: list[dict[str, Any]] = []
        then: list[Callable[[Connection], None]] = []
        batched: dict[Callable[[Connection, list[Any]], None], list[Any]] = {}
        for kind, values in batch:
            if kind == "step":
                steps.append(values)
            elif kind == "then" and isinstance(values, Batched):
                batched.setdefault(values.write, []).append(values.item)
            elif kind == "then":
                then.append(values)
            else:
                row = merged.get(values["id"])
                merged[values["id"]] = values if row is None else {**row, **values}
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in merged.values():
            shapes.setdefault(tuple(row), []).append(row)
        settle: Callable[[bool], None] | None = None
        try:
            with self._engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
                for columns, rows in shapes.items():
                    update = [k for k in columns if k not in ("id", "flow_id")]
                    upsert(conn, _executions, rows, ["id"], update)
                if steps:
                    _insert_steps.executemany(conn, steps)
                for write in then:
                    write(conn)
                for write_all, items in batched.items():
                    write_all(conn, items)
                if self._on_write is not None:
                    settle = self._on_write(conn)
        except BaseException:
            if settle is not None:
                settle(False)
            raise
        if settle is not None:
            settle(True)
        self.commits += 1

    def _write_each(self, batch: list[_Op]) -> None:
        """Write `batch` one execution at a time; see the class docstring."""
        groups: dict[str | None, list[_Op]] = {}
        for op in batch:
            groups.setdefault(_owner(op), []).append(op)
        unowned = groups.pop(None, [])
        for execution_id, ops in groups.items():
            assert execution_id is not None
            try:
                self._write(ops)
            except Exception as exc:
                if unavailable(exc):
                    raise
                log.exception("the records of execution %s cannot be stored", execution_id)
                self._write_unstorable(execution_id, ops, exc)
        if unowned:
            self._write(unowned)

    def _write_unstorable(self, execution_id: str, ops: list[_Op], exc: Exception) -> None:
        error = {
            "kind": "unstorable",
            "message": "This execution ran, but its records could not be stored: "
            f"{_reason(exc)}. Its step records were dropped.",
            "hint": "Look for a step output the database cannot hold (a huge number, a value "
            "of an unusual type) and change the step that makes it.",
            "step": None,
        }
        row: dict[str, Any] = {}
        for kind, values in ops:
            if kind == "execution":
                row.update(values)
        row = {
            k: row[k] for k in ("id", "flow_id", "parent_execution_id", "started_at") if k in row
        }
        row.update(status="failed", error=error, finished_at=time.time(), output=None)
        then = [op for op in ops if op[0] == "then"]
        try:
            if "flow_id" in row:
                self._write([("execution", row), *then])
            else:
                self._write([*then, ("then", _mark_failed(execution_id, row))])
        except Exception:
            log.exception("execution %s could not even be marked failed", execution_id)
            if then:
                self._write(then)


def _mark_failed(execution_id: str, values: dict[str, Any]) -> Then:
    changes = {k: v for k, v in values.items() if k != "id"}

    def write(conn: Connection) -> None:
        conn.execute(update(_executions).where(_executions.c.id == execution_id).values(changes))

    return write


def _owner(op: _Op) -> str | None:
    kind, values = op
    if kind == "execution":
        return str(values["id"])
    if kind == "step":
        return str(values["execution_id"])
    return values.execution_id if isinstance(values, Batched) else None


def _reason(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return text[:300]
