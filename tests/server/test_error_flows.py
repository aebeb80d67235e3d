"""Error flows and alerts: a failed execution runs the integration's error flow (never for the
error flow's own failures) and POSTs an alert to a real loopback receiver, with retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError
from sqlmodel import col, select

from app.persistence.db import session_scope
from app.persistence.models import InstanceStateRow
from app.services import alerts, integrations
from app.services.alerts import recent_alerts
from app.services.dispatcher import WorkerPool
from app.services.executions import ExecutionFilter, list_executions
from app.services.hub import Hub
from components.registry import default_registry
from runtime import engine
from runtime.files import parse_integration
from runtime.model import Integration
from runtime.validation import validate_flow, validate_integration
from tests.server.test_dispatcher_support import (
    ECHO,
    GOLDEN_COMPONENTS,
    deploy,
    enqueue,
    execution,
    executions,
    inbox_rows,
    make_hub,
    wait_until,
    webhook_flow,
)
from tests.server.test_dry_run import api_client

FAIL = {
    "id": "boom",
    "name": "Create shipment",
    "action": "testkit.fail",
    "inputs": {"message": "no stock"},
}


def error_flow(steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    keep = {"id": "keep", "action": "testkit.echo", "inputs": {"value": "{{ trigger.body }}"}}
    flow = webhook_flow("on_error", steps or [keep])
    flow["trigger"] = {"id": "trigger", "action": "instance.error"}
    return flow


class Receiver:
    """An alert endpoint on 127.0.0.1: answers with the statuses it is given, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.headers.append(dict(request.headers))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"ok": status < 300}, status=status)


