"""Every icon-only button says what it does: a tooltip on each button without text, on the
editor (palette, inspector, test panel with a step's result), the start page and the
executions pages."""

from __future__ import annotations

from nicegui import ElementFilter, ui
from nicegui.testing import User

from app.services import payloads
from app.services.hub import Hub
from app.services.payloads import PayloadInput
from designer.canvas import FlowCanvas
from tests.pages.conftest import import_yaml
from tests.pages.test_editor_page import settle
from tests.pages.test_editor_trust import run_and_wait, run_link


def untipped(user: User) -> list[str]:
    """The icon-only buttons (shown or not) without a tooltip, by icon."""
    with user:
        buttons = list(ElementFilter(kind=ui.button, only_visible=False))
        tips = list(ElementFilter(kind=ui.tooltip, only_visible=False))
    # `.tooltip(text)` adds a tooltip targeting the element; `with button: ui.tooltip()` nests one
    targets = {str(tip.props.get("target")) for tip in tips}
    return sorted(
        str(button.props.get("icon") or button.props.get("data-testid") or button.id)
        for button in buttons
        if not button.text
        and f"#{button.html_id}" not in targets
        and not any(isinstance(c, ui.tooltip) for c in button.descendants())
    )


async def test_icon_only_buttons_have_tooltips(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await payloads.create_payload(
        hub,
        "Orders",
        PayloadInput(
            flow_id="order",
            name="ok",
            body={"ok": True, "items": [1]},
            headers={"x-source": "shop"},
            query={"page": "1"},
        ),
    )
    await user.open("/")
    assert untipped(user) == []

    await user.open("/integrations/Orders")
    await settle()
    await run_and_wait(user)
    execution = run_link(user)
    for step_id in ("accepted", "each", "note"):  # conditions, a loop, a template field
        user.find(FlowCanvas).trigger(
            "change", {"type": "selection", "nodes": [step_id], "edges": []}
        )
        await settle()
        assert untipped(user) == [], step_id
    user.find(marker="config-button").click()  # the integration's config and connections
    await settle()
    assert untipped(user) == []

    await user.open("/executions")
    assert untipped(user) == []
    assert execution is not None
    await user.open(execution)
    await user.should_see("Order received")
    assert untipped(user) == []
