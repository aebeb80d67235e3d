"""The server's database work per execution, beside the same SQL sent straight to sqlite3.

    .venv/bin/python -m bench.writer [--executions 10000] [--batch 25]

One write transaction of `flowyard serve` for `--batch` finished executions: their execution
rows and six step records each (shaped like bench.ingest's flow: webhook -> branch -> transform
-> HTTP call -> respond), their inbox rows marked done, and the claim of the next `--batch`
queued rows (candidates, lease, execution rows). bench.ingest found this the server's bottleneck:
half of its worker slots wait for these commits. Ours runs the recorder's `_write` with the
dispatcher's finish and claim writes on a database of `--executions` queued webhooks; the
baseline replays the very statements ours sent (captured in an earlier untimed pass) with
sqlite3 on an identical copy, so the ratio is what SQLite costs against what our layers cost.
Ratios, not verdicts: timings never gate a test.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, text

from app.persistence import inbox
from app.persistence.db import DB_FILE_NAME, open_database, session_scope
from app.persistence.recording import (
    Batched,
    Report,
    SqlRecorder,
    finished_report,
    started_report,
    step_report,
)
from app.persistence.repositories import create_instance, publish_version, save_integration
from app.services.inbox_writer import InboxWriter, inbox_values
from components.api import LogLine
from runtime.model import Integration
from runtime.observer import ExecutionInfo, ExecutionResult, Status, StepRecord

HEADERS = {
    "host": "127.0.0.1:8080",
    "user-agent": "Python/3.11 aiohttp/3.13",
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
    "content-length": "80",
    "content-type": "application/json",
}
BODY = b'{"event": "account.updated", "id": "evt_01", "data": {"plan": "pro", "seats": 25}}'
EVENT = {"event": "account.updated", "id": "evt_01", "data": {"plan": "pro", "seats": 25}}
SHAPED = {"event": "account.updated", "id": "evt_01", "plan": "pro", "seats": 25}
LIMITS = inbox.FlowLimits(concurrency=10_000)

Statement = tuple[str, Any, bool]
"""SQL text, its parameters, and whether it ran as an executemany."""


def reports(execution_id: str, now: float) -> list[Report]:
    """What an engine process reports for one execution of bench.ingest's flow."""

    def step(step_id: str, action: str, given: Any, output: Any, **more: Any) -> Report:
        record = StepRecord(
            execution_id, step_id, step_id.title(), action, Status.SUCCEEDED, started_at=now
        )
        record.input, record.output, record.duration_ms = given, output, 0.2
        for key, value in more.items():
            setattr(record, key, value)
        return step_report(record)

    response = {"status": 200, "headers": {}, "body": {"received": "evt_01"}}
    http_out = {
        "status": 200,
        "headers": {"content-type": "application/json", "content-length": "29"},
        "body": {"id": "evt_01", "ok": True},
        "body_base64": False,
    }
    http_in = {"method": "POST", "url": "http://127.0.0.1:9/echo", "body": SHAPED}
    log = [LogLine(now, "info", "POST http://127.0.0.1:9/echo -> 200 in 0.8 ms")]
    result = ExecutionResult(
        execution_id, "order", Status.SUCCEEDED, now, 3.0, output=response, steps_run=5
    )
    return [
        started_report(ExecutionInfo(execution_id, "order", now)),
        step("trigger", "webhook.webhook", None, {"body": EVENT, "headers": HEADERS, "query": {}}),
        step("is_big", "branch.expression", {"groups": [1]}, {"matched": True}, port="true"),
        step("shape", "transform.object", {"fields": SHAPED}, SHAPED),
        step("small", "transform.object", None, None, status=Status.SKIPPED),
        step("notify", "http.request", http_in, http_out, logs=log),
        step("reply", "respond.respond", response, response),
        finished_report(result),
    ]


