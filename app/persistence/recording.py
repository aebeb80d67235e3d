"""The engine's database-backed services: instance state and the execution recorder.

Both work on an `Engine` (not a session): they run their own short transactions in a worker thread
(`asyncio.to_thread`) so the event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Connection, Engine, Table, and_, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from app.persistence.db import WRITE_OPTION
from app.persistence.models import INSTANCE_SCOPE, ExecutionRow, InstanceStateRow, StepRecordRow
from app.persistence.repositories import table_of
from components.api import Response
from runtime.observer import ExecutionInfo, ExecutionResult, StepRecord

__all__ = ["SqlRecorder", "SqlStateBackend"]


def _upsert(
    conn: Connection, table: Table, values: dict[str, Any], keys: list[str], update: list[str]
) -> None:
    """INSERT, or UPDATE the `update` columns of the row with the same `keys` (portable upsert)."""
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(table).values(values)
    else:
        stmt = sqlite.insert(table).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={name: stmt.excluded[name] for name in update}
    )
    conn.execute(stmt)


def _json(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    # Outputs are JSON by contract; anything else is stored as its string form, never dropped.
    data = to_jsonable_python(value, fallback=str)
    return _mask(data, secrets) if secrets else data


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {_mask(k, secrets): _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, secrets) for v in value]
    return value


MASK = "***"


class SqlStateBackend:
    """`runtime.state.StateBackend` over the `instance_state` table. Values are stored as JSON."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
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
            _upsert(
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


_Op = tuple[str, dict[str, Any]]


class SqlRecorder:
    """`runtime.observer.Observer` that stores executions and finished step records in batches.

    Batching contract:
    - The observer methods only append to an in-memory buffer (no I/O, never blocks the engine).
    - Nothing is durable until `await flush()` returns: it writes everything buffered so far in
      one transaction (one commit), in the order it was reported, from a worker thread. Calls are
      serialised; reports arriving during a flush go to the next one, so concurrent executions
      that each flush when they end share commits (group commit).
    - If the write fails, the batch is put back at the front of the buffer and the error raised;
      the next `flush()` retries it.
    - Stored: execution start (status `running`, parent) and end (status, times, error, output,
      steps run), and every finished step record. `step_started` and `response_ready` are not
      stored (live status and sync replies travel another way).
    - The execution row is upserted by id: a host that inserted it first (with its instance and
      queue time, at ingest) keeps those columns.
    - Secrets: the engine redacts secret-typed inputs and log lines, but a step's output (or a
      literal input) may still contain a connection's value. A host that calls
      `add_secrets(execution_id, values)` before the run gets every occurrence of those values
      (4 characters or longer) masked as `***` in everything this recorder writes for that
      execution and its child executions (`<id>.<n>`).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pending: list[_Op] = []
        self._lock = asyncio.Lock()
        self._secrets: dict[str, tuple[str, ...]] = {}
        self.commits = 0
        """Transactions committed so far (for tests and metrics)."""

    @property
    def pending(self) -> int:
        """Reports buffered and not yet written."""
        return len(self._pending)

    def add_secrets(self, execution_id: str, values: Iterable[str]) -> None:
        """Mask `values` in what is stored for this execution; see the class docstring."""
        found = {v for v in values if len(v) >= 4}
        # Longest first, so a secret containing another is masked whole.
        known = set(self._secrets.get(execution_id, ()))
        self._secrets[execution_id] = tuple(sorted(found | known, key=len, reverse=True))

    def _secrets_of(self, execution_id: str) -> tuple[str, ...]:
        return self._secrets.get(execution_id.split(".", 1)[0], ())

    def execution_started(self, info: ExecutionInfo) -> None:
        self._pending.append(
            (
                "execution",
                {
                    "id": info.execution_id,
                    "flow_id": info.flow_id,
                    "parent_execution_id": info.parent_execution_id,
                    "status": "running",
                    "started_at": info.started_at,
                },
            )
        )

    def step_started(self, record: StepRecord) -> None:
        pass

    def step_finished(self, record: StepRecord) -> None:
        self._pending.append(
            (
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
                },
            )
        )

    def response_ready(self, execution_id: str, response: Response) -> None:
        pass

    def execution_finished(self, result: ExecutionResult) -> None:
        self._pending.append(
            (
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
        )

    async def flush(self) -> None:
        """Write everything reported so far in one transaction; see the class docstring."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            write = asyncio.ensure_future(asyncio.to_thread(self._write, batch))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                # The thread cannot be stopped and may still commit: requeue only if it fails,
                # so a cancelled flush never writes a batch twice.
                write.add_done_callback(lambda done: self._requeue_if_failed(done, batch))
                raise
            except Exception:
                self._pending[:0] = batch
                raise

    def _requeue_if_failed(self, done: asyncio.Future[None], batch: list[_Op]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self._pending[:0] = batch

    def _write(self, batch: list[_Op]) -> None:
        executions, steps = table_of(ExecutionRow), table_of(StepRecordRow)
        with self._engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            rows: list[dict[str, Any]] = []
            for kind, values in batch:
                if kind == "step":
                    rows.append(self._step_row(values))
                    continue
                if rows:  # keep report order: an execution row precedes its step records
                    conn.execute(insert(steps), rows)
                    rows = []
                secrets = self._secrets_of(values["id"])
                if values.get("error") is not None:
                    values = {**values, "error": _json(asdict(values["error"]), secrets)}
                if "output" in values:
                    values = {**values, "output": _json(values["output"], secrets)}
                update = [k for k in values if k not in ("id", "flow_id")]
                _upsert(conn, executions, values, ["id"], update)
            if rows:
                conn.execute(insert(steps), rows)
        self.commits += 1
        for kind, values in batch:
            if kind == "execution" and "finished_at" in values and "." not in values["id"]:
                self._secrets.pop(values["id"], None)

    def _step_row(self, values: dict[str, Any]) -> dict[str, Any]:
        secrets = self._secrets_of(values["execution_id"])
        error = values["error"]
        return {
            **values,
            "input": _json(values["input"], secrets),
            "output": _json(values["output"], secrets),
            "error": _json(asdict(error), secrets) if error is not None else None,
            "logs": [_json(asdict(line), secrets) for line in values["logs"]],
        }
