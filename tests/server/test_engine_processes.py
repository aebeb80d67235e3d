"""Executions in engine processes: what runs there, what the server keeps, and what a lost
engine process leaves (app.services.engine_pool)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from app.persistence.db import session_scope
from app.persistence.models import InstanceStateRow
from app.persistence.repositories import set_config_values
from app.services import engine_pool
from app.services.dispatcher import WorkerPool
from app.services.hub import Hub
from tests.server.test_dispatcher_support import (
    GOLDEN_COMPONENTS,
    all_finished,
    deploy,
    enqueue,
    execution,
    inbox_rows,
    make_hub,
    step_records,
    wait_until,
    webhook_flow,
)

PID = {"id": "pid", "action": "testkit.process"}
ENGINES: dict[str, Any] = {"engine_processes": 1, "components_dir": GOLDEN_COMPONENTS}


def _engine_children() -> list[int]:
    """Engine processes this test process started that are still running."""
    children = []
    for task in Path("/proc/self/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return [
        pid
        for pid in children
        if b"app.services.engine_child" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


async def _started(hub: Hub) -> WorkerPool:
    pool = WorkerPool(hub, poll_interval=0.05)
    await pool.start()
    return pool


async def test_executions_run_in_the_engine_process_and_the_server_records_them(
    tmp_path: Path,
) -> None:
    async with make_hub(tmp_path, **ENGINES) as hub:
        echo = {"id": "echo", "action": "testkit.echo", "inputs": {"value": "{{ trigger.body }}"}}
        instance_id = deploy(hub.db, [webhook_flow("main", [echo, PID])])
        ids = [enqueue(hub.db, instance_id, "main", {"n": n}) for n in range(5)]
        pool = await _started(hub)
        try:
            assert pool.engines is not None
            await wait_until(all_finished(hub.db), 30)
            pids = pool.engines.pids
        finally:
            await pool.stop()
        assert [r.status for r in inbox_rows(hub.db)] == ["done"] * 5
        for n, execution_id in enumerate(ids):
            row = execution(hub.db, execution_id)
            assert row is not None and row.status == "succeeded"
            assert row.instance_id == instance_id
            assert row.output in pids and row.output != os.getpid()
            steps = step_records(hub.db, execution_id)
            assert [(s.step_id, s.status) for s in steps] == [
                ("trigger", "succeeded"),
                ("echo", "succeeded"),
                ("pid", "succeeded"),
            ]
            assert steps[1].output == {"n": n}
            assert steps[1].logs[0]["message"] == f"echo {{'n': {n}}}"


async def test_reply_comes_from_the_engine_process_before_the_run_ends(tmp_path: Path) -> None:
    async with make_hub(tmp_path, **ENGINES) as hub:
        respond = {
            "id": "reply",
            "action": "respond.respond",
            "inputs": {"status": 201, "body": "{{ trigger.body.challenge }}"},
        }
        nap = {"id": "nap", "action": "testkit.sleep", "inputs": {"seconds": 2.0}}
        instance_id = deploy(hub.db, [webhook_flow("sync", [respond, nap])])
        pool = await _started(hub)
        try:
            execution_id = enqueue(hub.db, instance_id, "sync", {"challenge": "abc"})
            pool.notify()
            outcome = await pool.wait_for_reply(execution_id, 15)
            assert outcome is not None and outcome.response is not None
            assert (outcome.response.status, outcome.response.body) == (201, "abc")
            assert outcome.result is None  # the nap is still running
            await wait_until(all_finished(hub.db), 15)
        finally:
            await pool.stop()


async def test_state_written_in_the_engine_process_is_stored_by_the_server(
    tmp_path: Path,
) -> None:
    async with make_hub(tmp_path, **ENGINES) as hub:
        steps = [
            {"id": "read", "action": "state.get", "inputs": {"key": "seen", "default": 0}},
            {
                "id": "write",
                "action": "state.set",
                "inputs": {"key": "seen", "value": "{{ steps.read.output.value + 1 }}"},
            },
        ]
        instance_id = deploy(hub.db, [webhook_flow("count", steps, sequential=True)])
        ids = [enqueue(hub.db, instance_id, "count", {}) for _ in range(3)]
        pool = await _started(hub)
        try:
            await wait_until(all_finished(hub.db), 30)
        finally:
            await pool.stop()
        assert [step_records(hub.db, i)[2].output["value"] for i in ids] == [1, 2, 3]
        with session_scope(hub.db, write=False) as session:
            stored = list(session.exec(select(InstanceStateRow)))
        assert [(s.instance_id, s.key, s.value) for s in stored] == [(instance_id, "seen", 3)]


async def test_a_changed_instance_reaches_the_engine_process(tmp_path: Path) -> None:
    async with make_hub(tmp_path, **ENGINES) as hub:
        echo = {
            "id": "echo",
            "action": "testkit.echo",
            "inputs": {"value": "{{ config.greeting }}"},
        }
        config = [{"key": "greeting", "type": "string"}]
        instance_id = deploy(
            hub.db, [webhook_flow("main", [echo])], config=config, values={"greeting": "hi"}
        )
        pool = await _started(hub)
        try:
            first = enqueue(hub.db, instance_id, "main", {})
            pool.notify()
            await wait_until(all_finished(hub.db), 30)
            with session_scope(hub.db) as session:
                set_config_values(session, instance_id, {"greeting": "hello"})
            pool.invalidate(instance_id)
            second = enqueue(hub.db, instance_id, "main", {})
            pool.notify()
            await wait_until(all_finished(hub.db), 30)
        finally:
            await pool.stop()
        outputs = [execution(hub.db, i).output for i in (first, second)]  # type: ignore[union-attr]
        assert outputs == ["hi", "hello"]


async def test_a_killed_engine_process_crashes_its_runs_and_is_replaced(tmp_path: Path) -> None:
    async with make_hub(tmp_path, **ENGINES) as hub:
        nap = {"id": "nap", "action": "testkit.sleep", "inputs": {"seconds": 30.0}}
        instance_id = deploy(hub.db, [webhook_flow("slow", [nap]), webhook_flow("pid", [PID])])
        pool = await _started(hub)
        try:
            assert pool.engines is not None
            slow = enqueue(hub.db, instance_id, "slow", {})
            pool.notify()
            await wait_until(lambda: bool(pool.running), 30)
            await wait_until(lambda: bool(pool.engines and pool.engines.pids), 30)
            [killed] = pool.engines.pids
            os.kill(killed, signal.SIGKILL)
            await wait_until(all_finished(hub.db), 30)
            # Runs arriving together while the process is replaced start one process, not many.
            after, *_ = [enqueue(hub.db, instance_id, "pid", {}) for _ in range(8)]
            pool.notify()
            await wait_until(all_finished(hub.db), 30)
            assert _engine_children() == pool.engines.pids
        finally:
            await pool.stop()
        lost = execution(hub.db, slow)
        assert lost is not None and lost.status == "crashed"
        assert lost.error is not None and lost.error["kind"] == "crashed"
        assert "engine process running it exited (code -9)" in lost.error["message"]
        assert [r.status for r in inbox_rows(hub.db)] == ["failed"] + ["done"] * 8
        replaced = execution(hub.db, after)
        assert replaced is not None and replaced.status == "succeeded"
        assert replaced.output not in (killed, os.getpid())


async def test_engine_processes_that_cannot_start_leave_the_runs_to_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A Python that exits at once: every engine process dies before it is ready.
    monkeypatch.setattr(
        engine_pool, "_python", lambda: [sys.executable, "-c", "raise SystemExit(3)"]
    )
    async with make_hub(tmp_path, **ENGINES) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [PID])])
        pool = await _started(hub)
        try:
            assert pool.engines is not None
            await wait_until(lambda: not pool.engines or not pool.engines.available, 30)
            execution_id = enqueue(hub.db, instance_id, "main", {})
            pool.notify()
            await wait_until(all_finished(hub.db), 30)
        finally:
            await pool.stop()
        row = execution(hub.db, execution_id)
        assert row is not None and (row.status, row.output) == ("succeeded", os.getpid())
        assert "exited (code 3) before it was ready" in caplog.text


async def test_a_result_that_cannot_leave_the_engine_process_fails_only_its_execution(
    tmp_path: Path,
) -> None:
    async with make_hub(tmp_path, **ENGINES) as hub:
        opaque = {"id": "opaque", "action": "testkit.opaque"}
        instance_id = deploy(hub.db, [webhook_flow("bad", [opaque]), webhook_flow("good", [PID])])
        bad = enqueue(hub.db, instance_id, "bad", {})
        good = enqueue(hub.db, instance_id, "good", {})
        pool = await _started(hub)
        try:
            await wait_until(all_finished(hub.db), 30)
        finally:
            await pool.stop()
        lost = execution(hub.db, bad)
        assert lost is not None and lost.status == "crashed"
        assert lost.error is not None
        assert "a step's output holds a value that is not JSON data" in lost.error["message"]
        fine = execution(hub.db, good)
        assert fine is not None and fine.status == "succeeded"
