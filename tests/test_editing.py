"""The designer's editing operations (`designer.editing`) and the canvas graph it draws."""

from __future__ import annotations

import pytest

from components.registry import default_registry
from designer.canvas import CanvasEvent, canvas_graph
from designer.editing import EditError, FlowEditor, new_step_id
from runtime.model import Flow, Position, Step
from runtime.validation import errors_only, validate_flow

REGISTRY = default_registry(None)


def make_editor() -> FlowEditor:
    flow = Flow(id="f", trigger=Step(id="start", action="webhook.webhook"))
    return FlowEditor(flow, REGISTRY, {"start": Position(x=0, y=0)})


def test_new_step_ids_are_readable_and_unique() -> None:
    assert new_step_id("http.request", []) == "request"
    assert new_step_id("http.request", ["request"]) == "request_2"
    assert new_step_id("http.request", ["request", "request_2"]) == "request_3"
    assert new_step_id("x.9lives", []) == "step_9lives"


def test_add_connect_branch_ports_and_undo_redo() -> None:
    editor = make_editor()
    branch = editor.add_step("branch.expression", Position(x=200, y=0))
    yes = editor.add_step("http.request", Position(x=400, y=-80))
    no = editor.add_step("http.request", Position(x=400, y=80))
    editor.connect("start", "out", branch.id)
    editor.connect(branch.id, "true", yes.id)
    editor.connect(branch.id, "false", no.id)
    assert [(e.source, e.port, e.target) for e in editor.flow.edges] == [
        ("start", "out", "expression"),
        ("expression", "true", "request"),
        ("expression", "false", "request_2"),
    ]
    assert editor.layout["request_2"] == Position(x=400, y=80)
    assert editor.undo()
    assert len(editor.flow.edges) == 2
    assert editor.redo()
    assert len(editor.flow.edges) == 3
    assert not editor.redo()


def test_refused_edits_name_the_problem_and_change_nothing() -> None:
    editor = make_editor()
    a = editor.add_step("log.message", Position(x=200, y=0))
    b = editor.add_step("log.message", Position(x=400, y=0))
    editor.connect(a.id, "out", b.id)
    before = editor.flow
    with pytest.raises(EditError, match="would make a loop"):
        editor.connect(b.id, "out", a.id)
    with pytest.raises(EditError, match="is the trigger"):
        editor.connect(a.id, "out", "start")
    with pytest.raises(EditError, match="has no port 'true'"):
        editor.connect(a.id, "true", b.id)
    with pytest.raises(EditError, match="already connected"):
        editor.connect(a.id, "out", b.id)
    with pytest.raises(EditError, match="not installed"):
        editor.add_step("nope.thing", Position(x=0, y=0))
    assert editor.flow is before


def test_remove_drops_edges_and_keeps_the_trigger() -> None:
    editor = make_editor()
    a = editor.add_step("log.message", Position(x=200, y=0))
    editor.connect("start", "out", a.id)
    assert editor.remove(["start", a.id]) == [a.id]
    assert editor.flow.steps == [] and editor.flow.edges == []
    assert "start" in editor.layout and a.id not in editor.layout


def test_dropping_a_trigger_replaces_the_trigger() -> None:
    editor = make_editor()
    step = editor.add_step("schedule.cron", Position(x=10, y=20))
    assert step.id == "start"
    assert editor.flow.trigger.action == "schedule.cron"
    assert editor.layout["start"] == Position(x=10, y=20)


def test_rename_rewrites_edges_positions_and_references() -> None:
    editor = make_editor()
    a = editor.add_step("transform.object", Position(x=200, y=0))
    b = editor.add_step("log.message", Position(x=400, y=0))
    editor.replace_step(b.model_copy(update={"inputs": {"message": "{{ steps.object.output }}"}}))
    editor.connect(a.id, "out", b.id)
    editor.rename_step(a.id, "shape")
    assert editor.step("shape") is not None and editor.step(a.id) is None
    assert editor.flow.edges[0].source == "shape"
    assert editor.step(b.id).inputs["message"] == "{{ steps.shape.output }}"  # type: ignore[union-attr]
    assert "shape" in editor.layout
    with pytest.raises(EditError, match="already used"):
        editor.rename_step("shape", b.id)
    with pytest.raises(EditError, match="not a valid step id"):
        editor.rename_step("shape", "9 bad")


