"""The worker pool, in process: claiming, ordering, limits, leases, recovery, retries, replies."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import insert

from app.persistence.db import session_scope
from app.persistence.models import ExecutionRow, InstanceRow, StepRecordRow
from app.persistence.repositories import table_of
from app.services.dispatcher import WorkerPool
from components.api import TriggerEvent
from runtime.observer import Status
from tests.server.test_dispatcher_support import (
    ECHO,
    all_finished,
    deploy,
    enqueue,
    execution,
    executions,
    inbox_rows,
    make_hub,
    run_all,
    sleep_step,
    step_records,
    wait_until,
    webhook_flow,
)


async def test_a_queued_row_runs_and_its_records_are_stored(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [ECHO])])
        execution_id = enqueue(hub.db, instance_id, "main", {"n": 7})
        await run_all(hub)
        assert [r.status for r in inbox_rows(hub.db)] == ["done"]
        row = execution(hub.db, execution_id)
        assert row is not None
        assert (row.status, row.instance_id, row.output, row.recovered) == (
            "succeeded",
            instance_id,
            7,
            False,
        )
        assert [(s.step_id, s.status) for s in step_records(hub.db, execution_id)] == [
            ("trigger", "succeeded"),
            ("echo", "succeeded"),
        ]


async def test_sequential_flow_runs_one_at_a_time_in_arrival_order(tmp_path: Path) -> None:
    async with make_hub(tmp_path, workers=4) as hub:
        flow = webhook_flow("main", [sleep_step(0.05), ECHO], sequential=True)
        instance_id = deploy(hub.db, [flow])
        base = time.time() - 100
        # Inserted out of order: arrival time, not insertion order, decides.
        ids = {
            n: enqueue(hub.db, instance_id, "main", {"n": n}, received_at=base + n)
            for n in (3, 1, 4, 0, 2)
        }
        await run_all(hub)
        runs = [execution(hub.db, ids[n]) for n in range(5)]
        assert all(r is not None and r.status == "succeeded" for r in runs)
        spans = [(r.started_at, r.finished_at) for r in runs if r is not None]
        for (_, previous_end), (start, _) in itertools.pairwise(spans):
            assert previous_end is not None and start is not None
            assert start >= previous_end


async def test_concurrency_limit_is_respected(tmp_path: Path) -> None:
    async with make_hub(tmp_path, workers=8) as hub:
        flow = webhook_flow("main", [sleep_step(0.25)], concurrency=2)
        instance_id = deploy(hub.db, [flow])
        for n in range(6):
            enqueue(hub.db, instance_id, "main", {"n": n})
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        most = 0
        try:
            while not all_finished(hub.db)():
                most = max(most, len(pool.running))
                await asyncio.sleep(0.01)
        finally:
            await pool.stop()
        spans = [(r.started_at or 0, r.finished_at or 0) for r in executions(hub.db)]
        overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        # The limit is on executions running at once (their recorded spans). `pool.running` also
        # holds a finished run until the group commit that records it, so it may briefly show one
        # more while the next run has started.
        assert overlap == 2
        assert 2 <= most <= 3


async def test_expired_lease_is_claimed_again_and_marked_recovered(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [ECHO])])
        # Another process claimed it and died: running, lease long expired.
        execution_id = enqueue(
            hub.db, instance_id, "main", {"n": 1}, status="running", lease_until=time.time() - 5
        )
        await run_all(hub, recover=False)
        (row,) = inbox_rows(hub.db)
        assert (row.status, row.recovered) == ("done", True)
        run = execution(hub.db, execution_id)
        assert run is not None and (run.status, run.recovered) == ("succeeded", True)


async def test_live_lease_of_another_process_is_left_alone(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [ECHO])])
        enqueue(hub.db, instance_id, "main", {}, status="running", lease_until=time.time() + 60)
        pool = WorkerPool(hub, poll_interval=0.05, recover=False)
        await pool.start()
        await asyncio.sleep(0.3)
        await pool.stop()
        assert [r.status for r in inbox_rows(hub.db)] == ["running"]


# SQLite only: a SQLite server is alone on its file and re-runs what it left running at start-up;
# on PostgreSQL other processes may be running those rows: they come back by lease expiry
# (tests/server/test_scale_out.py kills a worker and checks it).
@pytest.mark.sqlite_only
async def test_restart_reruns_a_crashed_row_once_without_duplicate_records(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [ECHO])])
        execution_id = enqueue(
            hub.db, instance_id, "main", {"n": 5}, status="running", lease_until=time.time() + 60
        )
        lifecycle_id = uuid.uuid4().hex
        now = time.time()
        with session_scope(hub.db) as session:
            # What a SIGKILL mid-run left: a running execution with some step records flushed,
            # and a deploy-flow run (no inbox row) that never finished.
            conn = session.connection()
            conn.execute(
                insert(table_of(ExecutionRow)),
                [
                    {"id": execution_id, "flow_id": "main", "status": "running", "started_at": now},
                    {"id": lifecycle_id, "flow_id": "main", "status": "running", "started_at": now},
                ],
            )
            conn.execute(
                insert(table_of(StepRecordRow)),
                [
                    {
                        "execution_id": execution_id,
                        "step_id": step,
                        "action": "x",
                        "status": "succeeded",
                        "started_at": now,
                        "duration_ms": 1.0,
                        "iteration_path": [],
                        "logs": [],
                    }
                    for step in ("trigger", "echo")
                ],
            )
        await run_all(hub)
        (row,) = inbox_rows(hub.db)
        assert (row.status, row.recovered) == ("done", True)
        run = execution(hub.db, execution_id)
        assert run is not None
        assert (run.status, run.recovered, run.output) == ("succeeded", True, 5)
        assert [s.step_id for s in step_records(hub.db, execution_id)] == ["trigger", "echo"]
        orphan = execution(hub.db, lifecycle_id)
        assert orphan is not None and orphan.status == "crashed"


async def test_stopped_run_is_rerun_on_next_start(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [sleep_step(0.4), ECHO])])
        execution_id = enqueue(hub.db, instance_id, "main", {"n": 2})
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        await wait_until(lambda: bool(pool.running))
        await pool.stop(grace=0.05)
        # handed back at once (another worker may take it), to re-run as recovered
        assert [(r.status, r.recovered) for r in inbox_rows(hub.db)] == [("queued", True)]
        hub.dispatcher = None
        again = WorkerPool(hub, poll_interval=0.05)
        await again.start()
        try:
            await wait_until(all_finished(hub.db))
        finally:
            await again.stop()
        run = execution(hub.db, execution_id)
        assert run is not None and (run.status, run.recovered) == ("succeeded", True)
        assert [s.step_id for s in step_records(hub.db, execution_id)] == [
            "trigger",
            "nap",
            "echo",
        ]


async def test_failed_execution_is_retried_as_a_new_execution_after_backoff(
    tmp_path: Path,
) -> None:
    async with make_hub(tmp_path) as hub:
        retry = {"max_attempts": 2, "backoff": "fixed", "delay": 0.3, "jitter": False}
        flow = webhook_flow(
            "main",
            [{"id": "boom", "action": "testkit.fail", "inputs": {"message": "down"}}],
            execution_retry=retry,
        )
        instance_id = deploy(hub.db, [flow])
        first = enqueue(hub.db, instance_id, "main", {})
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            await wait_until(lambda: len(inbox_rows(hub.db)) == 2 and all_finished(hub.db)())
            await asyncio.sleep(0.4)  # no third attempt comes
        finally:
            await pool.stop()
        original, again = inbox_rows(hub.db)
        assert (original.status, original.execution_id) == ("failed", first)
        assert (again.status, again.source, again.attempt, again.replay_of) == (
            "failed",
            "retry",
            2,
            first,
        )
        assert again.not_before is not None
        assert again.not_before - again.received_at == pytest.approx(0.3)
        failed_first, failed_again = execution(hub.db, first), execution(hub.db, again.execution_id)
        assert failed_first is not None and failed_first.status == "failed"
        assert failed_again is not None and failed_again.status == "failed"
        assert failed_again.started_at is not None
        assert failed_again.started_at >= again.not_before


async def test_invalid_flow_fails_without_retry(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        bad = {"id": "x", "action": "testkit.echo", "inputs": {"value": "{{ steps.nope.output }}"}}
        flow = webhook_flow("main", [bad], execution_retry={"max_attempts": 3, "delay": 0})
        instance_id = deploy(hub.db, [flow])
        execution_id = enqueue(hub.db, instance_id, "main", {})
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            await wait_until(all_finished(hub.db))
            await asyncio.sleep(0.2)
        finally:
            await pool.stop()
        assert [r.status for r in inbox_rows(hub.db)] == ["dead"]
        run = execution(hub.db, execution_id)
        assert run is not None and run.status == "failed" and run.error is not None
        assert run.error["kind"] == "invalid_flow"
        assert "nope" in run.error["message"]


async def test_unparsable_body_records_a_failed_execution(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [ECHO])])
        execution_id = enqueue(hub.db, instance_id, "main", None, raw=b'{"n": ')
        await run_all(hub)
        run = execution(hub.db, execution_id)
        assert run is not None and run.status == "failed" and run.error is not None
        assert "cannot be parsed" in run.error["message"]


async def test_workers_parse_the_body_with_the_triggers_options(tmp_path: Path) -> None:
    """The re-parse of the stored body uses the trigger's body options (rendered with the
    instance's config), and a lone surrogate escape runs and is stored as U+FFFD."""
    form = webhook_flow("form", [ECHO])
    form["trigger"]["inputs"] = {"form_json_fields": "{{ config.json_fields }}"}
    config = [{"key": "json_fields", "type": "json"}]
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(
            hub.db,
            [form, webhook_flow("main", [ECHO])],
            config=config,
            values={"json_fields": ["n"]},
        )
        form_headers = {"content-type": "application/x-www-form-urlencoded"}
        parsed = enqueue(hub.db, instance_id, "form", None, raw=b"n=%5B7%5D", headers=form_headers)
        lone = enqueue(hub.db, instance_id, "main", None, raw=rb'{"n": "\ud800"}')
        await run_all(hub)
        outputs = {}
        for execution_id in (parsed, lone):
            run = execution(hub.db, execution_id)
            assert run is not None and run.status == "succeeded", run
            outputs[execution_id] = run.output
        assert outputs == {parsed: [7], lone: "\ufffd"}


