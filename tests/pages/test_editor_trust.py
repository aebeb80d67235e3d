"""What the editor shows is what runs (issue 23), with NiceGUI's simulated user.

A field the inspector marks invalid holds an edit that is not saved: it is a problem in the
Problems list, the header does not say "Saved", and a test run is refused naming the step and
field, until the field is fixed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nicegui import ElementFilter, ui
from nicegui.testing import User

from app.services import editor as editor_service
from app.services import executions, payloads, testruns
from app.services.hub import Hub
from app.services.payloads import PayloadInput
from designer.canvas import FlowCanvas
from runtime.model import Step
from tests.pages.conftest import import_yaml
from tests.pages.test_editor_page import settle

EDITOR = "/integrations/Orders"
BROKEN = "Order {{ trigger.body.issue..title }} was refused"


async def select(user: User, step_id: str) -> None:
    user.find(FlowCanvas).trigger("change", {"type": "selection", "nodes": [step_id], "edges": []})
    await settle()


def one(user: User, marker: str) -> Any:
    """The one element marked `marker`, shown or hidden."""
    with user:
        found = list(ElementFilter(marker=marker, only_visible=False))
    assert len(found) == 1, f"{len(found)} elements marked {marker}"
    return found[0]


def retype(user: User, marker: str, value: str) -> None:
    target = one(user, marker)
    with user:
        target.value = value


def texts(user: User, marker: str) -> list[str]:
    return [
        str(label.text)
        for label in one(user, marker).descendants()
        if isinstance(label, ui.label) and label.visible
    ]


async def stored_message(hub: Hub) -> Any:
    state = await editor_service.load_editor(hub, "Orders")
    flow = state.flow("order")
    assert flow is not None
    return next(s for s in flow.steps if s.id == "refuse").inputs["message"]


async def test_a_field_error_is_a_problem_and_the_run_is_refused(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    await select(user, "refuse")
    saved = await stored_message(hub)

    retype(user, "inspector-input-message", BROKEN)
    await settle()
    problems = " ".join(texts(user, "problems"))
    assert "Step 'Refuse', input 'message'" in problems
    assert "does not compile" in problems
    assert one(user, "save-status").text == "Not saved · 1 field error"
    assert await stored_message(hub) == saved  # the broken value never reached the draft

    user.find(marker="run-test").click()
    await settle()
    refusal = " ".join(texts(user, "test-error"))
    assert "The flow was not run" in refusal
    assert "Step 'Refuse', input 'message'" in refusal

    retype(user, "inspector-input-message", "Order {{ trigger.body.id }} was bounced")
    await settle()
    assert "Step 'Refuse', input 'message'" not in " ".join(texts(user, "problems"))
    assert one(user, "save-status").text.startswith("Saved")
    assert await stored_message(hub) == "Order {{ trigger.body.id }} was bounced"


async def test_selecting_another_step_drops_the_unsaved_field_error(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    await select(user, "refuse")
    retype(user, "inspector-input-message", BROKEN)
    await settle()
    assert one(user, "save-status").text.startswith("Not saved")
    await select(user, "note")  # the form of 'refuse' is gone, and with it the unsaved text
    assert "Step 'Refuse'" not in " ".join(texts(user, "problems"))
    assert not one(user, "save-status").text.startswith("Not saved")


async def test_a_missing_input_is_named_in_words_when_a_run_is_refused(
    user: User, hub: Hub
) -> None:
    await import_yaml(hub, "orders.yaml")
    state = await editor_service.load_editor(hub, "Orders")
    flow = state.flow("order")
    assert flow is not None
    call = Step(id="call", name="Call API", action="http.request", inputs={"method": "GET"})
    broken = flow.model_copy(update={"steps": [*flow.steps, call]})
    await editor_service.save_flow(hub, "Orders", broken, state.revisions["order"])
    await user.open(EDITOR)
    user.find(marker="run-test").click()
    await settle()
    refusal = " ".join(texts(user, "test-error"))
    assert "Step 'Call API' is missing required input 'url' (URL). Fill it in the inspector." in (
        refusal
    )
    assert "{'" not in refusal and "issues:" not in refusal  # no raw data


async def test_typing_in_a_field_saves_one_revision(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    await select(user, "refuse")
    before = (await editor_service.load_editor(hub, "Orders")).revisions["order"]
    for text in ("Order", "Order {{ trigger.body.id }}", "Order {{ trigger.body.id }} gone"):
        retype(user, "inspector-input-message", text)  # one save per keystroke batch
        await settle()
    assert await stored_message(hub) == "Order {{ trigger.body.id }} gone"
    after = (await editor_service.load_editor(hub, "Orders")).revisions["order"]
    assert after == before + 1
    assert one(user, "save-status").text == f"Saved · revision {after}"


async def test_a_flow_is_renamed_from_the_designer(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    user.find(marker="rename-flow").click()
    await settle()
    retype(user, "rename-flow-name", "   ")
    user.find(marker="rename-flow-save").click()
    await settle()
    assert "give the flow a name" in one(user, "rename-flow-error").text
    retype(user, "rename-flow-name", "Order placed (EU)")
    user.find(marker="rename-flow-save").click()
    await settle()
    state = await editor_service.load_editor(hub, "Orders")
    flow = state.flow("order")
    assert flow is not None and flow.name == "Order placed (EU)"
    await user.should_see("Order placed (EU)")  # the tab
    assert one(user, "save-status").text == f"Saved · revision {state.revisions['order']}"
    # the next edit saves on top of the rename instead of bringing the old name back
    await select(user, "refuse")
    retype(user, "inspector-input-message", "Refused")
    await settle()
    flow = (await editor_service.load_editor(hub, "Orders")).flow("order")
    assert flow is not None and flow.name == "Order placed (EU)"
    assert next(s for s in flow.steps if s.id == "refuse").inputs["message"] == "Refused"


def run_link(user: User) -> str | None:
    links = [e for e in one(user, "run-summary").descendants() if isinstance(e, ui.link)]
    return str(links[0].props.get("href")) if links else None


async def run_and_wait(user: User) -> None:
    """Press Run and wait until a new run's summary (with its execution link) is shown."""
    before = run_link(user)
    user.find(marker="run-test").click()
    for _ in range(200):
        await asyncio.sleep(0.05)
        if run_link(user) not in (None, before):
            return
    raise AssertionError(f"the test run did not finish: {texts(user, 'test-error')}")


