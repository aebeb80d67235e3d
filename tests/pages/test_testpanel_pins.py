"""Pin output in the test panel (`app.services.pins` and the step view), NiceGUI's simulated user.

`shape` copies the payload's id; `note` logs what `shape` gave. Pinning `shape` after a run on
id 7 keeps it in the draft; the next run on id 8 does not run `shape` (its record says pinned)
and `note` sees 7; Unpin runs it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User

from app.pages.layout import hub as current_hub
from app.pages.testpanel import TestPanel
from app.services import editor, payloads, pins
from app.services.errors import InvalidInput
from app.services.hub import Hub
from app.services.payloads import PayloadInput, PayloadUpdate
from tests.pages.conftest import import_yaml
from tests.pages.test_testpanel import text, until

INTEGRATION = "Pin checks"
YAML = """
name: Pin checks
flows:
  - id: orders
    name: Orders
    trigger: {id: receive, action: webhook.webhook}
    steps:
      - id: shape
        action: transform.object
        inputs: {fields: {id: '{{ trigger.body.id }}'}}
      - id: note
        action: log.message
        inputs: {message: 'order {{ steps.shape.output.id }}'}
    edges:
      - {from: receive, to: shape}
      - {from: shape, to: note}
"""


async def test_pin_output_stands_in_for_the_step_until_unpinned(
    user: User, hub: Hub, tmp_path: Path
) -> None:
    path = tmp_path / "pins.yaml"
    path.write_text(YAML)
    await import_yaml(hub, path)
    created = await payloads.create_payload(
        hub, INTEGRATION, PayloadInput(flow_id="orders", name="Seven", body={"id": 7})
    )
    shown: list[list[str]] = []
    finished: list[dict[str, Any]] = []
    holder: list[TestPanel] = []

    @ui.page("/testpanel-pins")
    def page() -> None:
        panel = TestPanel(
            current_hub(),
            INTEGRATION,
            on_statuses=lambda _: None,
            on_finished=finished.append,
            on_pins=shown.append,
        )
        panel.set_flow("orders")
        holder.append(panel)

    await user.open("/testpanel-pins")
    await user.should_see(marker="run-test", retries=200)
    panel = holder[-1]
    await until(lambda: panel._loading is not None and panel._loading.done(), what="loaded")
    user.find(marker="run-test").click()
    await until(lambda: len(finished) == 1, what="first run")

    panel.show_step("shape")
    await user.should_see(marker="step-pin")
    user.find(marker="step-pin").click()
    await user.should_see(marker="step-unpin")
    assert shown[-1] == ["shape"]
    stored = await pins.flow_pins(hub, INTEGRATION, "orders")
    assert {s: p.output for s, p in stored.items()} == {"shape": {"id": 7}}
    state = await editor.load_editor(hub, INTEGRATION)
    assert state.integration.testing.pinned["orders"]["shape"].output == {"id": 7}

    # Another payload: `shape` is not run, its pinned output is what `note` sees.
    await payloads.update_payload(hub, INTEGRATION, created.id, PayloadUpdate(body={"id": 8}))
    await user.open("/testpanel-pins")
    panel = holder[-1]
    await until(lambda: panel._loading is not None and panel._loading.done(), what="reloaded")
    assert shown[-1] == ["shape"]  # the pins come back with the flow
    user.find(marker="run-test").click()
    await until(lambda: len(finished) == 2, what="pinned run")
    records = {r["step_id"]: r for r in finished[-1]["steps"]}
    assert records["shape"]["pinned"] is True
    assert records["shape"]["output"] == {"id": 7}
    assert records["note"]["logs"][0]["message"] == "order 7"
    panel.show_step("shape")
    await user.should_see(marker="step-pinned")

    # Unpin: the step runs again on the payload.
    user.find(marker="step-unpin").click()
    await user.should_see(marker="step-pin")
    assert shown[-1] == []
    assert await pins.flow_pins(hub, INTEGRATION, "orders") == {}
    user.find(marker="run-test").click()
    await until(lambda: len(finished) == 3, what="unpinned run")
    records = {r["step_id"]: r for r in finished[-1]["steps"]}
    assert records["shape"]["pinned"] is False
    assert records["note"]["logs"][0]["message"] == "order 8"
    assert "pinned" not in text(user, "step-view").split()


async def test_pinning_the_trigger_or_an_unknown_step_is_refused(hub: Hub, tmp_path: Path) -> None:
    path = tmp_path / "pins.yaml"
    path.write_text(YAML)
    await import_yaml(hub, path)
    with pytest.raises(InvalidInput, match="'receive' of flow 'Orders' cannot be pinned: the"):
        await pins.pin_output(hub, INTEGRATION, "orders", "receive", {"x": 1})
    with pytest.raises(InvalidInput, match="'ghost' of flow 'Orders' cannot be pinned: no such"):
        await pins.pin_output(hub, INTEGRATION, "orders", "ghost", {"x": 1})
    assert await pins.flow_pins(hub, INTEGRATION, "orders") == {}
    state = await editor.load_editor(hub, INTEGRATION)
    assert state.integration.testing.pinned == {}