async def test_reply_arrives_before_the_execution_ends(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        respond = {
            "id": "reply",
            "action": "respond.respond",
            "inputs": {"status": 201, "body": "{{ trigger.body.challenge }}"},
        }
        flows = [webhook_flow("sync", [respond, sleep_step(1.0)]), webhook_flow("plain", [ECHO])]
        instance_id = deploy(hub.db, flows)
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            sync_id = enqueue(hub.db, instance_id, "sync", {"challenge": "abc"})
            pool.notify()
            outcome = await pool.wait_for_reply(sync_id, 5)
            assert outcome is not None and outcome.response is not None
            assert (outcome.response.status, outcome.response.body) == (201, "abc")
            assert outcome.result is None  # the reply came while the flow was still running

            plain_id = enqueue(hub.db, instance_id, "plain", {"n": 42})
            pool.notify()
            outcome = await pool.wait_for_reply(plain_id, 5)
            assert outcome is not None and outcome.response is None
            assert outcome.result is not None and outcome.result.output == 42
            assert outcome.result.status == Status.SUCCEEDED
            # Recorded before the waiter hears of it.
            run = execution(hub.db, plain_id)
            assert run is not None and run.status == "succeeded"
            # A waiter that comes late still gets the outcome.
            late = await pool.wait_for_reply(plain_id, 0.01)
            assert late is not None and late.result is not None
            assert await pool.wait_for_reply("unknown", 0.05) is None
        finally:
            await pool.stop()


async def test_disabled_instance_rows_wait_until_enabled(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("main", [ECHO])], enabled=False)
        enqueue(hub.db, instance_id, "main", {"n": 1})
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            await asyncio.sleep(0.3)
            assert [r.status for r in inbox_rows(hub.db)] == ["queued"]
            with session_scope(hub.db) as session:
                row = session.get(InstanceRow, instance_id)
                assert row is not None
                row.enabled = True
            pool.invalidate(instance_id)
            await wait_until(all_finished(hub.db))
        finally:
            await pool.stop()
        assert [r.status for r in inbox_rows(hub.db)] == ["done"]


