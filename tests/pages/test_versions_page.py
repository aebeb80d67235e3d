"""The designer's version bar (Publish with a note) and the version history with its diff."""

from __future__ import annotations

from nicegui.testing import User

from app.services import integrations
from app.services.hub import Hub
from tests.pages.conftest import FIXTURE_DIRS, import_yaml
from tests.pages.test_instances_page import fill


async def test_publish_from_the_designer_with_a_note(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open("/integrations/Orders")
    await user.should_see("Not published yet", retries=20)
    user.find(marker="publish").click()
    await user.should_see(marker="publish-note", retries=20)
    fill(user, "publish-note", "first release")
    user.find(marker="publish-confirm").click()
    await user.should_see("Last published: version 1 · first release", retries=20)
    detail = await integrations.get_integration(hub, "Orders")
    assert [(v.version, v.published, v.note) for v in detail.versions] == [
        (1, True, "first release")
    ]
    user.find(marker="publish").click()  # no edits since: nothing to publish
    await user.should_see("Nothing to publish: there are no edits since version 1.", retries=20)


async def test_history_lists_notes_and_diffs_two_versions(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await integrations.publish(hub, "Orders", "first release")
    text = (FIXTURE_DIRS[0] / "orders.yaml").read_text()
    assert 'inputs: {message: "item {{ loop.item }}"}' in text
    await integrations.import_integration(
        hub, text.replace("item {{ loop.item }}", "line {{ loop.index }}")
    )
    await integrations.publish(hub, "Orders", "numbers the lines")
    await user.open("/integrations/Orders/versions")
    await user.should_see("numbers the lines", retries=20)
    await user.should_see("first release", retries=20)
    await user.should_see("From version 1 to version 2", retries=20)
    await user.should_see(marker="version-diff", retries=20)
    with user.scope(marker="version-diff"):
        await user.should_see("inputs.message", retries=20)
        await user.should_see('"item {{ loop.item }}"', retries=20)
        await user.should_see('"line {{ loop.index }}"', retries=20)
        await user.should_not_see("Refuse")  # unchanged steps are not listed
