"""The SQL of the work queue: claiming, leasing, finishing and recovering inbox rows.

Every function runs its own short transaction on an `Engine` and is synchronous: callers on the
event loop run them in a worker thread. Writes begin with SQLite's write lock (`WRITE_OPTION`), so
two processes sharing one database claim one after the other and never the same row twice.

Row life: `queued` -> (claimed) `running` with `lease_until` -> `done` | `failed` | `dead`. A
row the receiving process runs at once is inserted already `running` with its lease, exactly as a
claim would have left it (`lease_within_limits` applies the claim's per-flow limit, `claimed_from`
gives the worker its `Claimed`): from then on it is a claimed row like any other.
`dead` rows can never run as stored (unparsable body, invalid or missing flow). A `running` row
whose lease expired belongs to a worker that died: it is claimed again and marked `recovered`.
Re-running a row first deletes what its previous attempt recorded under the same execution id
(step records, child executions), so each inbox row ends with exactly one execution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.persistence.db import WRITE_OPTION, advisory_lock
from app.persistence.models import ExecutionRow, InboxRow, InstanceRow, StepRecordRow
from app.persistence.prepared import Prepared, upsert
from app.persistence.repositories import table_of
from runtime.ids import new_execution_id

__all__ = [
    "FINISHED",
    "INBOX_CHANNEL",
    "INSTANCES_CHANNEL",
    "Claimed",
    "Finish",
    "FlowLimits",
    "Retry",
    "claim",
    "claim_rows",
    "claimed_from",
    "crash_orphaned_executions",
    "finish",
    "insert_executions",
    "insert_ignoring_duplicates",
    "lease_within_limits",
    "mark_finished",
    "notify_instance_changed",
    "notify_queued",
    "prepare_execution",
    "queue_copy",
    "renew_leases",
    "requeue",
    "requeue_running",
]

FINISHED = ("done", "failed", "dead")
"""Inbox statuses of rows that will not run again."""

_inbox = table_of(InboxRow)
_instances = table_of(InstanceRow)
_executions = table_of(ExecutionRow)
_steps = table_of(StepRecordRow)


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """How many executions of one flow of one instance may run at once."""

    concurrency: int = 8
    sequential: bool = False


@dataclass(frozen=True, slots=True)
class Claimed:
    """An inbox row a worker now holds the lease of."""

    id: int
    instance_id: str
    flow_id: str
    execution_id: str
    method: str
    headers: dict[str, Any]
    query: dict[str, Any]
    body: bytes
    received_at: float
    source: str
    attempt: int
    recovered: bool
    token: str
    dedup_key: str | None


@dataclass(frozen=True, slots=True)
class Retry:
    """A new inbox row that runs a failed execution again `delay` seconds after it is queued."""

    delay: float
    execution_id: str = ""

    def new_id(self) -> str:
        return self.execution_id or new_execution_id()


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of one claimed row: its final status, and optionally the retry to queue."""

    row: Claimed
    status: str
    retry: Retry | None = None


def _writer(engine: Engine) -> Engine:
    return engine.execution_options(**{WRITE_OPTION: True})