async def test_run_lifecycle_records_and_masks_secrets(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        deploy_flow = {
            "id": "setup",
            "trigger": {"id": "trigger", "action": "instance.deploy"},
            "steps": [
                {
                    "id": "register",
                    "action": "testkit.echo",
                    "inputs": {"value": "{{ instance.name & ':' & config.token }}"},
                }
            ],
            "edges": [{"from": "trigger", "to": "register"}],
        }
        instance_id = deploy(
            hub.db,
            [deploy_flow],
            status="deploying",
            config=[{"key": "token", "type": "secret"}],
            values={"token": "s3cret-token-value"},
        )
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            result = await pool.run_lifecycle(instance_id, "setup", TriggerEvent(body={}))
        finally:
            await pool.stop()
        assert result.status == Status.SUCCEEDED
        assert result.output == "demo:s3cret-token-value"
        run = execution(hub.db, result.execution_id)
        assert run is not None
        assert (run.status, run.instance_id, run.output) == ("succeeded", instance_id, "demo:***")
        records = step_records(hub.db, result.execution_id)
        assert [r.step_id for r in records] == ["trigger", "register"]
        assert "s3cret" not in repr([(r.input, r.output, r.logs) for r in records])


async def test_an_unstorable_output_never_blocks_other_executions(tmp_path: Path) -> None:
    # Half an emoji ("\ud800", which JSON.stringify emits) used to fail its batch again and
    # again at the head of the recorder's queue while every later execution waited.
    half = {"id": "half", "action": "testkit.echo", "inputs": {"value": '{{ "\\ud800" }}'}}
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(hub.db, [webhook_flow("poison", [half]), webhook_flow("main", [ECHO])])
        poisoned = enqueue(hub.db, instance_id, "poison", {})
        others = [enqueue(hub.db, instance_id, "main", {"n": n}) for n in range(3)]
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            await wait_until(all_finished(hub.db))
        finally:
            await pool.stop()
        assert [r.status for r in inbox_rows(hub.db)] == ["done"] * 4
        row = execution(hub.db, poisoned)
        assert row is not None
        assert (row.status, row.output) == ("succeeded", "\ufffd")
        for n, execution_id in enumerate(others):
            other = execution(hub.db, execution_id)
            assert other is not None
            assert (other.status, other.output) == ("succeeded", n)
