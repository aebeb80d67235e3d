"""The editor's test panel (`app.pages.testpanel`) with NiceGUI's simulated user.

A small integration (webhook -> branch -> transform -> loop -> log, and a log on the `else`
port) is imported per test; a test page builds a `TestPanel` for its flow and keeps what the
panel hands the editor (statuses, finished executions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from nicegui import ui
from nicegui.testing import User

from app.pages.layout import hub as current_hub
from app.pages.testpanel import TestPanel, parse_body, worst_status
from app.server import create_app
from app.services import editor, payloads
from app.services.hub import Hub
from app.services.payloads import PayloadInput
from app.settings import Settings
from designer.testing import LiveStatuses
from runtime.observer import ExecutionInfo, Status, StepRecord
from tests.pages.conftest import import_yaml

INTEGRATION = "Panel checks"
YAML = """
name: Panel checks
description: Orders go through a loop, anything else is only logged.
flows:
  - id: orders
    name: Orders
    trigger: {id: receive, action: webhook.webhook}
    steps:
      - id: route
        action: branch.value
        inputs:
          value: '{{ trigger.body.kind }}'
          cases: [{port: order, equals: order}]
      - id: shape
        action: transform.object
        inputs: {fields: {id: '{{ trigger.body.id }}', kind: '{{ trigger.body.kind }}'}}
      - id: each
        action: loop.items
        inputs: {items: '{{ trigger.body.items }}'}
      - id: item_log
        action: log.message
        inputs: {message: 'item {{ loop.item }} of order {{ steps.shape.output.id }}'}
      - id: other
        action: log.message
        inputs: {level: warning, message: 'Not an order: {{ trigger.body.kind }}'}
    edges:
      - {from: receive, to: route}
      - {from: route, to: shape, port: order}
      - {from: route, to: other, port: else}
      - {from: shape, to: each}
      - {from: each, to: item_log, port: body}
  - id: slow
    name: Slow
    trigger: {id: start, action: manual.manual}
    steps:
      - id: note
        action: log.message
        inputs: {message: 'about to wait'}
      - id: pause
        action: delay.wait
        inputs: {seconds: 30}
    edges:
      - {from: start, to: note}
      - {from: note, to: pause}
