"""The editor page's Python side with NiceGUI's simulated user: canvas events as the browser
sends them, saving with revisions and conflicts, the problems list, palette search, undo/redo,
the config editor's per-field errors, and the first flow started by dropping a trigger."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import background_tasks, ui
from nicegui.testing import User

from app.services import editor as editor_service
from app.services.hub import Hub
from designer.canvas import FlowCanvas
from runtime.model import Edge, Position, Step
from tests.pages.conftest import import_yaml, wait_for

EDITOR = "/integrations/Orders"


def canvas(user: User) -> FlowCanvas:
    found = user.find(FlowCanvas).elements
    assert len(found) == 1
    element = found.pop()
    assert isinstance(element, FlowCanvas)
    return element


async def settle() -> None:
    """Wait until the page's handlers (run as tasks) are done, e.g. have saved."""
    for _ in range(100):
        await asyncio.sleep(0.02)
        if not background_tasks.running_tasks:
            break


async def send(user: User, event: dict[str, Any]) -> None:
    """A canvas edit exactly as the browser reports it, then let the page handle it."""
    user.find(FlowCanvas).trigger("change", event)
    await settle()


def graph_ids(element: FlowCanvas) -> tuple[list[str], list[str]]:
    graph = element.props["graph"]
    return [n["id"] for n in graph["nodes"]], [e["id"] for e in graph["edges"]]


async def stored_flow(hub: Hub, flow_id: str = "order") -> Any:
    state = await editor_service.load_editor(hub, "Orders")
    return state.flow(flow_id), state


