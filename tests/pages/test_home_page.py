"""The start page: importing an integration file by upload (valid, invalid, not text)."""

from __future__ import annotations

from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User

from app.services import integrations
from app.services.hub import Hub
from tests.pages.conftest import fixture_path


async def upload(user: User, name: str, data: bytes) -> None:
    element = user.find(kind=ui.upload).elements.pop()
    assert isinstance(element, ui.upload)
    with user:
        await element.handle_uploads(
            [SmallFileUpload(name=name, content_type="application/yaml", _data=data)]
        )


async def test_a_valid_file_is_imported(user: User, hub: Hub) -> None:
    await user.open("/")
    await upload(user, "orders.yaml", fixture_path("orders.yaml").read_bytes())
    await user.should_see("Imported Orders")
    names = [i.name for i in await integrations.list_integrations(hub)]
    assert names == ["Orders"]


async def test_an_invalid_file_says_why_and_imports_nothing(user: User, hub: Hub) -> None:
    await user.open("/")
    await upload(user, "broken.yaml", b"name: Broken\nflows:\n  - id: 1bad\n")
    await user.should_see("broken.yaml is not a valid integration file")
    assert await integrations.list_integrations(hub) == []
    await upload(user, "image.png", b"\x89PNG\r\n\x1a\n\xff\xfe")
    await user.should_see("image.png is not a text file")
