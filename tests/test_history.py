"""Undo histories outlive the page (`designer.history`): adopted only by the same flow."""

from __future__ import annotations

from components.registry import default_registry
from designer.editing import FlowEditor
from designer.history import HistoryStore
from runtime.model import Flow, Position, Step

REGISTRY = default_registry(None)
KEY = ("/data", "Orders", "f")


def opened(flow: Flow) -> FlowEditor:
    """An editor as a freshly loaded page makes it: no history of its own."""
    return FlowEditor(flow, REGISTRY, {"start": Position(x=0, y=0)})


def edited() -> FlowEditor:
    editor = opened(Flow(id="f", trigger=Step(id="start", action="webhook.webhook")))
    editor.add_step("log.message", Position(x=200, y=0))
    editor.add_step("http.request", Position(x=400, y=0))
    editor.undo()
    return editor


def test_a_reopened_flow_gets_its_undo_and_redo_back() -> None:
    store = HistoryStore()
    before = edited()
    store.keep(KEY, 3, before)
    after = opened(before.flow)
    assert not after.can_undo
    assert store.restore(KEY, 3, after)
    assert after.can_undo and after.can_redo
    assert after.redo() and [s.id for s in after.flow.steps] == ["message", "request"]
    assert after.undo() and after.undo()
    assert after.flow.steps == [] and not after.can_undo


def test_a_history_of_another_revision_or_flow_is_not_adopted() -> None:
    store = HistoryStore()
    before = edited()
    store.keep(KEY, 3, before)
    assert not store.restore(KEY, 4, opened(before.flow))  # saved elsewhere since
    other = before.flow.model_copy(update={"steps": []})
    changed = opened(other)
    assert not store.restore(KEY, 3, changed)  # a different flow at the same revision
    assert not changed.can_undo
    assert not store.restore(("/data", "Orders", "g"), 3, opened(before.flow))


def test_the_store_keeps_only_the_most_recent_flows() -> None:
    store = HistoryStore(size=2)
    editor = edited()
    for name in ("a", "b", "c"):
        store.keep(("/data", name, "f"), 1, editor)
    assert not store.restore(("/data", "a", "f"), 1, opened(editor.flow))
    assert store.restore(("/data", "c", "f"), 1, opened(editor.flow))