def _dialect_insert(conn: Connection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


INBOX_CHANNEL = "flowyard_inbox"
"""PostgreSQL NOTIFY channel: a transaction that queued rows notifies it when it commits, and
workers on every host LISTEN to claim at once instead of at their next poll."""


def notify_queued(conn: Connection) -> None:
    """Wake the workers listening on PostgreSQL when `conn`'s transaction commits (a no-op on
    SQLite, whose workers live in the one server process that queued the rows)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {INBOX_CHANNEL}"))


INSTANCES_CHANNEL = "flowyard_instances"
"""PostgreSQL NOTIFY channel: an instance changed (deployed, upgraded, disabled, deleted, its config
or connections edited); its payload is the instance id. Every process drops what it cached of it."""


def notify_instance_changed(engine: Engine, instance_id: str) -> None:
    """Tell every process on this PostgreSQL that `instance_id` changed (PostgreSQL only: on
    SQLite the one server process made the change itself)."""
    with engine.begin() as conn:
        conn.execute(
            text("SELECT pg_notify(:channel, :id)"),
            {"channel": INSTANCES_CHANNEL, "id": instance_id},
        )


def insert_ignoring_duplicates(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert an inbox row unless one with its (instance, flow, delivery id) exists; True if new."""
    stmt = (
        _dialect_insert(conn, _inbox)
        .values(values)
        .on_conflict_do_nothing(index_elements=["instance_id", "flow_id", "delivery_id"])
        .returning(_inbox.c.id)
    )
    # What RETURNING gave, not the row count: with psycopg a skipped row still counted as one.
    inserted = conn.execute(stmt).first() is not None
    if inserted:
        notify_queued(conn)
    return inserted


def _candidates_query(status: str) -> Any:
    c, i = _inbox.c, _instances.c
    now: Any = bindparam("now")
    due = (
        or_(c.not_before.is_(None), c.not_before <= now)
        if status == "queued"
        else or_(c.lease_until.is_(None), c.lease_until < now)
    )
    return (
        select(c.id, c.instance_id, c.flow_id, c.status, c.recovered, c.received_at)
        .join(_instances, i.id == c.instance_id)
        .where(c.status == status, due, i.status == "active", i.enabled.is_(True))
        .order_by(c.received_at, c.id)
        .limit(bindparam("scan"))
        # PostgreSQL: rows another transaction is changing (a requeue, a worker finishing an
        # expired lease) are passed over, not waited for; SQLite renders no lock clause.
        .with_for_update(skip_locked=True, of=_inbox)
    )


# The claim path's statements are built once: building one costs more than running it.
_queued = _candidates_query("queued")
_expired = _candidates_query("running")
_running = (
    select(_inbox.c.instance_id, _inbox.c.flow_id, func.count())
    .where(_inbox.c.status == "running", _inbox.c.lease_until >= bindparam("now"))
    .group_by(_inbox.c.instance_id, _inbox.c.flow_id)
)


def _candidates(conn: Connection, now: float, limit: int) -> list[Any]:
    """Ids (and what the limits need) of claimable rows, oldest first.

    Queued rows and expired leases are read by two queries, so SQLite walks
    `ix_inbox_status_received` in order for each (no sort) and reads no body.
    """
    params = {"now": now, "scan": limit}
    found = [*conn.execute(_queued, params), *conn.execute(_expired, params)]
    return sorted(found, key=lambda r: (r.received_at, r.id))


def _running_counts(conn: Connection, now: float) -> dict[tuple[str, str], int]:
    """Rows running under a live lease, per (instance, flow)."""
    return {(r[0], r[1]): int(r[2]) for r in conn.execute(_running, {"now": now})}


def _queued_ahead(conn: Connection, row: Any) -> bool:
    c = _inbox.c
    earlier = or_(
        c.received_at < row.received_at, and_(c.received_at == row.received_at, c.id < row.id)
    )
    found = conn.execute(
        select(c.id)
        .where(
            c.status == "queued",
            c.instance_id == row.instance_id,
            c.flow_id == row.flow_id,
            earlier,
        )
        .limit(1)
    ).first()
    return found is not None


def _rows_in_status(ids: Any, status: Any) -> Any:
    """`id IN ids AND status = status`, found by id.

    Written as is, SQLite's planner (no statistics) walks `ix_inbox_status_received` for the
    status and tests each row's id: a claim of 25 rows read every queued row, 1.8 ms per claim
    with 20,000 queued (~70 us a row), growing with the backlog. `coalesce` over the NOT NULL
    column changes nothing but keeps that index out, so the rows are looked up by id.
    """
    return and_(_inbox.c.id.in_(ids), func.coalesce(_inbox.c.status, "") == status)


_lease = (
    update(_inbox)
    .where(_rows_in_status(bindparam("ids", expanding=True), bindparam("old_status")))
    .values(
        status="running",
        lease_until=bindparam("until"),
        # a row whose lease expired is claimed again as recovered
        recovered=or_(_inbox.c.recovered, _inbox.c.status == "running"),
    )
    .returning(
        *(
            _inbox.c[name]
            for name in (
                "id",
                "instance_id",
                "flow_id",
                "execution_id",
                "method",
                "headers",
                "query",
                "body",
                "received_at",
                "source",
                "attempt",
                "token",
                "dedup_key",
            )
        )
    )
)
"""Lease the picked rows that still have the status they were picked with (one statement per
status, not one per row); returns what a worker needs of each row it leased."""
_mark = Prepared(
    update(_inbox)
    .where(_inbox.c.id == bindparam("row_id"), _inbox.c.status == "running")
    .values(status=bindparam("new_status"), lease_until=None)
)


def claim(
    engine: Engine,
    *,
    now: float,
    lease_seconds: float,
    limit: int,
    limits_of: Callable[[str, str], FlowLimits],
) -> list[Claimed]:
    """Claim up to `limit` runnable rows, oldest first, in one write transaction.

    Runnable: of an active, enabled instance; queued and past `not_before`, or running with an
    expired lease (then marked recovered). Per (instance, flow), `limits_of` caps the rows running
    at once; a sequential flow runs one row at a time, and only the oldest queued one (FIFO).
    """
    with _writer(engine).begin() as conn:
        return claim_rows(
            conn, now=now, lease_seconds=lease_seconds, limit=limit, limits_of=limits_of
        )


def claim_rows(
    conn: Connection,
    *,
    now: float,
    lease_seconds: float,
    limit: int,
    limits_of: Callable[[str, str], FlowLimits],
) -> list[Claimed]:
    """`claim` inside the caller's write transaction (e.g. the one finishing other rows).

    On PostgreSQL, claimers on every host take turns (an advisory lock held until the caller's
    transaction ends), so per-flow limits and FIFO order hold across processes; on SQLite the
    write lock does the same.
    """
    picked: list[Any] = []
    if limit <= 0:
        return []
    advisory_lock(conn, "claim")
    scan = max(4 * limit, 32)
    candidates = _candidates(conn, now, scan)
    running = _running_counts(conn, now) if candidates else {}
    blocked: set[tuple[str, str]] = set()
    for row in candidates:
        if len(picked) >= limit:
            break
        key = (row.instance_id, row.flow_id)
        if key in blocked:
            continue
        limits = limits_of(*key)
        count = running.get(key, 0)
        if limits.sequential:
            if count > 0 or _queued_ahead(conn, row):
                blocked.add(key)
                continue
        elif count >= limits.concurrency:
            blocked.add(key)
            continue
        running[key] = count + 1
        picked.append(row)
    full: dict[int, Any] = {}
    for status in ("queued", "running"):
        ids = [row.id for row in picked if row.status == status]
        if ids:
            params = {"ids": ids, "old_status": status, "until": now + lease_seconds}
            full.update((r.id, r) for r in conn.execute(_lease, params))
    # Another process (PostgreSQL) may have taken a row since it was read: it is not ours.
    flags = {
        row.id: bool(row.recovered) or row.status == "running" for row in picked if row.id in full
    }
    claimed = [
        Claimed(
            id=row.id,
            instance_id=row.instance_id,
            flow_id=row.flow_id,
            execution_id=row.execution_id,
            method=row.method,
            headers=dict(row.headers or {}),
            query=dict(row.query or {}),
            body=bytes(row.body),
            received_at=row.received_at,
            source=row.source,
            attempt=row.attempt,
            recovered=flags[row.id],
            token=row.token,
            dedup_key=row.dedup_key,
        )
        for row in (full[row_id] for row_id in flags)
    ]
    fresh = [item for item in claimed if not item.recovered]
    if fresh:
        insert_executions(
            conn,
            [
                {
                    "id": item.execution_id,
                    "flow_id": item.flow_id,
                    "instance_id": item.instance_id,
                    "status": "queued",
                    "queued_at": item.received_at,
                    "recovered": False,
                    "steps_run": 0,
                }
                for item in fresh
            ],
        )
    for item in claimed:
        if item.recovered:
            prepare_execution(
                conn,
                execution_id=item.execution_id,
                flow_id=item.flow_id,
                instance_id=item.instance_id,
                queued_at=item.received_at,
                recovered=True,
            )
    return claimed


def lease_within_limits(
    conn: Connection, rows: Sequence[dict[str, Any]], limits: Sequence[int], *, now: float
) -> None:
    """Decide, in the transaction that inserts them, which new rows may be stored leased.

    `rows` are inbox values about to be inserted with status "running" and a lease, to run in
    this process at once; `limits` the concurrency of each one's flow. A row whose (instance,
    flow) already has its limit running under live leases (counting the rows before it) is
    switched to "queued" without a lease, so a worker claims it when a slot of its flow frees:
    the limit holds as if every row had been claimed (`claim_rows` takes the same turn).
    """
    advisory_lock(conn, "claim")
    running = _running_counts(conn, now)
    for row, limit in zip(rows, limits, strict=True):
        key = (row["instance_id"], row["flow_id"])
        count = running.get(key, 0)
        if count >= limit:
            row["status"], row["lease_until"] = "queued", None
            continue
        running[key] = count + 1


def claimed_from(values: dict[str, Any]) -> Claimed:
    """The `Claimed` of an inbox row this process inserted already leased to itself; `values`
    are what it inserted, with the row's `id` filled in after the insert."""
    return Claimed(
        id=values["id"],
        instance_id=values["instance_id"],
        flow_id=values["flow_id"],
        execution_id=values["execution_id"],
        method=values["method"],
        headers=values["headers"],
        query=values["query"],
        body=values["body"],
        received_at=values["received_at"],
        source=values["source"],
        attempt=values["attempt"],
        recovered=False,
        token=values["token"],
        dedup_key=values["dedup_key"],
    )


def insert_executions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert new execution rows; an existing one only gets its instance."""
    upsert(conn, _executions, rows, ["id"], ["instance_id"])


def prepare_execution(
    conn: Connection,
    *,
    execution_id: str,
    flow_id: str,
    instance_id: str,
    queued_at: float,
    recovered: bool = False,
) -> None:
    """Make sure the execution row exists with its instance; clear a previous attempt's records.

    A recovered execution keeps its row (marked `recovered`) but loses the step records and child
    executions an interrupted run left, so the re-run records each step once.
    """
    values = {
        "id": execution_id,
        "flow_id": flow_id,
        "instance_id": instance_id,
        "status": "queued",
        "queued_at": queued_at,
        "recovered": recovered,
        "steps_run": 0,
    }
    if not recovered:
        insert_executions(conn, [values])
        return
    conn.execute(delete(_steps).where(_steps.c.execution_id == execution_id))
    conn.execute(delete(_executions).where(_executions.c.parent_execution_id == execution_id))
    stmt = _dialect_insert(conn, _executions).values(values)
    update_set: dict[str, Any] = {"instance_id": stmt.excluded.instance_id}
    update_set.update(
        recovered=True, status="queued", finished_at=None, duration_ms=None, steps_run=0
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=update_set))


def renew_leases(engine: Engine, row_ids: Iterable[int], until: float) -> int:
    """Extend the leases of rows this process is running; returns how many were extended."""
    ids = list(row_ids)
    if not ids:
        return 0
    with _writer(engine).begin() as conn:
        result = conn.execute(
            update(_inbox).where(_rows_in_status(ids, "running")).values(lease_until=until)
        )
    return int(result.rowcount)


def finish(engine: Engine, items: Sequence[Finish], *, now: float) -> None:
    """Mark rows finished and queue their retries, all in one transaction."""
    with _writer(engine).begin() as conn:
        mark_finished(conn, items, now=now)


def mark_finished(conn: Connection, items: Sequence[Finish], *, now: float) -> None:
    """`finish` inside the caller's transaction (e.g. the one committing the rows' records)."""
    if not items:
        return
    c = _inbox.c
    _mark.executemany(conn, [{"row_id": item.row.id, "new_status": item.status} for item in items])
    for item in items:
        if item.retry is None:
            continue
        original = conn.execute(select(_inbox).where(c.id == item.row.id)).first()
        if original is None:  # the instance was deleted meanwhile
            continue
        new_id = item.retry.new_id()
        queue_copy(
            conn,
            original,
            new_id,
            source="retry",
            now=now,
            attempt=original.attempt + 1,
            not_before=now + item.retry.delay,
            dedup_key=original.dedup_key,
        )
        prepare_execution(
            conn,
            execution_id=new_id,
            flow_id=original.flow_id,
            instance_id=original.instance_id,
            queued_at=now,
        )


def queue_copy(
    conn: Connection,
    original: Any,
    new_id: str,
    *,
    source: str,
    now: float,
    attempt: int = 1,
    not_before: float | None = None,
    dedup_key: str | None = None,
) -> None:
    """Queue `original`'s request again as execution `new_id` (a retry or a replay of it)."""
    notify_queued(conn)
    conn.execute(
        insert(_inbox).values(
            token=original.token,
            instance_id=original.instance_id,
            flow_id=original.flow_id,
            execution_id=new_id,
            method=original.method,
            headers=original.headers,
            query=original.query,
            body=original.body,
            delivery_id=None,
            received_at=now,
            status="queued",
            source=source,
            attempt=attempt,
            not_before=not_before,
            dedup_key=dedup_key,
            replay_of=original.execution_id,
        )
    )