"""
SAMPLE = {"body": {"kind": "order", "id": 1, "items": ["s"]}, "headers": {}, "query": {}}
ORDER = {"kind": "order", "id": 7, "items": ["a", "b"]}
REFUND = {"kind": "refund", "id": 8}


@dataclass
class Harness:
    """The panel on the test page and what it handed the editor."""

    statuses: list[dict[str, str]] = field(default_factory=list)
    finished: list[dict[str, Any]] = field(default_factory=list)
    panel: TestPanel | None = None
    container: ui.column | None = None

    @property
    def the_panel(self) -> TestPanel:
        assert self.panel is not None
        return self.panel


async def until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.02)


def text(user: User, marker: str) -> str:
    """The text of the visible elements marked `marker` and of everything inside them."""
    return "\n".join(
        str(getattr(element, "text", "") or getattr(element, "value", "") or "")
        for found in user.find(marker=marker).elements
        for element in found.descendants(include_self=True)
    )


def only(user: User, marker: str) -> Any:
    found = user.find(marker=marker).elements
    assert len(found) == 1, found
    return next(iter(found))


@pytest.fixture
async def harness(user: User, hub: Hub, tmp_path: Path) -> Harness:
    """The integration imported, the test page registered and opened, its flow loaded."""
    path = tmp_path / "panel.yaml"
    path.write_text(YAML)
    await import_yaml(hub, path)
    state = Harness()

    @ui.page("/testpanel-test")
    def page() -> None:
        with ui.column().classes("w-full") as state.container:
            state.panel = TestPanel(
                current_hub(),
                INTEGRATION,
                on_statuses=state.statuses.append,
                on_finished=state.finished.append,
            )
            state.panel.set_flow("orders", SAMPLE)

    await user.open("/testpanel-test")
    await user.should_see("No test payload yet", retries=200)
    return state


async def add_payload(hub: Hub, name: str, body: Any) -> int:
    created = await payloads.create_payload(
        hub, INTEGRATION, PayloadInput(flow_id="orders", name=name, body=body)
    )
    return created.id


async def reopen(user: User, state: Harness) -> None:
    """Open the page again (the panel loads the payloads and last run of the flow)."""
    state.statuses.clear()
    await user.open("/testpanel-test")
    await user.should_see(marker="payload-select", retries=200)
    panel = state.the_panel
    await until(lambda: panel._loading is not None and panel._loading.done(), what="loaded")


async def name_dialog(user: User, name: str) -> None:
    await user.should_see(marker="payload-name-input", retries=100)
    with user:
        only(user, "payload-name-input").value = name
    user.find(marker="payload-name-ok").click()


async def run_and_wait(user: User, state: Harness, runs: int) -> dict[str, Any]:
    user.find(marker="run-test").click()
    await until(lambda: len(state.finished) == runs, what=f"run {runs} to finish")
    await user.should_see(marker="run-link")
    return state.finished[-1]


# --- payload editing ----------------------------------------------------------------------------


async def test_create_edit_duplicate_delete_payloads(
    user: User, hub: Hub, harness: Harness
) -> None:
    user.find(marker="payload-new").click()
    await name_dialog(user, "Order")
    await user.should_see(marker="payload-body", retries=200)
    [created] = await payloads.list_payloads(hub, INTEGRATION, "orders")
    assert (created.name, created.body) == ("Order", {})
    assert only(user, "payload-select").value == created.id

    # Body, two headers, a query key given twice (a list), then save.
    with user:
        only(user, "payload-body").value = '{"kind": "order",\n "id": 7}'
    user.find(marker="payload-headers-add").click()
    user.find(marker="payload-headers-add").click()
    user.find(marker="payload-query-add").click()
    user.find(marker="payload-query-add").click()
    with user:
        for marker, values in (
            ("payload-headers-key", ["X-Shop", "Accept"]),
            ("payload-headers-value", ["north", "application/json"]),
            ("payload-query-key", ["tag", "tag"]),
            ("payload-query-value", ["a", "b"]),
        ):
            found: list[Any] = sorted(user.find(marker=marker).elements, key=lambda e: e.id)
            for element, value in zip(found, values, strict=True):
                element.value = value
    await user.should_see("unsaved")
    user.find(marker="payload-save").click()
    await user.should_not_see("unsaved", retries=200)
    saved = await payloads.get_payload(hub, INTEGRATION, created.id)
    assert saved.body == {"kind": "order", "id": 7}
    assert saved.headers == {"x-shop": "north", "accept": "application/json"}
    assert saved.query == {"tag": ["a", "b"]}

    # Duplicate under a suggested name; the copy is selected.
    user.find(marker="payload-duplicate").click()
    await user.should_see(marker="payload-name-input", retries=100)
    assert only(user, "payload-name-input").value == "Order copy"
    user.find(marker="payload-name-ok").click()
    await until(lambda: only(user, "payload-select").value != created.id, what="copy selected")
    names = [p.name for p in await payloads.list_payloads(hub, INTEGRATION, "orders")]
    assert names == ["Order", "Order copy"]
    assert only(user, "payload-name").value == "Order copy"
    assert '"id": 7' in only(user, "payload-body").value

    # Delete the copy after confirming; the remaining payload is selected.
    user.find(marker="payload-delete").click()
    await user.should_see("Delete the test payload 'Order copy'?", retries=100)
    user.find(marker="payload-delete-confirm").click()
    await until(lambda: only(user, "payload-select").value == created.id, what="original shown")
    names = [p.name for p in await payloads.list_payloads(hub, INTEGRATION, "orders")]
    assert names == ["Order"]

    # Cancelling a delete keeps the payload.
    user.find(marker="payload-delete").click()
    await user.should_see("Cancel", retries=100)
    user.find(kind=ui.button, content="Cancel").click()
    await user.should_not_see("Delete the test payload", retries=100)
    assert len(await payloads.list_payloads(hub, INTEGRATION, "orders")) == 1


async def test_invalid_json_body_names_line_and_column_and_saves_nothing(
    user: User, hub: Hub, harness: Harness
) -> None:
    payload_id = await add_payload(hub, "Order", {"kind": "order"})
    await add_payload(hub, "Zeta", None)
    await reopen(user, harness)
    broken = '{\n  "kind": "order",\n  "id": \n}'
    with user:
        only(user, "payload-body").value = broken
    user.find(marker="payload-save").click()
    await user.should_see(marker="body-error", content="line 4, column 1", retries=100)
    assert "The test payload was not saved." in text(user, "test-error")
    assert "line 4, column 1" in text(user, "test-error")
    assert (await payloads.get_payload(hub, INTEGRATION, payload_id)).body == {"kind": "order"}

    # Switching to another payload tries to save first: refused, the edits stay on screen.
    select = only(user, "payload-select")
    with user:
        select.value = next(k for k, v in select.options.items() if v == "Zeta")
    await until(lambda: select.value == payload_id, what="selection kept")
    assert only(user, "payload-body").value == broken
    await user.should_see("unsaved")

    # NaN is not JSON, even though Python's json module reads it.
    with user:
        only(user, "payload-body").value = '{"id": NaN}'
    user.find(marker="payload-save").click()
    await user.should_see(marker="body-error", content="NaN", retries=100)

    # A run refuses to start on unsaved invalid edits rather than running stale data.
    user.find(marker="run-test").click()
    await user.should_see(marker="test-error", retries=100)
    await asyncio.sleep(0.2)
    assert harness.finished == []


async def test_text_and_large_bodies_round_trip_unchanged(
    user: User, hub: Hub, harness: Harness
) -> None:
    text_id = await add_payload(hub, "A text", "plain text, not an object")
    large = {"rows": ["x" * 100] * 400}  # over the panel's display cut
    large_id = await add_payload(hub, "B large", large)
    await reopen(user, harness)
    assert only(user, "payload-body").value == '"plain text, not an object"'
    with user:
        only(user, "payload-name").value = "A text body"
    user.find(marker="payload-save").click()
    await user.should_not_see("unsaved", retries=200)
    saved = await payloads.get_payload(hub, INTEGRATION, text_id)
    assert (saved.name, saved.body) == ("A text body", "plain text, not an object")

    select = only(user, "payload-select")
    with user:
        select.value = large_id
    await until(lambda: only(user, "payload-name").value == "B large", what="large shown")
    with user:
        only(user, "payload-name").value = "B large body"
    user.find(marker="payload-save").click()
    await user.should_not_see("unsaved", retries=200)
    assert (await payloads.get_payload(hub, INTEGRATION, large_id)).body == large


async def test_service_validation_errors_are_shown(user: User, hub: Hub, harness: Harness) -> None:
    await add_payload(hub, "Order", ORDER)
    await reopen(user, harness)
    user.find(marker="payload-new").click()
    await name_dialog(user, "Order")
    await user.should_see(marker="test-error", retries=200)
    assert "already has a test payload named 'Order'" in text(user, "test-error")
    assert "Choose another name." in text(user, "test-error")

    user.find(marker="payload-new").click()
    await name_dialog(user, "   ")
    await until(lambda: "give the payload a name" in text(user, "test-error"), what="name error")
    assert len(await payloads.list_payloads(hub, INTEGRATION, "orders")) == 1


async def test_from_sample_creates_the_triggers_sample(
    user: User, hub: Hub, harness: Harness
) -> None:
    user.find(marker="payload-from-sample").click()
    await name_dialog(user, "Sample")
    await user.should_see(marker="payload-body", retries=200)
    [sample] = await payloads.list_payloads(hub, INTEGRATION, "orders")
    assert sample.body == SAMPLE["body"]
    # Without a run, the reference picker sees the selected payload.
    scope = harness.the_panel.reference_scope()
    assert scope == {
        "trigger": {"body": SAMPLE["body"], "headers": {}, "query": {}, "method": "POST"},
        "steps": {},
    }


# --- runs ---------------------------------------------------------------------------------------


def transitions(snapshots: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(step, status) changes between consecutive snapshots, in order."""
    changes: list[tuple[str, str]] = []
    before: dict[str, str] = {}
    for snapshot in snapshots:
        changes += [(s, v) for s, v in snapshot.items() if before.get(s) != v]
        before = snapshot
    return changes