def _template(directory: Path, executions: int, batch: int) -> None:
    """A database with an active instance and `executions + batch` queued webhooks."""
    engine = open_database(directory)
    with session_scope(engine) as session:
        save_integration(session, Integration(name="Bench"))
        instance_id = create_instance(session, "bench", "Bench", publish_version(session, "Bench"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE instances SET status = 'active', enabled = 1"))
    writer = InboxWriter(engine)
    rows = [
        inbox_values(
            token="t",
            instance_id=instance_id,
            flow_id="order",
            method="POST",
            headers=HEADERS,
            query={},
            body=BODY,
            delivery=None,
            dedup=None,
        )
        for _ in range(executions + batch)
    ]
    for start in range(0, len(rows), 500):
        writer._write_batch(rows[start : start + 500])
    engine.dispose()


def _copy(template: Path, to: Path) -> Path:
    to.mkdir()
    shutil.copy(template / DB_FILE_NAME, to / DB_FILE_NAME)
    return to


def _reports_by_id(engine: Engine) -> dict[str, list[Report]]:
    """Every queued webhook's reports, made before any clock starts (an engine process makes
    them, not the server's writer)."""
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT execution_id FROM inbox")).scalars().all()
    now = time.time()
    return {execution_id: reports(execution_id, now) for execution_id in ids}


def _ours(engine: Engine, executions: int, batch: int, made: dict[str, list[Report]]) -> float:
    """Seconds for `executions` through the server's write path, `batch` per transaction."""
    claimed: list[inbox.Claimed] = []

    def limits(instance_id: str, flow_id: str) -> inbox.FlowLimits:
        return LIMITS

    def claim(conn: Connection) -> None:
        with conn.begin_nested():
            claimed.extend(
                inbox.claim_rows(
                    conn, now=time.time(), lease_seconds=60, limit=batch, limits_of=limits
                )
            )

    def finish(conn: Connection, items: list[inbox.Finish]) -> None:
        inbox.mark_finished(conn, items, now=time.time())

    recorder = SqlRecorder(engine, on_write=claim)
    done = 0
    gc.collect()
    started = time.perf_counter()
    claimed += inbox.claim(engine, now=time.time(), lease_seconds=60, limit=batch, limits_of=limits)
    while done < executions:
        rows, claimed[:] = list(claimed), []
        batch_ops: list[Any] = []
        for row in rows:
            batch_ops += made[row.execution_id]
        batch_ops += [("then", Batched(finish, inbox.Finish(row, "done"))) for row in rows]
        recorder._write(batch_ops)
        done += len(rows)
    return time.perf_counter() - started


def _capture(engine: Engine, executions: int, batch: int) -> list[Statement]:
    """Every statement `_ours` sends (its BEGINs too), as sqlite3 receives them."""
    statements: list[Statement] = []

    def before(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        statements.append((statement, parameters, many))

    made = _reports_by_id(engine)
    event.listen(engine, "before_cursor_execute", before)
    try:
        _ours(engine, executions, batch, made)
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return statements


def _baseline(path: Path, statements: list[Statement]) -> float:
    """Seconds to replay `statements` with sqlite3 alone (WAL, synchronous=NORMAL, like ours);
    each BEGIN commits the transaction before it, as ours did."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    cursor = conn.cursor()
    gc.collect()
    started = time.perf_counter()
    for sql, parameters, many in statements:
        if sql.startswith("BEGIN") and conn.in_transaction:
            cursor.execute("COMMIT")
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters).fetchall()
    if conn.in_transaction:
        cursor.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def measure(root: Path, executions: int, batch: int) -> tuple[float, float]:
    """Seconds of the baseline and of ours, each on its own copy of one template database
    (left in `root / "baseline"` and `root / "ours"`)."""
    template = root / "template"
    _template(template, executions, batch)
    captured = open_database(_copy(template, root / "capture"))
    statements = _capture(captured, executions, batch)
    captured.dispose()
    engine = open_database(_copy(template, root / "ours"))
    ours = _ours(engine, executions, batch, _reports_by_id(engine))
    engine.dispose()
    base = _baseline(_copy(template, root / "baseline") / DB_FILE_NAME, statements)
    return base, ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=25)
    options = parser.parse_args()
    n, batch = options.executions, options.batch
    print(f"database writer: {n:,} executions, {batch} per transaction, 6 step records each")
    with tempfile.TemporaryDirectory() as tmp:
        base, ours = measure(Path(tmp), n, batch)
    print(
        f"  baseline sqlite3, the same statements : {base / n * 1e6:7.0f} us per execution  (1.00)"
    )
    print(
        f"  flowyard write path                   : {ours / n * 1e6:7.0f} us per execution  "
        f"({base / ours:.2f})"
    )


if __name__ == "__main__":
    main()