async def test_results_of_an_older_run_are_marked_stale_after_an_edit(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await payloads.create_payload(
        hub, "Orders", PayloadInput(flow_id="order", name="ok", body={"ok": True, "items": [1]})
    )
    await user.open(EDITOR)
    await settle()
    stale = one(user, "results-stale")
    assert not stale.visible
    await run_and_wait(user)
    assert not stale.visible
    await select(user, "refuse")
    retype(user, "inspector-input-message", "Refused: {{ trigger.body.id }}")
    await settle()
    assert stale.visible
    assert "from before your last edit" in stale.text
    assert "opacity-60" in one(user, "step-view").classes
    await run_and_wait(user)
    assert not stale.visible
    assert "opacity-60" not in one(user, "step-view").classes


async def test_a_run_clicked_during_a_slow_save_runs_what_the_field_shows(
    user: User, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    await select(user, "refuse")
    save_flow = editor_service.save_flow

    async def slow_save(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)  # a loaded server: the click on Run overtakes the save
        return await save_flow(*args, **kwargs)

    monkeypatch.setattr(editor_service, "save_flow", slow_save)
    retype(user, "inspector-input-message", "Order {{ trigger.body.id }} bounced")
    user.find(marker="run-test").click()
    for _ in range(3):
        await settle()
    run_id = await testruns.last_test_run(hub, "Orders", "order")
    assert run_id is not None
    detail = await executions.get_execution(hub, run_id)
    (refuse,) = [s for s in detail["steps"] if s["step_id"] == "refuse"]
    assert refuse["input"]["message"] == "Order  bounced"
