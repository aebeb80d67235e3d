"""Editor service: create and open integrations, save flows with revisions, layout, config,
problems and auto-layout."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.persistence import SecretBox, load_secret_key, open_database
from app.services import editor, integrations
from app.services.editor import auto_layout
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from app.settings import Settings
from components.registry import default_registry
from runtime.graph import to_graph
from runtime.http import make_http_client
from runtime.model import Flow, Position


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    engine = open_database(tmp_path)
    async with make_http_client() as http:
        yield Hub(
            settings=Settings(data_dir=tmp_path),
            db=engine,
            registry=default_registry(),
            http=http,
            box=SecretBox(load_secret_key(tmp_path)),
        )
    engine.dispose()


def orders_flow(**changes: Any) -> Flow:
    """A webhook, a branch on the amount, and one transform per branch port."""
    data: dict[str, Any] = {
        "id": "orders",
        "name": "Orders",
        "trigger": {"id": "trigger", "name": "Webhook", "action": "webhook.webhook"},
        "steps": [
            {
                "id": "big",
                "action": "branch.expression",
                "inputs": {
                    "groups": [
                        {
                            "conditions": [
                                {"left": "{{ trigger.body.amount }}", "operator": ">", "right": 100}
                            ]
                        }
                    ]
                },
            },
            {"id": "priority", "action": "transform.object", "inputs": {"fields": {"q": "p"}}},
            {"id": "normal", "action": "transform.object", "inputs": {"fields": {"q": "n"}}},
        ],
        "edges": [
            {"from": "trigger", "to": "big"},
            {"from": "big", "to": "priority", "port": "true"},
            {"from": "big", "to": "normal", "port": "false"},
        ],
    }
    data.update(changes)
    return Flow.model_validate(data)


async def new_orders(hub: Hub) -> int:
    """An integration 'Shop' with the orders flow saved; returns its revision."""
    await editor.create_integration(hub, "Shop", "Order routing")
    added = await editor.add_flow(hub, "Shop", "orders", "Orders", "webhook.webhook")
    saved = await editor.save_flow(hub, "Shop", orders_flow(), added.revision)
    return saved.revision


# --- create and open ----------------------------------------------------------------------------


async def test_create_opens_an_empty_draft_and_refuses_a_taken_name(hub: Hub) -> None:
    state = await editor.create_integration(hub, "  Shop ", "Order routing")
    assert state.integration.name == "Shop"
    assert state.integration.description == "Order routing"
    assert state.integration.flows == []
    assert (state.version, state.published, state.revisions) == (1, False, {})
    assert (await editor.load_editor(hub, "Shop")) == state

    with pytest.raises(Conflict, match="An integration named 'Shop' already exists"):
        await editor.create_integration(hub, "Shop")
    with pytest.raises(InvalidInput) as blank:
        await editor.create_integration(hub, "   ")
    assert blank.value.details == {"name": "required"}
    with pytest.raises(NotFound, match="no integration named 'Nope'"):
        await editor.load_editor(hub, "Nope")


async def test_add_flow_starts_with_its_trigger_placed(hub: Hub) -> None:
    await editor.create_integration(hub, "Shop")
    added = await editor.add_flow(hub, "Shop", "orders", " Orders ", "webhook.webhook")
    assert (added.flow_id, added.revision, added.problems) == ("orders", 1, [])
    state = await editor.load_editor(hub, "Shop")
    flow = state.flow("orders")
    assert flow is not None
    assert (flow.name, flow.trigger.id, flow.trigger.name) == ("Orders", "trigger", "Webhook")
    assert state.revisions == {"orders": 1}
    assert state.positions("orders") == {"trigger": Position(x=0, y=0)}


async def test_add_flow_names_each_bad_field_and_a_taken_id(hub: Hub) -> None:
    await editor.create_integration(hub, "Shop")
    with pytest.raises(InvalidInput) as bad:
        await editor.add_flow(hub, "Shop", "1 bad id", "x", "nope.trigger")
    assert set(bad.value.details) == {"flow_id", "trigger_action"}
    assert "letters, digits and underscores" in bad.value.details["flow_id"]
    assert "nope" in bad.value.details["trigger_action"]
    await editor.add_flow(hub, "Shop", "orders", "Orders", "manual.manual")
    with pytest.raises(Conflict, match="Integration 'Shop' already has a flow 'orders'"):
        await editor.add_flow(hub, "Shop", "orders", "Again", "manual.manual")
    with pytest.raises(NotFound):
        await editor.add_flow(hub, "Nope", "orders", "Orders", "manual.manual")
    assert (await editor.load_editor(hub, "Shop")).revisions == {"orders": 1}


# --- saving flows -------------------------------------------------------------------------------


async def test_save_flow_bumps_the_revision_and_reports_problems_without_refusing(
    hub: Hub,
) -> None:
    revision = await new_orders(hub)
    assert revision == 2
    incomplete = orders_flow(
        steps=[*orders_flow().steps, {"id": "call", "action": "http.request", "inputs": {}}],
        edges=[*orders_flow().edges, {"from": "priority", "to": "call"}],
    )
    saved = await editor.save_flow(hub, "Shop", incomplete, revision)
    assert saved.revision == 3
    errors = [p for p in saved.problems if p.severity == "error"]
    assert errors and all(p.step == "call" for p in errors)
    assert any("Step 'call' is missing required input 'url'" in p.message for p in errors)
    state = await editor.load_editor(hub, "Shop")
    assert state.flow("orders") == incomplete
    assert state.revisions == {"orders": 3}


async def test_a_stale_save_is_a_conflict_and_changes_nothing(hub: Hub) -> None:
    revision = await new_orders(hub)
    mine = orders_flow(name="Mine")
    theirs = orders_flow(name="Theirs")
    await editor.save_flow(hub, "Shop", theirs, revision)
    with pytest.raises(Conflict) as stale:
        await editor.save_flow(hub, "Shop", mine, revision, {"big": {"x": 5, "y": 5}})
    assert "changed elsewhere" in stale.value.message
    assert "Reload" in stale.value.message
    assert stale.value.details == {"flow": "orders", "revision": 3, "expected": 2}
    state = await editor.load_editor(hub, "Shop")
    assert state.flow("orders") == theirs
    assert "big" not in state.positions("orders")  # the refused save stored no positions either


async def test_saving_a_deleted_flow_says_so(hub: Hub) -> None:
    revision = await new_orders(hub)
    await editor.delete_flow(hub, "Shop", "orders")
    with pytest.raises(Conflict, match="Flow 'orders' was deleted elsewhere"):
        await editor.save_flow(hub, "Shop", orders_flow(), revision)


async def test_a_flow_given_as_data_is_validated_field_by_field(hub: Hub) -> None:
    revision = await new_orders(hub)
    data = orders_flow().model_dump(mode="json", by_alias=True)
    data["steps"][0]["id"] = "no spaces allowed"
    data["settings"] = {"timeout": -1}
    with pytest.raises(InvalidInput) as bad:
        await editor.save_flow(hub, "Shop", data, revision)
    assert "steps.0.id" in bad.value.details
    assert "settings.timeout" in bad.value.details
    good = orders_flow().model_dump(mode="json", by_alias=True)
    assert (await editor.save_flow(hub, "Shop", good, revision)).revision == revision + 1


async def test_saving_after_publish_starts_a_new_draft_with_the_same_revisions(hub: Hub) -> None:
    revision = await new_orders(hub)
    assert await integrations.publish(hub, "Shop") == 1
    opened = await editor.load_editor(hub, "Shop")
    assert (opened.version, opened.published, opened.revisions) == (1, True, {"orders": revision})
    await editor.save_flow(hub, "Shop", orders_flow(name="v2"), revision)
    state = await editor.load_editor(hub, "Shop")
    assert (state.version, state.published) == (2, False)
    published = await integrations.get_integration(hub, "Shop", 1)
    assert published.integration.flows[0].name == "Orders"  # the published version is frozen


# --- layout -------------------------------------------------------------------------------------


async def test_moving_nodes_keeps_the_revision_and_merges_positions(hub: Hub) -> None:
    revision = await new_orders(hub)
    stored = await editor.save_layout(
        hub, "Shop", "orders", {"big": Position(x=300, y=0), "priority": {"x": 600, "y": -80}}
    )
    assert stored == {
        "trigger": Position(x=0, y=0),
        "big": Position(x=300, y=0),
        "priority": Position(x=600, y=-80),
    }
    await editor.save_layout(hub, "Shop", "orders", {"big": {"x": 320, "y": 10}})
    state = await editor.load_editor(hub, "Shop")
    assert state.revisions == {"orders": revision}  # a move is not a logic change
    assert state.positions("orders")["big"] == Position(x=320, y=10)
    assert state.positions("orders")["priority"] == Position(x=600, y=-80)
    # A save based on the revision from before the moves is not stale.
    assert (await editor.save_flow(hub, "Shop", orders_flow(), revision)).revision == revision + 1

    replaced = await editor.save_layout(
        hub, "Shop", "orders", {"big": {"x": 1, "y": 2}}, replace=True
    )
    assert replaced == {"big": Position(x=1, y=2)}


async def test_bad_positions_are_refused_by_step(hub: Hub) -> None:
    await new_orders(hub)
    positions: dict[str, Any] = {  # as a page might send them
        "ghost": {"x": 1, "y": 1},
        "big": {"x": "left"},
        "normal": {"x": float("nan"), "y": 0},
    }
    with pytest.raises(InvalidInput) as bad:
        await editor.save_layout(hub, "Shop", "orders", positions)
    assert bad.value.details == {
        "positions.ghost": "flow 'orders' has no step 'ghost'",
        "positions.big": 'give the position as {"x": <number>, "y": <number>}',
        "positions.normal": "x and y must be finite numbers",
    }
    assert (await editor.load_editor(hub, "Shop")).positions("orders") == {
        "trigger": Position(x=0, y=0)
    }
    with pytest.raises(NotFound, match="has no flow 'other'"):
        await editor.save_layout(hub, "Shop", "other", {})


async def test_a_saved_flow_and_its_positions_go_together_and_removed_steps_lose_theirs(
    hub: Hub,
) -> None:
    revision = await new_orders(hub)
    saved = await editor.save_flow(
        hub,
        "Shop",
        orders_flow(),
        revision,
        {"normal": {"x": 10, "y": 20}, "gone": {"x": 1, "y": 1}},
    )
    positions = (await editor.load_editor(hub, "Shop")).positions("orders")
    assert positions["normal"] == Position(x=10, y=20)
    assert "gone" not in positions  # a step the saved flow does not have
    without_normal = orders_flow(steps=orders_flow().steps[:2], edges=orders_flow().edges[:2])
    await editor.save_flow(hub, "Shop", without_normal, saved.revision)
    assert "normal" not in (await editor.load_editor(hub, "Shop")).positions("orders")


# --- rename and delete --------------------------------------------------------------------------


async def test_rename_bumps_the_revision_and_checks_it_when_given(hub: Hub) -> None:
    revision = await new_orders(hub)
    renamed = await editor.rename_flow(hub, "Shop", "orders", " Big orders ")
    assert renamed.revision == revision + 1
    state = await editor.load_editor(hub, "Shop")
    flow = state.flow("orders")
    assert flow is not None and flow.name == "Big orders"
    with pytest.raises(Conflict, match="changed elsewhere"):
        await editor.rename_flow(hub, "Shop", "orders", "Again", expected_revision=revision)
    with pytest.raises(InvalidInput) as blank:
        await editor.rename_flow(hub, "Shop", "orders", "  ")
    assert blank.value.details == {"name": "give the flow a name"}
    with pytest.raises(NotFound, match="has no flow 'nope'"):
        await editor.rename_flow(hub, "Shop", "nope", "x")


async def test_delete_flow_removes_it_and_its_layout(hub: Hub) -> None:
    await new_orders(hub)
    await editor.add_flow(hub, "Shop", "other", "Other", "manual.manual")
    await editor.delete_flow(hub, "Shop", "orders")
    state = await editor.load_editor(hub, "Shop")
    assert [f.id for f in state.integration.flows] == ["other"]
    assert set(state.integration.layout) == {"other"}
    with pytest.raises(NotFound, match="has no flow 'orders'"):
        await editor.delete_flow(hub, "Shop", "orders")


async def test_the_preprocess_flow_cannot_be_deleted(hub: Hub) -> None:
    text = """\
