"""An empty start page (as `flowyard desktop` opens on a new data directory) offers the bundled
examples with one click and a proper import button, not developer instructions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nicegui import background_tasks, ui
from nicegui.testing import User

from app.services import examples, integrations
from app.services.errors import NotFound
from app.services.hub import Hub
from tests.pages.conftest import import_yaml


async def test_an_empty_start_page_offers_the_examples(user: User, hub: Hub) -> None:
    await user.open("/")
    await user.should_see("No integrations yet. Start from an example")
    await user.should_not_see("POST a file")
    await user.should_see("Warehouse import")
    await user.should_see("Order export")
    await user.should_not_see("CRM and Acme")  # its components are not loaded here
    button = user.find(marker="import-button").elements.pop()
    assert isinstance(button, ui.button) and button.text == "Import a file"
    upload = user.find(marker="import-upload").elements.pop()
    assert "hidden" in upload.classes  # no raw "0.0B / 0.00%" box

    user.find(marker="example-warehouse-import.yaml").click()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if not background_tasks.running_tasks:
            break
    names = [i.name for i in await integrations.list_integrations(hub)]
    assert names == ["Warehouse import"]
    await user.should_see("Warehouse import")  # the editor opened on it


async def test_a_start_page_with_integrations_lists_them_instead(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open("/")
    await user.should_see("Orders")
    await user.should_not_see("Start from an example")


async def test_only_examples_this_install_can_run_are_offered(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(
        (examples.EXAMPLES / "warehouse-import.yaml").read_text(encoding="utf-8")
    )
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "alien.yaml").write_text(
        "name: Alien\nflows:\n  - id: f\n    trigger: {id: t, action: webhook.webhook}\n"
        "    steps: [{id: s, action: nowhere.nothing}]\n    edges: [{from: t, to: s}]\n"
    )
    offered = await examples.bundled_examples(hub, tmp_path)
    assert [e.file for e in offered] == ["good.yaml"]
    with pytest.raises(NotFound) as missing:
        await examples.import_example(hub, "alien.yaml", tmp_path)
    assert "good.yaml" in (missing.value.hint or "")
    summary = await examples.import_example(hub, "good.yaml", tmp_path)
    assert summary.name == "Warehouse import"