def test_replace_step_drops_edges_of_ports_that_no_longer_exist() -> None:
    editor = make_editor()
    route = editor.add_step("branch.value", Position(x=200, y=0))
    route = route.model_copy(
        update={"inputs": {"value": "{{ 1 }}", "cases": [{"port": "a", "equals": 1}]}}
    )
    editor.replace_step(route)
    target = editor.add_step("log.message", Position(x=400, y=0))
    editor.connect(route.id, "a", target.id)
    editor.replace_step(route.model_copy(update={"inputs": {"value": "{{ 1 }}", "cases": []}}))
    assert editor.flow.edges == []


def test_copy_paste_gives_fresh_ids_and_keeps_inner_edges() -> None:
    editor = make_editor()
    a = editor.add_step("log.message", Position(x=200, y=0))
    b = editor.add_step("log.message", Position(x=400, y=0))
    editor.connect("start", "out", a.id)
    editor.connect(a.id, "out", b.id)
    clip = editor.copy(["start", a.id, b.id])
    assert [s.id for s in clip.steps] == [a.id, b.id]
    new = editor.paste(clip)
    assert new == ["message_3", "message_4"]
    assert ("message_3", "out", "message_4") in [
        (e.source, e.port, e.target) for e in editor.flow.edges
    ]
    assert editor.layout["message_3"] == Position(x=240, y=40)
    problems = errors_only(validate_flow(editor.flow, REGISTRY))
    assert {p.code for p in problems} == {"missing_input"}  # no broken edges or duplicate ids


def test_move_ignores_unknown_steps_and_no_op_moves() -> None:
    editor = make_editor()
    editor.move({"start": Position(x=0, y=0)})
    assert not editor.can_undo
    editor.move({"start": Position(x=5, y=5), "ghost": Position(x=1, y=1)})
    assert editor.layout == {"start": Position(x=5, y=5)}
    assert editor.can_undo


def test_canvas_graph_node_kinds_ports_and_edge_labels() -> None:
    editor = make_editor()
    loop = editor.add_step("loop.items", Position(x=200, y=0))
    branch = editor.add_step("branch.expression", Position(x=400, y=0))
    editor.connect("start", "out", loop.id)
    editor.connect(loop.id, "body", branch.id)
    nodes, edges = canvas_graph(editor.flow, REGISTRY, editor.layout)
    kinds = {n["id"]: (n["kind"], n["ports"]) for n in nodes}
    assert kinds == {
        "start": ("trigger", ["out"]),
        "items": ("loop", ["body", "done"]),
        "expression": ("branch", ["true", "false"]),
    }
    assert [(e["id"], e["label"]) for e in edges] == [
        ("start:out->items", ""),
        ("items:body->expression", "body"),
    ]


def test_canvas_events_parse_and_refuse_garbage() -> None:
    moved = CanvasEvent.parse({"type": "nodes_moved", "nodes": [{"id": "a", "x": 1, "y": 2.5}]})
    assert moved.positions == {"a": Position(x=1, y=2.5)}
    added = CanvasEvent.parse(
        {"type": "edge_added", "edge": {"source": "a", "target": "b", "port": "true"}}
    )
    assert added.edges == ({"source": "a", "target": "b", "port": "true"},)
    drop = CanvasEvent.parse({"type": "drop", "action": "http.request", "x": 3, "y": 4})
    assert drop.action == "http.request" and drop.position == Position(x=3, y=4)
    with pytest.raises(ValueError, match="unknown canvas event"):
        CanvasEvent.parse({"type": "explode"})
    with pytest.raises(KeyError):
        CanvasEvent.parse({"type": "nodes_moved"})


def test_typing_in_one_step_is_one_undo_step() -> None:
    editor = make_editor()
    step = editor.add_step("log.message", Position(x=200, y=0))
    for index, text in enumerate(["h", "he", "hel", "hell", "hello"]):
        changed = step.model_copy(update={"inputs": {"message": text}})
        editor.replace_step(changed, now=100.0 + index * 0.3)
    editor.replace_step(step.model_copy(update={"inputs": {"message": "x"}}), now=110.0)
    assert editor.step(step.id).inputs == {"message": "x"}  # type: ignore[union-attr]
    assert editor.undo()
    assert editor.step(step.id).inputs == {"message": "hello"}  # type: ignore[union-attr]
    assert editor.undo()
    assert editor.step(step.id).inputs == {}  # type: ignore[union-attr]
    assert editor.undo()
    assert editor.step(step.id) is None