name: Routed
endpoint:
  preprocess_flow: router
flows:
  - id: router
    trigger: {id: trigger, action: webhook.webhook}
"""
    await integrations.import_integration(hub, text)
    with pytest.raises(Conflict, match="pre-process flow of integration 'Routed'"):
        await editor.delete_flow(hub, "Routed", "router")
    assert (await editor.load_editor(hub, "Routed")).revisions == {"router": 1}


# --- config -------------------------------------------------------------------------------------


async def test_save_config_reports_every_field_and_saves_nothing(hub: Hub) -> None:
    await new_orders(hub)
    with pytest.raises(InvalidInput) as bad:
        await editor.save_config(
            hub,
            "Shop",
            [
                {"key": "limit", "type": "integer", "default": "ten"},
                {"key": "limit", "type": "string"},
                {"key": "token", "type": "secret", "default": "abc"},
                {"key": "bad key"},
                {"key": "mode", "type": "colour"},
            ],
            [{"key": "crm"}, {"key": "crm", "type": "basic"}],
        )
    details = bad.value.details
    assert details == {
        "config.0.default": "the default does not fit: 'limit' is of type integer; expected an "
        "integer such as 3",
        "config.1.key": "'limit' is already the key of variable 1",
        "config.2.default": "a secret variable has no default: its value is given per instance "
        "and stored encrypted",
        "config.3.key": "use letters, digits and underscores, starting with a letter or "
        "underscore (at most 64)",
        "config.4.type": details["config.4.type"],
        "connections.1.key": "'crm' is already the key of connection 1",
    }
    assert "'string'" in details["config.4.type"]
    assert "5 problems" not in bad.value.message and "6 problems" in bad.value.message
    state = await editor.load_editor(hub, "Shop")
    assert (state.integration.config, state.integration.connections) == ([], [])


async def test_save_config_stores_typed_defaults_without_touching_flows(hub: Hub) -> None:
    revision = await new_orders(hub)
    state = await editor.save_config(
        hub,
        "Shop",
        [{"key": "limit", "type": "integer", "default": "3"}, {"key": "token", "type": "secret"}],
        [{"key": "crm", "type": "bearer", "description": "CRM token"}],
    )
    assert [(v.key, v.default) for v in state.integration.config] == [("limit", 3), ("token", None)]
    assert [c.key for c in state.integration.connections] == ["crm"]
    assert state.revisions == {"orders": revision}
    exported = await integrations.export_integration(hub, "Shop")
    assert "default: 3" in exported


# --- problems -----------------------------------------------------------------------------------


async def test_problems_name_the_step_and_come_errors_first(hub: Hub) -> None:
    revision = await new_orders(hub)
    flow = orders_flow(
        steps=[
            *orders_flow().steps,
            {
                "id": "use",
                "action": "transform.object",
                "inputs": {"fields": {"x": "{{ config.nope }}"}},
            },
        ],
        edges=[*orders_flow().edges[:2], {"from": "priority", "to": "use"}],
    )
    state = await editor.load_editor(hub, "Shop")
    found = editor.problems(hub, state.integration, flow)
    # `big`'s `false` port lost its edge: no problem (that path does nothing); `normal` is
    # unreachable now.
    assert [(p.severity, p.step) for p in found] == [("error", "use"), ("warning", "normal")]
    assert "config.nope" in found[0].message and found[0].flow == "orders"
    assert "not connected to the trigger" in found[1].message
    # The whole integration (as saved), with the flow named in each message.
    await editor.save_flow(hub, "Shop", flow, revision)
    saved = (await editor.load_editor(hub, "Shop")).integration
    every = editor.problems(hub.registry, saved)
    assert [p.step for p in every] == ["use", "normal"]
    assert every[0].message.startswith("Flow 'Orders': ")


# --- auto-layout --------------------------------------------------------------------------------


def layered(edges: list[tuple[str, str, str]], steps: list[str] | None = None) -> Flow:
    names = steps or sorted({n for e in edges for n in e[:2]} - {"t"})
    return Flow.model_validate(
        {
            "id": "f",
            "trigger": {"id": "t", "action": "manual.manual"},
            "steps": [{"id": n, "action": "transform.object"} for n in names],
            "edges": [{"from": a, "to": b, "port": p} for a, b, p in edges],
        }
    )


def crossings(flow: Flow, positions: dict[str, Position]) -> int:
    pairs = [(positions[e.source], positions[e.target]) for e in flow.edges]
    count = 0
    for (a1, b1), (a2, b2) in itertools.combinations(pairs, 2):
        if a1.x == a2.x and b1.x == b2.x and (a1.y - a2.y) * (b1.y - b2.y) < 0:
            count += 1
    return count


def test_auto_layout_puts_every_edge_left_to_right_and_is_deterministic() -> None:
    flow = orders_flow(
        steps=[
            *orders_flow().steps,
            {"id": "join", "action": "transform.object", "inputs": {"fields": {}}},
        ],
        edges=[
            *orders_flow().edges,
            {"from": "priority", "to": "join"},
            {"from": "normal", "to": "join"},
            {"from": "trigger", "to": "join"},
        ],
    )
    positions = auto_layout(flow, default_registry())
    assert set(positions) == {"trigger", "big", "priority", "normal", "join"}
    for edge in flow.edges:
        assert positions[edge.source].x < positions[edge.target].x, edge
    assert [positions[s].x for s in ("trigger", "big", "priority", "join")] == [0, 280, 560, 840]
    assert positions == auto_layout(flow, default_registry())
    assert len({(p.x, p.y) for p in positions.values()}) == len(positions)  # no overlaps
    assert positions["trigger"].y == positions["big"].y == positions["join"].y  # centred


def test_auto_layout_orders_branch_children_by_port_not_file_order() -> None:
    flow = orders_flow(steps=[orders_flow().steps[0], *reversed(orders_flow().steps[1:])])
    assert [s.id for s in flow.steps] == ["big", "normal", "priority"]
    positions = auto_layout(flow, default_registry())
    assert positions["priority"].y < positions["normal"].y  # `true` above `false`
    # Without a registry the port order is the order of the step's edges in the flow.
    assert auto_layout(flow)["priority"].y < auto_layout(flow)["normal"].y


def test_auto_layout_removes_crossings_that_file_order_would_make() -> None:
    flow = layered(
        [("t", "a", "out"), ("t", "b", "out"), ("a", "d", "out"), ("b", "c", "out")],
        steps=["a", "b", "c", "d"],
    )
    positions = auto_layout(flow)
    assert positions["d"].y < positions["c"].y
    assert crossings(flow, positions) == 0
    naive = {"c": Position(x=560, y=0), "d": Position(x=560, y=140)}
    assert crossings(flow, {**positions, **naive}) == 1


def test_auto_layout_of_a_larger_graph_keeps_edges_forward() -> None:
    edges = [("t", f"s{i}", "out") for i in range(3)]
    edges += [(f"s{i}", f"m{j}", "out") for i in range(3) for j in range(3) if (i + j) % 2 == 0]
    edges += [(f"m{j}", "end", "out") for j in range(3)]
    flow = layered(edges)
    positions = auto_layout(flow)
    graph = to_graph(flow)
    for u, v in graph.edges:
        assert positions[u].x < positions[v].x
    assert positions == auto_layout(layered(edges))


def test_auto_layout_survives_a_cycle_and_unconnected_steps() -> None:
    flow = layered([("t", "a", "out"), ("a", "b", "out"), ("b", "a", "out")], ["a", "b", "lone"])
    positions = auto_layout(flow)
    assert positions["t"].x < positions["a"].x < positions["b"].x
    assert positions["lone"].x == 0