async def test_run_delivers_live_statuses_and_final_badges(
    user: User, hub: Hub, harness: Harness
) -> None:
    await add_payload(hub, "Order", ORDER)
    await add_payload(hub, "Refund", REFUND)
    await reopen(user, harness)
    assert only(user, "payload-select").value is not None

    detail = await run_and_wait(user, harness, 1)
    assert detail["status"] == "succeeded"
    assert harness.statuses[0] == {}  # a run starts from clean badges
    changes = transitions(harness.statuses)
    assert changes.index(("receive", "running")) < changes.index(("receive", "succeeded"))
    assert changes.index(("receive", "succeeded")) < changes.index(("route", "running"))
    assert changes.index(("shape", "succeeded")) < changes.index(("each", "running"))
    # Two loop iterations: the badge runs again for the second one.
    assert [c for c in changes if c[0] == "item_log"] == [
        ("item_log", "running"),
        ("item_log", "succeeded"),
        ("item_log", "running"),
        ("item_log", "succeeded"),
    ]
    assert ("other", "running") not in changes
    assert harness.statuses[-1] == {
        "receive": "succeeded",
        "route": "succeeded",
        "shape": "succeeded",
        "each": "succeeded",
        "item_log": "succeeded",
        "other": "skipped",
    }
    assert "succeeded" in text(user, "run-summary")
    link = only(user, "run-link")
    assert link.props["href"] == f"/executions/{detail['id']}"
    assert harness.the_panel.last_execution == detail

    # The other payload takes the other branch.
    user.find(marker="payload-select").click()
    user.find("Refund").click()
    await until(lambda: only(user, "payload-name").value == "Refund", what="refund shown")
    detail = await run_and_wait(user, harness, 2)
    final = dict(harness.statuses[-1])
    # The body of a skipped loop may have no record at all (then no badge).
    assert final.pop("item_log", "skipped") == "skipped"
    assert final == {
        "receive": "succeeded",
        "route": "succeeded",
        "other": "succeeded",
        "shape": "skipped",
        "each": "skipped",
    }
    harness.the_panel.show_step("other")
    await user.should_see(marker="step-logs", retries=100)
    assert "Not an order: refund" in text(user, "step-logs")
    assert "WARNING" in text(user, "step-logs")