@asynccontextmanager
async def receiver(statuses: list[int] | None = None) -> AsyncIterator[Receiver]:
    got = Receiver(statuses or [])
    app = web.Application()
    app.router.add_post("/alerts", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    got.url = f"http://127.0.0.1:{port}/alerts"
    try:
        yield got
    finally:
        await runner.cleanup()


async def run_until(hub: Hub, condition: Callable[[], bool]) -> None:
    """Run a worker pool until every inbox row is finished and `condition` holds."""
    pool = WorkerPool(hub, poll_interval=0.05)
    pool.escalations.retry_delay = 0.01
    await pool.start()
    try:
        # `condition` first: a row it waits for (an error flow's) must then be finished too.
        await wait_until(
            lambda: (
                condition()
                and all(r.status in ("done", "failed", "dead") for r in inbox_rows(hub.db))
            )
        )
    finally:
        await pool.stop()


def error_rows(hub: Hub) -> list[Any]:
    return [r for r in inbox_rows(hub.db) if r.source == "error"]


def alerts_of_at_least(hub: Hub, instance_id: str, count: int) -> Callable[[], bool]:
    def enough() -> bool:
        with session_scope(hub.db, write=False) as session:
            rows = session.exec(
                select(InstanceStateRow).where(
                    col(InstanceStateRow.instance_id) == instance_id,
                    col(InstanceStateRow.flow_id) == alerts.ALERTS_SCOPE,
                )
            ).all()
        return len(rows) >= count

    return enough


async def test_a_failed_execution_runs_the_error_flow_with_its_details(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        flows = [webhook_flow("main", [ECHO, FAIL]), error_flow()]
        instance_id = deploy(hub.db, flows, errors={"flow": "on_error"})
        failed_id = enqueue(
            hub.db,
            instance_id,
            "main",
            {"n": 7},
            headers={"content-type": "application/json", "authorization": "Bearer abc123"},
        )
        await run_until(hub, lambda: len(error_rows(hub)) == 1)
        (row,) = error_rows(hub)
        assert row.delivery_id == f"error:{failed_id}"
        run = execution(hub.db, row.execution_id)
        assert run is not None and run.status == "succeeded"
        body = run.output
        assert body["execution_id"] == failed_id
        assert (body["flow_id"], body["status"], body["step"], body["step_name"]) == (
            "main",
            "failed",
            "boom",
            "Create shipment",
        )
        assert body["error"]["kind"] == "step_failed"
        assert "no stock" in body["error"]["message"]
        assert body["request"]["body"] == {"n": 7}
        assert body["request"]["headers"]["authorization"] == "***"
        assert body["instance_id"] == instance_id
        listed = await list_executions(hub, ExecutionFilter(source="error"))
        assert [(e["id"], e["source"]) for e in listed["executions"]] == [
            (row.execution_id, "error")
        ]
        (entry,) = await recent_alerts(hub, instance_id)
        assert entry["execution_id"] == failed_id
        assert entry["error_flow"] == {
            "status": "queued",
            "flow_id": "on_error",
            "execution_id": row.execution_id,
        }


async def test_a_component_bug_runs_the_error_flow(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        crash = {"id": "bug", "action": "testkit.crash", "inputs": {}}
        flows = [webhook_flow("main", [crash]), error_flow()]
        instance_id = deploy(hub.db, flows, errors={"flow": "on_error"})
        failed_id = enqueue(hub.db, instance_id, "main", {"n": 1})
        await run_until(hub, lambda: len(error_rows(hub)) == 1)
        run = execution(hub.db, error_rows(hub)[0].execution_id)
        assert run is not None and run.output["execution_id"] == failed_id
        assert (run.output["status"], run.output["error"]["kind"]) == ("failed", "component_error")


async def test_a_crashed_execution_runs_the_error_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine._Run.run_top

    async def crash_in_main(run: Any) -> Any:
        if run.flow.id == "main":
            raise RuntimeError("engine bug")
        return await real(run)

    monkeypatch.setattr(engine._Run, "run_top", crash_in_main)
    async with make_hub(tmp_path) as hub:
        flows = [webhook_flow("main", [ECHO]), error_flow()]
        instance_id = deploy(hub.db, flows, errors={"flow": "on_error"})
        failed_id = enqueue(hub.db, instance_id, "main", {"n": 1})
        await run_until(hub, lambda: len(error_rows(hub)) == 1)
        failed = execution(hub.db, failed_id)
        assert failed is not None and failed.status == "crashed"
        run = execution(hub.db, error_rows(hub)[0].execution_id)
        assert run is not None and run.status == "succeeded"
        assert (run.output["execution_id"], run.output["status"]) == (failed_id, "crashed")
        assert "engine bug" in run.output["error"]["message"]


async def test_a_failing_error_flow_never_triggers_itself(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        flows = [webhook_flow("main", [FAIL]), error_flow([dict(FAIL, id="also")])]
        instance_id = deploy(hub.db, flows, errors={"flow": "on_error"})
        failed_id = enqueue(hub.db, instance_id, "main", {"n": 1})
        await run_until(hub, alerts_of_at_least(hub, instance_id, 2))
        # The main run queued one error flow run; that one failed and queued nothing.
        assert len(error_rows(hub)) == 1
        assert sorted(r.status for r in executions(hub.db)) == ["failed", "failed"]
        newest, first = await recent_alerts(hub, instance_id)
        assert first["execution_id"] == failed_id
        assert first["error_flow"]["status"] == "queued"
        assert newest["flow_id"] == "on_error"
        assert newest["error_flow"]["status"] == "not_run"


async def test_the_error_flow_runs_once_after_the_last_retry(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        retry = {"max_attempts": 3, "delay": 0, "jitter": False}
        flows = [webhook_flow("main", [FAIL], execution_retry=retry), error_flow()]
        instance_id = deploy(hub.db, flows, errors={"flow": "on_error"})
        enqueue(hub.db, instance_id, "main", {"n": 1})
        await run_until(hub, lambda: len(error_rows(hub)) == 1)
        main_rows = [r for r in inbox_rows(hub.db) if r.flow_id == "main"]
        assert [r.attempt for r in main_rows] == [1, 2, 3]
        (row,) = error_rows(hub)
        run = execution(hub.db, row.execution_id)
        assert run is not None and run.output["execution_id"] == main_rows[-1].execution_id
        assert run.output["attempt"] == 3


async def test_succeeded_executions_escalate_nothing(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub, receiver() as got:
        flows = [webhook_flow("main", [ECHO]), error_flow()]
        errors = {"flow": "on_error", "alert": {"url": got.url}}
        instance_id = deploy(hub.db, flows, errors=errors)
        enqueue(hub.db, instance_id, "main", {"n": 1})
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            await wait_until(lambda: inbox_rows(hub.db)[0].status == "done")
        finally:
            await pool.stop()  # waits for escalations under way
        assert error_rows(hub) == []
        assert got.received == []
        assert await recent_alerts(hub, instance_id) == []


async def test_an_alert_is_posted_to_a_loopback_receiver_after_a_retry(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub, receiver([503]) as got:
        config = [{"key": "alert_url", "type": "string"}, {"key": "token", "type": "secret"}]
        alert = {
            "url": "{{ config.alert_url }}",
            "headers": {"Authorization": "Bearer {{ config.token }}"},
        }
        instance_id = deploy(
            hub.db,
            [webhook_flow("main", [FAIL])],
            config=config,
            values={"alert_url": got.url, "token": "s3cret-token"},
            errors={"alert": alert},
        )
        failed_id = enqueue(hub.db, instance_id, "main", {"n": 1})
        await run_until(hub, alerts_of_at_least(hub, instance_id, 1))
        assert len(got.received) == 2  # 503, then 200
        summary = got.received[-1]
        assert summary["execution_id"] == failed_id
        assert (summary["flow_id"], summary["step"], summary["status"]) == (
            "main",
            "boom",
            "failed",
        )
        assert summary["integration"] == "Integration demo"
        assert "request" not in summary
        assert got.headers[-1]["Authorization"] == "Bearer s3cret-token"
        (entry,) = await recent_alerts(hub, instance_id)
        assert entry["alert"] == {
            "url": got.url,
            "status": "sent",
            "attempts": 2,
            "http_status": 200,
        }
        assert entry["error_flow"] is None


async def test_an_alert_that_keeps_failing_is_recorded_and_blocks_no_run(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub, receiver([500, 500, 500, 500]) as got:
        instance_id = deploy(
            hub.db,
            [webhook_flow("main", [FAIL]), webhook_flow("other", [ECHO])],
            errors={"alert": {"url": got.url}},
        )
        enqueue(hub.db, instance_id, "main", {"n": 1})
        ok_id = enqueue(hub.db, instance_id, "other", {"n": 2})
        await run_until(hub, alerts_of_at_least(hub, instance_id, 1))
        ok = execution(hub.db, ok_id)
        assert ok is not None and ok.status == "succeeded"
        (entry,) = await recent_alerts(hub, instance_id)
        assert entry["alert"]["status"] == "failed"
        assert entry["alert"]["attempts"] == alerts.ALERT_ATTEMPTS
        assert "HTTP 500" in entry["alert"]["error"]
        assert len(got.received) == alerts.ALERT_ATTEMPTS


async def test_a_refused_alert_is_not_retried(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub, receiver([404]) as got:
        instance_id = deploy(
            hub.db, [webhook_flow("main", [FAIL])], errors={"alert": {"url": got.url}}
        )
        enqueue(hub.db, instance_id, "main", {"n": 1})
        await run_until(hub, alerts_of_at_least(hub, instance_id, 1))
        (entry,) = await recent_alerts(hub, instance_id)
        assert (entry["alert"]["status"], entry["alert"]["attempts"]) == ("failed", 1)
        assert len(got.received) == 1


async def test_only_the_newest_escalations_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts, "KEEP", 2)
    async with make_hub(tmp_path) as hub:
        instance_id = deploy(
            hub.db,
            [webhook_flow("main", [FAIL])],
            errors={"alert": {"url": "{{ config.missing }}"}},
        )
        for n in range(3):
            enqueue(hub.db, instance_id, "main", {"n": n})
        await run_until(hub, lambda: True)  # stopping waits for the escalations under way
        kept = await recent_alerts(hub, instance_id)
        assert len(kept) == 2
        assert kept[0]["at"] >= kept[1]["at"]
        assert kept[0]["alert"]["status"] == "failed"
        assert "could not be rendered" in kept[0]["alert"]["error"]


def test_errors_flow_must_name_an_error_triggered_flow() -> None:
    registry = default_registry(GOLDEN_COMPONENTS)
    integration = Integration.model_validate(
        {"name": "x", "flows": [webhook_flow("main", [ECHO])], "errors": {"flow": "nope"}}
    )
    (issue,) = [i for i in validate_integration(integration, registry) if i.severity == "error"]
    assert issue.code == "unknown_error_flow"
    assert "'nope'" in issue.message
    wrong = Integration.model_validate(
        {"name": "x", "flows": [webhook_flow("main", [ECHO])], "errors": {"flow": "main"}}
    )
    (issue,) = validate_flow(wrong.flows[0], registry, wrong)
    assert (issue.code, issue.step) == ("error_flow_trigger", "trigger")
    assert "instance.error" in issue.hint
    right = Integration.model_validate(
        {"name": "x", "flows": [error_flow()], "errors": {"flow": "on_error"}}
    )
    assert validate_integration(right, registry) == []


async def test_the_api_lists_an_instances_alerts(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub, api_client(hub) as client:
        flows = [webhook_flow("main", [FAIL]), error_flow()]
        instance_id = deploy(hub.db, flows, errors={"flow": "on_error"})
        assert (await client.get(f"/api/instances/{instance_id}/alerts")).json() == []
        failed_id = enqueue(hub.db, instance_id, "main", {"n": 1})
        await run_until(hub, lambda: len(error_rows(hub)) == 1)
        answer = await client.get(f"/api/instances/{instance_id}/alerts")
        assert [a["execution_id"] for a in answer.json()] == [failed_id]
        assert (await client.get("/api/instances/nope/alerts")).status_code == 404


async def test_error_handling_round_trips_through_import_and_export(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "pages" / "fixtures" / "alerting.yaml").read_text()
    text = text.replace(
        "  flow: on_failure\n",
        "  flow: on_failure\n  alert: {url: '{{ config.alert_url }}', headers: {X-Team: ops}}\n",
    )
    async with make_hub(tmp_path) as hub:
        await integrations.import_integration(hub, text, source="alerting.yaml")
        exported = await integrations.export_integration(hub, "Alerting")
    back = parse_integration(exported)
    assert back.errors.flow == "on_failure"
    assert back.errors.alert is not None
    assert (back.errors.alert.url, back.errors.alert.headers) == (
        "{{ config.alert_url }}",
        {"X-Team": "ops"},
    )


async def test_secrets_are_masked_in_the_error_flows_payload(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        leaky = {**FAIL, "inputs": {"message": "refused key {{ config.token }}"}}
        instance_id = deploy(
            hub.db,
            [webhook_flow("main", [leaky]), error_flow()],
            config=[{"key": "token", "type": "secret"}],
            values={"token": "s3cret-token"},
            errors={"flow": "on_error"},
        )
        enqueue(hub.db, instance_id, "main", {"echo": "s3cret-token"})
        await run_until(hub, lambda: len(error_rows(hub)) == 1)
        (row,) = error_rows(hub)
        assert b"s3cret-token" not in row.body
        run = execution(hub.db, row.execution_id)
        assert run is not None
        assert run.output["error"]["message"].endswith("refused key ***")
        assert run.output["request"]["body"] == {"echo": "***"}


def test_a_literal_alert_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="'ftp://ops' is not an http\\(s\\) URL"):
        Integration.model_validate({"name": "x", "errors": {"alert": {"url": "ftp://ops"}}})
    for url in ("https://hooks.example.com/a", "{{ config.alert_url }}"):
        integration = Integration.model_validate({"name": "x", "errors": {"alert": {"url": url}}})
        assert integration.errors.alert is not None and integration.errors.alert.url == url