async def test_opens_the_flow_with_palette_tabs_and_problems(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    await user.should_see("Order received")  # the flow's tab
    await user.should_see("http.request")  # a palette entry
    element = canvas(user)
    nodes, edges = graph_ids(element)
    flow, state = await stored_flow(hub)
    assert nodes == [s.id for s in flow.all_steps()]
    assert len(edges) == len(flow.edges)
    issues = editor_service.problems(hub, state.integration, flow)
    await user.should_see(issues[0].message if issues else "No problems.")


async def test_palette_search_filters_entries(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    user.find(marker="palette-search").type("branch")
    await user.should_see("branch.expression")
    await user.should_not_see("http.request")


async def test_drop_connect_move_and_remove_are_saved_with_revisions(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    element = canvas(user)
    _, before = await stored_flow(hub)
    revision = before.revisions["order"]
    await send(user, {"type": "drop", "action": "log.message", "x": 900, "y": 40})
    flow, state = await stored_flow(hub)
    assert flow.steps[-1].id == "message" and flow.steps[-1].action == "log.message"
    assert state.revisions["order"] == revision + 1
    assert state.positions("order")["message"] == Position(x=900, y=40)
    assert "message" in graph_ids(element)[0]  # the page pushed the new step to the canvas
    await user.should_see("Step 'message' is missing required input 'message'")

    last = "note"
    await send(
        user,
        {"type": "edge_added", "edge": {"source": last, "target": "message", "port": "out"}},
    )
    flow, state = await stored_flow(hub)
    assert Edge.model_validate({"from": last, "to": "message"}) in flow.edges
    moved_revision = state.revisions["order"]
    await send(user, {"type": "nodes_moved", "nodes": [{"id": "message", "x": 10, "y": 20}]})
    flow, state = await stored_flow(hub)
    assert state.positions("order")["message"] == Position(x=10, y=20)
    assert state.revisions["order"] == moved_revision  # moving is not a logic change

    await send(user, {"type": "nodes_removed", "ids": ["message"]})
    flow, _ = await stored_flow(hub)
    assert "message" not in [s.id for s in flow.steps]
    assert all(e.target != "message" for e in flow.edges)


async def test_a_refused_connection_names_the_problem_and_changes_nothing(
    user: User, hub: Hub
) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    flow, state = await stored_flow(hub)
    first, last = "accepted", "note"  # accepted -> each -> note already
    revision = state.revisions["order"]
    pushed = canvas(user).revision
    await send(
        user, {"type": "edge_added", "edge": {"source": last, "target": first, "port": "out"}}
    )
    await user.should_see("would make a loop")
    after, state = await stored_flow(hub)
    assert after == flow and state.revisions["order"] == revision
    assert canvas(user).revision == pushed + 1  # the browser's optimistic edge is taken back


async def test_undo_and_redo_restore_and_save(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    await send(user, {"type": "drop", "action": "log.message", "x": 1, "y": 2})

    async def stored_has_message() -> bool:
        flow, _ = await stored_flow(hub)
        return "message" in [s.id for s in flow.steps]

    async def stored_lacks_message() -> bool:
        return not await stored_has_message()

    # The clicks save in a task: wait for the stored flow (a fixed sleep failed on a busy box).
    user.find(marker="undo").click()
    await wait_for(stored_lacks_message, message="undo was not saved")
    user.find(marker="redo").click()
    await wait_for(stored_has_message, message="redo was not saved")


async def test_a_stale_revision_shows_the_conflict_and_reload_recovers(
    user: User, hub: Hub
) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    flow, state = await stored_flow(hub)
    # Someone else saves the flow in between.
    renamed = flow.model_copy(update={"description": "edited elsewhere"})
    await editor_service.save_flow(hub, "Orders", renamed, state.revisions["order"])
    await send(user, {"type": "drop", "action": "log.message", "x": 1, "y": 2})
    await user.should_see("changed elsewhere")
    after, _ = await stored_flow(hub)
    assert "message" not in [s.id for s in after.steps]  # nothing overwritten
    user.find(marker="reload").click()
    await user.should_see("Reloaded")
    await send(user, {"type": "drop", "action": "log.message", "x": 1, "y": 2})
    after, _ = await stored_flow(hub)
    assert after.description == "edited elsewhere"
    assert "message" in [s.id for s in after.steps]


async def test_problem_click_selects_the_step_in_the_inspector(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    await send(user, {"type": "drop", "action": "http.request", "x": 1, "y": 2})
    await send(user, {"type": "selection", "nodes": [], "edges": []})
    await user.should_see("Select a step to edit it.")
    user.find(marker="problem-request").click()
    step_id = user.find(marker="step-id").elements.pop()
    assert isinstance(step_id, ui.input) and step_id.value == "request"
    await user.should_see("HTTP request")


async def test_config_editor_shows_per_field_errors_and_saves(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(EDITOR)
    user.find(marker="config-button").click()
    await user.should_see(marker="add-variable")
    user.find(marker="add-variable").click()
    _, state = await stored_flow(hub)
    index = len(state.integration.config)
    user.find(marker=f"config-{index}-key").type("limit")
    kind = user.find(marker=f"config-{index}-type").elements.pop()
    assert isinstance(kind, ui.select)
    kind.value = "integer"
    user.find(marker=f"config-{index}-default").type("{oops")
    user.find(marker="save-config").click()
    await asyncio.sleep(0.1)
    default = user.find(marker=f"config-{index}-default").elements.pop()
    assert isinstance(default, ui.input)
    assert "not valid JSON" in str(default.error)
    _, after = await stored_flow(hub)
    assert [v.key for v in after.integration.config] == [v.key for v in state.integration.config]
    user.find(marker=f"config-{index}-default").clear().type("25")
    user.find(marker="save-config").click()  # `limit` is taken: the service names the field
    key = user.find(marker=f"config-{index}-key").elements.pop()
    assert isinstance(key, ui.input)
    for _ in range(50):
        await asyncio.sleep(0.05)
        if key.error:
            break
    assert "limit" in str(key.error)
    user.find(marker=f"config-{index}-key").clear().type("page_size")
    user.find(marker="save-config").click()
    for _ in range(50):
        await asyncio.sleep(0.05)
        _, after = await stored_flow(hub)
        if after.integration.config[-1].key == "page_size":
            break
    _, after = await stored_flow(hub)
    assert after.integration.config[-1].key == "page_size"
    assert after.integration.config[-1].default == 25


async def test_dropping_a_trigger_on_an_empty_integration_starts_its_first_flow(
    user: User, hub: Hub
) -> None:
    await editor_service.create_integration(hub, "Fresh")
    await user.open("/integrations/Fresh")
    await send(user, {"type": "drop", "action": "log.message", "x": 1, "y": 2})
    await user.should_see("Start with a trigger")
    await send(user, {"type": "drop", "action": "webhook.webhook", "x": 100, "y": 200})
    state = await editor_service.load_editor(hub, "Fresh")
    assert [f.id for f in state.integration.flows] == ["flow_1"]
    flow = state.flow("flow_1")
    assert flow is not None and flow.trigger.action == "webhook.webhook"
    assert state.positions("flow_1")[flow.trigger.id] == Position(x=100, y=200)


async def test_an_unknown_integration_reads_well(user: User) -> None:
    await user.open("/integrations/Nope")
    await user.should_see("Nope")
    await user.should_see("Back to the integrations")


_ = Step