def requeue(engine: Engine, row_ids: Iterable[int], *, started: bool = True) -> None:
    """Give claimed rows back to the queue.

    `started`: their run began but could not be recorded, so they re-run marked recovered; else
    they were claimed but never started (a stopping worker's prefetch) and go back as they were.
    """
    ids = list(row_ids)
    if not ids:
        return
    values: dict[str, Any] = {"status": "queued", "lease_until": None}
    if started:
        values["recovered"] = True
    with _writer(engine).begin() as conn:
        conn.execute(update(_inbox).where(_rows_in_status(ids, "running")).values(**values))
        notify_queued(conn)


def requeue_running(engine: Engine) -> int:
    """Start-up recovery: every row left `running` is queued again, marked recovered.

    Assumes this process is the only one working on the database (the default set-up); with
    several processes, rows are recovered by lease expiry instead (`claim`).
    """
    c = _inbox.c
    with _writer(engine).begin() as conn:
        result = conn.execute(
            update(_inbox)
            .where(c.status == "running")
            .values(status="queued", lease_until=None, recovered=True)
        )
    return int(result.rowcount)


def crash_orphaned_executions(engine: Engine, *, now: float) -> int:
    """Mark executions left `running` or `queued` with no inbox row (lifecycle runs) crashed."""
    e, c = _executions.c, _inbox.c
    with _writer(engine).begin() as conn:
        rows = conn.execute(
            select(e.id).where(e.status.in_(("running", "queued")), e.parent_execution_id.is_(None))
        ).all()
        ids = [r.id for r in rows]
        if not ids:
            return 0
        queued: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            queued.update(
                r.execution_id
                for r in conn.execute(select(c.execution_id).where(c.execution_id.in_(chunk)))
            )
        orphans = [i for i in ids if i not in queued]
        error = {
            "kind": "crashed",
            "message": "The server stopped while this execution was running.",
            "hint": "Run it again; deploy and tear-down runs are repeated by redeploying.",
            "step": None,
        }
        for start in range(0, len(orphans), 500):
            chunk = orphans[start : start + 500]
            conn.execute(
                update(_executions)
                .where(e.id.in_(chunk))
                .values(status="crashed", finished_at=now, error=error)
            )
            conn.execute(
                update(_executions)
                .where(e.parent_execution_id.in_(chunk), e.status.in_(("running", "queued")))
                .values(status="crashed", finished_at=now, error=error)
            )
    return len(orphans)
