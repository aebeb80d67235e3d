"""Typing is one revision: `editor.save_flow(..., edit=...)` coalesces a burst of saves of one
edit into the revision its first save made, and never at the cost of someone else's save."""

from __future__ import annotations

import pytest

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.services import edit_bursts, editor
from app.services.errors import Conflict
from app.services.hub import Hub
from runtime.model import Flow
from tests.server.test_editor_service import hub, new_orders, orders_flow

__all__ = ["hub"]


def typed(text: str) -> Flow:
    return orders_flow(
        steps=[
            *orders_flow().steps[:1],
            {"id": "priority", "action": "transform.object", "inputs": {"fields": {"q": text}}},
            *orders_flow().steps[2:],
        ]
    )


async def stored(hub: Hub) -> tuple[Flow, int]:
    state = await editor.load_editor(hub, "Shop")
    flow = state.flow("orders")
    assert flow is not None
    return flow, state.revisions["orders"]


async def test_keystrokes_of_one_edit_are_one_revision(hub: Hub) -> None:
    revision = await new_orders(hub)
    expected, answers = revision, []
    for text in ("u", "ur", "urg", "urge"):  # as the editor saves: each answer is the next base
        saved = await editor.save_flow(hub, "Shop", typed(text), expected, edit="step:priority")
        answers.append(saved.revision)
        expected = saved.revision
    assert answers == [revision + 1] * 4
    assert await stored(hub) == (typed("urge"), revision + 1)


async def test_another_edit_or_a_pause_starts_a_new_revision(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    revision = await new_orders(hub)
    first = await editor.save_flow(hub, "Shop", typed("a"), revision, edit="step:priority")
    other = await editor.save_flow(hub, "Shop", typed("b"), first.revision, edit="step:normal")
    assert other.revision == first.revision + 1
    plain = await editor.save_flow(hub, "Shop", typed("c"), other.revision)
    assert plain.revision == other.revision + 1
    again = await editor.save_flow(hub, "Shop", typed("d"), plain.revision, edit="step:normal")
    assert again.revision == plain.revision + 1  # a save without `edit` ended the burst
    monkeypatch.setattr(edit_bursts, "IDLE_SECONDS", 0.0)
    paused = await editor.save_flow(hub, "Shop", typed("e"), again.revision, edit="step:normal")
    assert paused.revision == again.revision + 1
    assert await stored(hub) == (typed("e"), paused.revision)


async def test_a_save_by_someone_else_in_between_makes_the_burst_stale(hub: Hub) -> None:
    revision = await new_orders(hub)
    mine = await editor.save_flow(hub, "Shop", typed("a"), revision, edit="step:priority")
    theirs = orders_flow(name="Theirs")
    await editor.save_flow(hub, "Shop", theirs, mine.revision)
    with pytest.raises(Conflict):
        await editor.save_flow(hub, "Shop", typed("ab"), mine.revision, edit="step:priority")
    assert await stored(hub) == (theirs, mine.revision + 1)


async def test_a_save_from_another_process_in_between_is_not_overwritten(hub: Hub) -> None:
    revision = await new_orders(hub)
    mine = await editor.save_flow(hub, "Shop", typed("a"), revision, edit="step:priority")
    theirs = orders_flow(name="Theirs")
    with session_scope(hub.db) as session:  # written without this process's service knowing
        repo.save_flow(session, "Shop", theirs, mine.revision)
    with pytest.raises(Conflict):
        await editor.save_flow(hub, "Shop", typed("ab"), mine.revision, edit="step:priority")
    assert await stored(hub) == (theirs, mine.revision + 1)


async def test_a_rename_ends_the_burst(hub: Hub) -> None:
    revision = await new_orders(hub)
    mine = await editor.save_flow(hub, "Shop", typed("a"), revision, edit="step:priority")
    renamed = await editor.rename_flow(hub, "Shop", "orders", "Orders (EU)")
    assert renamed.revision == mine.revision + 1
    with pytest.raises(Conflict):
        await editor.save_flow(hub, "Shop", typed("ab"), mine.revision, edit="step:priority")