async def test_step_view_shows_records_and_loop_iterations(
    user: User, hub: Hub, harness: Harness
) -> None:
    await add_payload(hub, "Order", ORDER)
    await reopen(user, harness)
    panel = harness.the_panel
    with user:
        panel.show_step("shape")
    await user.should_see("did not run in the last test run")
    await run_and_wait(user, harness, 1)

    # The selected step is redrawn with the new run's record.
    assert "succeeded" in text(user, "step-status")
    assert '"id": 7' in text(user, "step-output")
    assert "fields" in text(user, "step-input")

    with user:
        panel.show_step("item_log")
    assert "item a of order 7" in text(user, "step-logs")
    iteration = only(user, "step-iteration")
    assert len(iteration.options) == 2
    with user:
        iteration.value = 1
    assert "item b of order 7" in text(user, "step-logs")

    with user:
        panel.show_step("other")
    assert "skipped" in text(user, "step-status")
    with user:
        panel.show_step(None)
    await user.should_see("Select a step")

    scope = panel.reference_scope()
    assert scope["trigger"]["body"] == ORDER
    assert scope["steps"]["shape"] == {"output": {"id": 7, "kind": "order"}}
    assert "item_log" in scope["steps"]
    assert "other" not in scope["steps"]

    # The panel of a reopened page shows the flow's last run again.
    await reopen(user, harness)
    assert harness.statuses[-1]["item_log"] == "succeeded"
    assert harness.the_panel.last_execution is not None


