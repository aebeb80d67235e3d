"""The instance card's Edit and Upgrade dialogs, and test instances on the instances pages."""

from __future__ import annotations

import asyncio

from nicegui import ui
from nicegui.testing import User
from sqlmodel import select

from app.persistence import session_scope
from app.persistence.models import InstanceStateRow
from app.services import executions, instances, integrations, upgrades
from app.services.environment import load_environment
from app.services.hub import Hub
from app.services.instances import DeployRequest
from tests.pages.conftest import FIXTURE_DIRS, import_yaml, send_webhook, wait_for
from tests.pages.test_instances_page import deploy_shop, fill


def error_of(user: User, marker: str) -> str | None:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.input), element
    return element.error


async def test_edit_values_checks_each_field_and_saves_in_place(user: User, hub: Hub) -> None:
    view = await deploy_shop(hub)
    await user.open("/instances")
    user.find(marker="edit-shop").click()
    await user.should_see(marker="edit-dialog", retries=20)
    fill(user, "config-limit", "many")
    user.find(marker="edit-save").click()
    await user.should_see(marker="change-error", retries=20)
    assert (
        error_of(user, "config-limit")
        == "'limit' is of type integer; expected an integer such as 3"
    )
    assert load_environment(hub, view.id).config["limit"] == 10  # nothing changed

    fill(user, "config-limit", "5")
    fill(user, "connections-crm-api_key", "key-456-new")
    user.find(marker="edit-save").click()
    await user.should_see("the next run uses the new values", retries=20)
    env = load_environment(hub, view.id)
    assert env.config["limit"] == 5
    assert env.config["api_secret"] == "s3cret"  # shown as ***, kept
    assert env.connections["crm"].secret("api_key") == "key-456-new"


async def test_upgrade_asks_for_new_values_and_keeps_the_webhook_urls(user: User, hub: Hub) -> None:
    view = await deploy_shop(hub)
    text = (FIXTURE_DIRS[0] / "orders.yaml").read_text()
    v2 = text.replace("config:\n", "config:\n  - {key: region, type: string, required: true}\n")
    await integrations.import_integration(hub, v2)
    assert await integrations.publish(hub, "Orders", "asks for a region") == 2
    await user.open("/instances")
    user.find(marker="upgrade-shop").click()
    await user.should_see(marker="upgrade-dialog", retries=20)
    await user.should_see("version 2 · asks for a region", retries=20)
    user.find(marker="upgrade-confirm").click()
    await user.should_see(marker="change-error", retries=20)
    assert error_of(user, "config-region") == "'region' is required"
    assert (await instances.get_instance(hub, view.id)).version == 1

    fill(user, "config-region", "eu")
    user.find(marker="upgrade-confirm").click()
    await user.should_see("runs version 2", retries=20)
    upgraded = await instances.get_instance(hub, view.id)
    assert (upgraded.version, upgraded.config["region"]) == (2, "eu")
    assert [f.webhook_url for f in upgraded.flows] == [f.webhook_url for f in view.flows]
    await user.should_not_see(marker="upgrade-shop")  # redrawn: it runs the newest


async def test_a_test_instance_is_deployed_from_the_draft_and_labelled(
    user: User, hub: Hub
) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open("/instances/deploy?integration=Orders")
    user.find(marker="deploy-test-link").click()
    await user.should_see("Test instance: it runs the draft", retries=20)
    fill(user, "deploy-name", "try-it")
    fill(user, "config-base_url", "http://shop.test")
    fill(user, "config-api_secret", "s3cret")
    fill(user, "connection-crm-api_key", "key-123")
    user.find(marker="deploy-button").click()
    await user.should_see(marker="test-badge-try-it", retries=20)
    await user.should_see("test instance: follows the draft (now version 1)", retries=20)
    (view,) = await instances.list_instances(hub)
    assert view.test
    detail = await integrations.get_integration(hub, "Orders")
    assert not detail.published  # deploying a test instance published nothing
    await user.open("/instances")
    await user.should_see(marker="test-badge-try-it", retries=20)
    await user.should_see(marker="edit-try-it", retries=20)  # its values can be edited
    await integrations.publish(hub, "Orders")
    await user.open("/instances")
    await user.should_not_see(marker="upgrade-try-it")  # it follows the draft: no upgrade


SLOW = """
name: Slow
flows:
  - id: slow
    trigger: {id: trigger, action: webhook.webhook}
    steps:
      - {id: mark, action: state.set, inputs: {key: "{{ trigger.body.run }}", value: true}}
      - {id: wait, action: delay.wait, inputs: {seconds: 1.0}}
      - {id: say, action: log.message, inputs: {message: "v1"}}
    edges:
      - {from: trigger, to: mark}
      - {from: mark, to: wait}
      - {from: wait, to: say}
"""


async def test_a_run_in_flight_finishes_on_the_version_it_started_with(hub: Hub) -> None:
    await integrations.import_integration(hub, SLOW)
    view = await instances.deploy(hub, DeployRequest(name="slow", integration="Slow"))
    url = view.flows[0].webhook_url
    first = await send_webhook(hub, url, {"run": "first"})

    async def status(execution_id: str) -> str:
        detail = await executions.get_execution(hub, execution_id)
        return str(detail["status"])

    def marked() -> bool:  # the run stored its mark: it is past loading its flows, now waiting
        with session_scope(hub.db, write=False) as session:
            query = select(InstanceStateRow).where(InstanceStateRow.key == "first")
            return session.exec(query).first() is not None

    async def running() -> bool:
        return await asyncio.to_thread(marked)

    await wait_for(running, message="the first run did not reach its wait step")
    await integrations.import_integration(hub, SLOW.replace('"v1"', '"v2"'))
    await integrations.publish(hub, "Slow")
    await upgrades.upgrade(hub, view.id, upgrades.UpgradeRequest(version=2))
    second = await send_webhook(hub, url, {"run": "second"})

    async def finished() -> bool:
        return all([await status(e) == "succeeded" for e in (first, second)])

    await wait_for(finished, message="the runs did not both succeed")
    said = []
    for execution_id in (first, second):
        detail = await executions.get_execution(hub, execution_id)
        (say,) = [s for s in detail["steps"] if s["step_id"] == "say"]
        said.append(say["output"]["message"])
    assert said == ["v1", "v2"]
