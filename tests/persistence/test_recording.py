"""The engine's SQL services: instance state by scope, and step records written in batches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, text
from sqlmodel import Session, col

from app.persistence.db import session_scope
from app.persistence.models import ExecutionRow, StepRecordRow
from app.persistence.recording import Batched, SqlRecorder, SqlStateBackend, step_report
from app.persistence.repositories import create_instance, publish_version, save_integration
from components.api import Connection, TriggerEvent
from components.registry import Registry, default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import make_http_client
from runtime.model import Flow, Integration
from runtime.observer import ErrorInfo, ExecutionInfo, ExecutionResult, Status, StepRecord
from runtime.state import BoundState
from tests.stored import stored_bytes

GOLDEN_COMPONENTS = Path(__file__).parent.parent / "golden" / "components"
SECRET = "hunter2-super-secret-7731"
ITEMS = 100


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry(GOLDEN_COMPONENTS)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as client:
        yield client


@pytest.fixture
def instance_id(engine: Engine) -> str:
    with session_scope(engine) as session:
        save_integration(session, Integration(name="Demo"))
        return create_instance(session, "demo", "Demo", publish_version(session, "Demo"))


def loop_flow() -> Flow:
    return Flow.model_validate(
        {
            "id": "main",
            "trigger": {"id": "trigger", "action": "manual.manual"},
            "steps": [
                {"id": "each", "action": "loop.items", "inputs": {"items": "{{ trigger.body }}"}},
                {
                    "id": "double",
                    "action": "transform.object",
                    "inputs": {"fields": {"i": "{{ loop.index }}", "v": "{{ loop.item * 2 }}"}},
                },
                {
                    "id": "say",
                    "action": "testkit.echo",
                    "inputs": {"value": f"token is {SECRET}"},
                },
                {
                    "id": "put",
                    "action": "state.set",
                    "inputs": {"key": "count", "value": "{{ steps.each.output.count }}"},
                },
            ],
            "edges": [
                {"from": "trigger", "to": "each"},
                {"from": "each", "port": "body", "to": "double"},
                {"from": "each", "port": "done", "to": "say"},
                {"from": "say", "to": "put"},
            ],
        }
    )


async def test_state_backend_gets_sets_and_deletes_by_scope(
    engine: Engine, instance_id: str
) -> None:
    backend = SqlStateBackend(engine)
    state = BoundState(backend, instance_id, "main")
    other_flow = BoundState(backend, instance_id, "other")
    value = {"cursor": [1, 2.5, "x", None, True], "nested": {"a": {}}}
    await state.set("k", value)
    await state.set("k", "flow value", scope="flow")
    assert await state.get("k") == value
    assert await other_flow.get("k") == value  # instance-wide keys are shared by flows
    assert await state.get("k", scope="flow") == "flow value"
    assert await other_flow.get("k", "none", scope="flow") == "none"
    await state.set("k", 2)  # overwrite in place
    assert await state.get("k") == 2
    await state.set("nothing", None)
    assert await backend.load(instance_id, None, "nothing") == (True, None)
    await state.delete("k")
    assert await state.get("k", "gone") == "gone"
    assert await state.get("k", scope="flow") == "flow value"
    await state.delete("k", scope="flow")
    await state.delete("never-set")
    assert await backend.load(instance_id, "main", "k") == (False, None)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM instance_state")).scalar() == 1


async def test_recorder_writes_a_whole_execution_in_one_commit(
    engine: Engine,
    data_dir: Path,
    instance_id: str,
    registry: Registry,
    http: httpx.AsyncClient,
) -> None:
    recorder = SqlRecorder(engine)
    context = RunContext(
        registry=registry,
        http=http,
        execution_id="exec-1",
        instance_id=instance_id,
        state=SqlStateBackend(engine),
        connections={"crm": Connection("crm", "bearer", {"token": SecretStr(SECRET)})},
    )
    with session_scope(engine) as session:  # the host inserts the row at ingest
        session.add(ExecutionRow(id="exec-1", flow_id="main", instance_id=instance_id))
    result = await run_flow(loop_flow(), TriggerEvent(body=list(range(ITEMS))), context, recorder)
    assert result.status == Status.SUCCEEDED
    records = ITEMS + 4  # trigger, each iteration of double, each, say, put
    assert recorder.pending == records + 2  # and the execution's start and end
    assert recorder.commits == 0  # nothing is written before flush()

    await recorder.flush()
    assert (recorder.commits, recorder.pending) == (1, 0)
    await recorder.flush()
    assert recorder.commits == 1  # an empty flush does not commit

    with Session(engine) as session:
        execution = session.get(ExecutionRow, "exec-1")
        assert execution is not None
        assert (execution.status, execution.instance_id) == ("succeeded", instance_id)
        assert execution.steps_run == records
        assert execution.finished_at is not None
        rows = list(session.scalars(select(StepRecordRow).order_by(col(StepRecordRow.id))))
    assert len(rows) == records
    doubles = [r for r in rows if r.step_id == "double"]
    assert [r.iteration_path for r in doubles] == [[i] for i in range(ITEMS)]
    assert doubles[7].output == {"i": 7, "v": 14}
    each = next(r for r in rows if r.step_id == "each")
    assert each.port == "done"
    assert each.output["count"] == ITEMS
    say = next(r for r in rows if r.step_id == "say")
    assert say.logs[0]["message"] == "echo token is ***"
    assert say.input["value"] == say.output == "token is ***"
    assert isinstance(say.logs[0]["ts"], float)
    assert await SqlStateBackend(engine).load(instance_id, None, "count") == (True, ITEMS)

    stored = stored_bytes(engine, data_dir)
    assert b"token is ***" in stored  # what was stored shows: the redacted record
    assert SECRET.encode() not in stored


class _Odd:
    def __str__(self) -> str:
        return "odd thing"


async def test_recorder_stores_errors_as_json_and_keeps_a_failed_batch(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = SqlRecorder(engine)
    recorder.execution_started(ExecutionInfo("e2", "main", 100.0))
    failing = StepRecord("e2", "s", "S", "x.y", Status.FAILED, started_at=100.0)
    failing.error = ErrorInfo("step_failed", "Step 'S' failed.", hint="Fix it.", step="s")
    # not JSON: stored as text (infinity as null, as JSON.stringify does), never lost
    failing.output = {"when": b"bytes", "what": _Odd(), 7: float("inf")}
    recorder.step_finished(failing)

    def broken(batch: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(recorder, "_write", broken)
    with pytest.raises(OSError, match="disk full"):
        await recorder.flush()
    assert recorder.pending == 2
    monkeypatch.undo()
    await recorder.flush()
    with engine.connect() as conn:
        error, output = conn.execute(text("SELECT error, output FROM step_records")).one()
    assert as_json(error) == {
        "kind": "step_failed",
        "message": "Step 'S' failed.",
        "hint": "Fix it.",
        "step": "s",
    }
    assert as_json(output) == {"when": "bytes", "what": "odd thing", "7": None}


async def test_a_cancelled_flush_writes_its_batch_exactly_once(engine: Engine) -> None:
    recorder = SqlRecorder(engine)
    recorder.execution_started(ExecutionInfo("e3", "main", 100.0))
    for n in range(50):
        recorder.step_finished(StepRecord("e3", f"s{n}", "", "x.y", Status.SUCCEEDED))
    flushing = asyncio.ensure_future(recorder.flush())
    await asyncio.sleep(0)  # the write has started in its thread
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    await recorder.flush()
    for _ in range(500):  # the cancelled write still finishes in its thread
        if recorder.commits:
            break
        await asyncio.sleep(0.01)
    await recorder.flush()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM step_records")).scalar() == 50
    assert recorder.pending == 0


async def test_batched_writes_share_one_call_in_their_transaction(engine: Engine) -> None:
    recorder = SqlRecorder(engine)
    calls: list[tuple[str, list[Any]]] = []
    in_transaction: list[bool] = []

    def mark(conn: Any, items: list[Any]) -> None:
        in_transaction.append(conn.in_transaction())
        calls.append(("mark", items))

    def note(conn: Any, items: list[Any]) -> None:
        calls.append(("note", items))

    recorder.execution_started(ExecutionInfo("e4", "main", 100.0))
    recorder.step_finished(StepRecord("e4", "s", "", "x.y", Status.SUCCEEDED))
    first = asyncio.ensure_future(recorder.flush())
    await asyncio.sleep(0)  # its write holds the recorder; the next ones queue up behind it
    queued = [
        asyncio.ensure_future(recorder.flush(then=then))
        for then in (Batched(mark, "a"), Batched(note, "x"), Batched(mark, "b"))
    ]
    await asyncio.gather(first, *queued)
    assert calls == [("mark", ["a", "b"]), ("note", ["x"])]
    assert in_transaction == [True]
    assert recorder.commits == 2
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM step_records")).scalar() == 1


async def test_a_lone_surrogate_is_stored_as_a_replacement_character(engine: Engine) -> None:
    # JSON.stringify emits "\ud800" for half an emoji; UTF-8 cannot hold it. It used to fail the
    # whole batch, which was put back at the head of the queue and failed again forever.
    recorder = SqlRecorder(engine)
    recorder.execution_started(ExecutionInfo("e5", "main", 100.0))
    record = StepRecord("e5", "s", "S", "x.y", Status.SUCCEEDED, started_at=100.0)
    record.output = {"a": "\ud800", "\udc00key": ["ok \ud83d\ude00"]}
    recorder.step_finished(record)
    await recorder.flush()
    assert recorder.pending == 0
    with engine.connect() as conn:
        output = conn.execute(text("SELECT output FROM step_records")).scalar_one()
    assert as_json(output) == {"a": "\ufffd", "\ufffdkey": ["ok \U0001f600"]}


async def test_a_record_the_database_refuses_fails_only_its_own_execution(
    engine: Engine,
) -> None:
    recorder = SqlRecorder(engine)
    finished: list[Any] = []

    def mark(conn: Any, items: list[Any]) -> None:
        finished.extend(items)

    for name in ("good1", "bad", "good2"):
        recorder.execution_started(ExecutionInfo(name, "main", 100.0))
        record = StepRecord(name, "s", "S", "x.y", Status.SUCCEEDED, started_at=100.0)
        record.output = {"n": name}
        recorder.step_finished(record)
    # A value no column can bind stands for any record the database refuses.
    recorder.report([("step", {**step_report_values("bad"), "started_at": object()})])
    for name in ("good1", "bad", "good2"):
        recorder.execution_finished(
            ExecutionResult(name, "main", Status.SUCCEEDED, 100.0, 5.0, output={"done": name})
        )
    await asyncio.gather(
        *(recorder.flush(then=Batched(mark, name, name)) for name in ("good1", "bad", "good2"))
    )
    assert recorder.pending == 0
    assert sorted(finished) == ["bad", "good1", "good2"]  # every queue row is settled
    with engine.connect() as conn:
        rows: dict[str, str] = dict(conn.execute(text("SELECT id, status FROM executions")).all())
        error = conn.execute(text("SELECT error FROM executions WHERE id = 'bad'")).scalar_one()
        steps = conn.execute(text("SELECT execution_id FROM step_records")).scalars().all()
    assert rows == {"good1": "succeeded", "bad": "failed", "good2": "succeeded"}
    assert as_json(error)["kind"] == "unstorable"
    assert "could not be stored" in as_json(error)["message"]
    assert sorted(steps) == ["good1", "good2"]
    # The recorder is not wedged: the next execution is written normally.
    recorder.execution_started(ExecutionInfo("later", "main", 200.0))
    await recorder.flush()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM executions WHERE id = 'later'")).scalar()


def step_report_values(execution_id: str) -> dict[str, Any]:
    values: dict[str, Any] = step_report(
        StepRecord(execution_id, "t", "T", "x.y", Status.SUCCEEDED)
    )[1]
    return values


def as_json(value: Any) -> Any:
    """A JSON column read with plain SQL: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value