async def test_failed_step_shows_its_error(user: User, hub: Hub, harness: Harness) -> None:
    await add_payload(hub, "Items not a list", {"kind": "order", "id": 3, "items": 5})
    await reopen(user, harness)
    detail = await run_and_wait(user, harness, 1)
    assert detail["status"] == "failed"
    assert harness.statuses[-1]["each"] == "failed"
    assert "failed" in text(user, "run-summary")
    with user:
        harness.the_panel.show_step("each")
    assert "failed" in text(user, "step-status")
    assert "each" in text(user, "step-error").lower()


async def test_run_up_to_here_reuses_upstream_outputs(
    user: User, hub: Hub, harness: Harness
) -> None:
    payload_id = await add_payload(hub, "Order", ORDER)
    await reopen(user, harness)
    first = await run_and_wait(user, harness, 1)

    # Change the payload: a reused `shape` keeps the first run's id, a rerun would show 9.
    changed = payloads.PayloadUpdate(body={**ORDER, "id": 9})
    await payloads.update_payload(hub, INTEGRATION, payload_id, changed)
    with user:
        harness.the_panel.show_step("each")
    user.find(marker="run-upto").click()
    await until(lambda: len(harness.finished) == 2, what="run up to here")
    second = harness.finished[-1]
    assert second["id"] != first["id"]
    records = {r["step_id"]: r for r in second["steps"]}
    assert records["shape"]["output"] == {"id": 7, "kind": "order"}
    assert any(first["id"] in line["message"] for line in records["shape"]["logs"])
    assert "item_log" not in records  # downstream of the target: not run
    assert "reused" in text(user, "run-summary")
    assert harness.statuses[-1]["shape"] == "succeeded"


async def test_invalid_flow_is_refused_with_the_step_named(
    user: User, hub: Hub, harness: Harness
) -> None:
    await add_payload(hub, "Order", ORDER)
    state = await editor.load_editor(hub, INTEGRATION)
    flow = state.integration.flows[0].model_dump()
    for step in flow["steps"]:
        if step["id"] == "other":
            step["inputs"] = {}
    await editor.save_flow(hub, INTEGRATION, flow, state.revisions["orders"])
    await reopen(user, harness)
    user.find(marker="run-test").click()
    await user.should_see(marker="test-error", retries=200)
    shown = text(user, "test-error")
    assert "other" in shown
    assert "Traceback" not in shown
    assert harness.finished == []
    assert harness.statuses[-1] == {}


async def test_switching_flows_live_step_view_and_stop(
    user: User, hub: Hub, harness: Harness
) -> None:
    await add_payload(hub, "Order", ORDER)
    await reopen(user, harness)
    panel = harness.the_panel
    await run_and_wait(user, harness, 1)

    with user:
        panel.set_flow("slow")
        panel.show_step("note")
    await until(lambda: panel._loading is not None and panel._loading.done(), what="loaded")
    assert panel.last_execution is None  # the slow flow has not run yet
    assert harness.statuses[-1] == {}
    await user.should_see("No test payload yet")
    await user.should_not_see(marker="run-link")

    # Run without a payload (a manual trigger); the selected step fills in while the run goes.
    user.find(marker="run-test").click()
    await until(lambda: harness.statuses[-1].get("pause") == "running", what="pause running")
    assert "about to wait" in text(user, "step-logs")
    assert not only(user, "run-test").enabled
    user.find(marker="stop-test").click()
    await until(lambda: len(harness.finished) == 2, what="stopped run finished")
    assert harness.finished[-1]["status"] == "cancelled"
    assert harness.statuses[-1]["note"] == "succeeded"
    assert harness.statuses[-1]["pause"] != "running"
    assert "cancelled" in text(user, "run-summary")
    assert only(user, "run-test").enabled

    # Back on the first flow while the slow one runs again: its payload and last run come
    # back, and the slow run's reports no longer reach the canvas or `on_finished`.
    user.find(marker="run-test").click()
    await until(lambda: harness.statuses[-1].get("pause") == "running", what="pause running")
    with user:
        panel.set_flow("orders", SAMPLE)
    await until(lambda: panel._loading is not None and panel._loading.done(), what="loaded")
    assert only(user, "payload-name").value == "Order"
    assert harness.statuses[-1]["item_log"] == "succeeded"
    shown = len(harness.statuses)
    user.find(marker="stop-test").click()
    await until(lambda: only(user, "run-test").enabled, what="slow run stopped")
    await asyncio.sleep(0.2)
    assert all("pause" not in snapshot for snapshot in harness.statuses[shown:])
    assert len(harness.finished) == 2


# --- listening ----------------------------------------------------------------------------------


async def test_listening_captures_a_real_request(
    user: User, hub: Hub, harness: Harness, tmp_path: Path
) -> None:
    server = create_app(Settings(data_dir=tmp_path / "unused", ui=False))
    server.state.hub = hub  # what the lifespan would set; ASGITransport runs no lifespan
    user.find(marker="listen-button").click()
    await user.should_see(marker="listen-url", retries=200)
    url = only(user, "listen-url").text
    assert "/webhooks/test/" in url
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(server), base_url="http://127.0.0.1:8080"
    ) as client:
        sent = await client.post(
            urlsplit(url).path + "?source=shop", json=ORDER, headers={"X-Shop": "north"}
        )
        assert sent.status_code == 202, sent.text
        await user.should_see("Captured a request", retries=200)
        [captured] = await payloads.list_payloads(hub, INTEGRATION, "orders")
        assert captured.body == ORDER
        assert captured.headers["x-shop"] == "north"
        assert captured.query == {"source": "shop"}
        await until(lambda: only(user, "payload-select").value == captured.id, what="selected")
        await user.should_not_see(marker="listen-url")

        # Stopping, and deleting the panel, both close the test URL.
        user.find(marker="listen-button").click()
        await user.should_see(marker="listen-url", retries=200)
        user.find(marker="listen-button").click()
        await user.should_not_see(marker="listen-url", retries=100)
        assert (await client.post(urlsplit(url).path, json={})).status_code == 404

        user.find(marker="listen-button").click()
        await user.should_see(marker="listen-url", retries=200)
        url = only(user, "listen-url").text
        assert harness.container is not None
        with user:
            harness.container.clear()
        assert (await client.post(urlsplit(url).path, json={})).status_code == 404
    assert len(await payloads.list_payloads(hub, INTEGRATION, "orders")) == 1


# --- pure parts ---------------------------------------------------------------------------------


def test_parse_body() -> None:
    assert parse_body("  ") is None
    assert parse_body('{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="line 2, column 7"):
        parse_body('{"a": 1,\n "b": }')
    with pytest.raises(ValueError, match="Infinity"):
        parse_body("[Infinity]")
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_body("[" * 100_000 + "]" * 100_000)


def test_worst_status() -> None:
    assert worst_status(["succeeded", "running", "failed"]) == "running"
    assert worst_status(["succeeded", "failed", "skipped"]) == "failed"
    assert worst_status(["skipped", "succeeded"]) == "succeeded"
    assert worst_status(["skipped"]) == "skipped"


def test_live_statuses_aggregate_iterations_and_ignore_called_flows() -> None:
    seen: list[dict[str, str]] = []
    live = LiveStatuses(seen.append, lambda record: None)
    live.execution_started(ExecutionInfo("e1", "f", 0.0))
    live.execution_started(ExecutionInfo("child", "g", 0.0, parent_execution_id="e1"))

    def record(
        step: str, status: Status, iteration: tuple[int, ...], execution: str = "e1"
    ) -> None:
        rec = StepRecord(execution, step, step, "log.message", status, iteration=iteration)
        (live.step_started if status is Status.RUNNING else live.step_finished)(rec)

    record("s", Status.RUNNING, (0,))
    record("s", Status.RUNNING, (1,))
    record("s", Status.FAILED, (0,))
    assert seen[-1] == {"s": "running"}  # iteration 1 still runs
    record("s", Status.SUCCEEDED, (1,))
    assert seen[-1] == {"s": "failed"}
    record("x", Status.RUNNING, (), execution="child")
    assert seen[-1] == {"s": "failed"}
    assert len(live.records) == 2
