"""The instances pages: deploy form (per-field errors, plan preview, success), enable/disable,
delete with confirmation and its tear-down report."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from nicegui import ui
from nicegui.testing import User

from app.services import executions, instances, integrations
from app.services.hub import Hub
from app.services.ingest import Incoming, Ingest, IngestError
from app.services.instances import DeployRequest, InstanceView
from tests.pages.conftest import import_yaml, wait_for

DEPLOY_ORDERS = "/instances/deploy?integration=Orders"


def field(user: User, marker: str) -> ui.element:
    return user.find(marker=marker).elements.pop()


def error_of(user: User, marker: str) -> str | None:
    element = field(user, marker)
    assert isinstance(element, ui.input | ui.number | ui.textarea | ui.select), element
    return element.error


async def import_published(hub: Hub, name: str) -> None:
    """Import and publish: the deploy form offers published versions only."""
    summary = await import_yaml(hub, name)
    await integrations.publish(hub, summary.name)


def fill(user: User, marker: str, text: str) -> None:
    user.find(marker=marker).clear().type(text)


async def deploy_shop(hub: Hub) -> InstanceView:
    await import_yaml(hub, "orders.yaml")
    return await instances.deploy(
        hub,
        DeployRequest(
            name="shop",
            integration="Orders",
            config={"base_url": "http://shop.test", "api_secret": "s3cret"},
            connections={"crm": {"api_key": "k-123"}},
        ),
    )


async def test_the_form_is_drawn_from_config_variables_and_connection_slots(
    user: User, hub: Hub
) -> None:
    await import_published(hub, "orders.yaml")
    await user.open(DEPLOY_ORDERS)
    assert isinstance(field(user, "config-base_url"), ui.input)
    assert isinstance(field(user, "config-limit"), ui.number)
    assert field(user, "config-limit").value == 10  # type: ignore[attr-defined]
    assert isinstance(field(user, "config-ratio"), ui.number)
    assert isinstance(field(user, "config-verbose"), ui.select)  # optional: true, false, not set
    assert isinstance(field(user, "config-mapping"), ui.textarea)
    secret = field(user, "config-api_secret")
    assert isinstance(secret, ui.input)
    assert secret.props["type"] == "password"
    assert isinstance(field(user, "connection-crm-api_key"), ui.input)
    assert field(user, "connection-crm-api_key").props["type"] == "password"
    assert isinstance(field(user, "connection-erp-username"), ui.input)
    assert field(user, "connection-erp-password").props["type"] == "password"
    with user.scope(marker="deploy-plan"):
        await user.should_see("1. Set up — deploy flow")
        await user.should_see("limit = 10")
        await user.should_see("base_url = (not set)")


async def test_each_problem_the_service_finds_is_shown_on_its_field(user: User, hub: Hub) -> None:
    await import_published(hub, "orders.yaml")
    await user.open(DEPLOY_ORDERS)
    fill(user, "config-limit", "2.5")
    with user.scope(marker="deploy-plan"):  # the preview already says what is wrong
        await user.should_see("limit: 'limit' is of type integer")
    fill(user, "config-mapping", "{not json")
    fill(user, "connection-erp-username", "ops")  # the optional slot, half filled
    user.find(marker="deploy-button").click()

    await user.should_see("The instance was not deployed")
    assert error_of(user, "deploy-name") == "give the instance a name"
    assert error_of(user, "config-base_url") == "'base_url' is required"
    assert error_of(user, "config-api_secret") == "'api_secret' is required"
    assert (
        error_of(user, "config-limit")
        == "'limit' is of type integer; expected an integer such as 3"
    )
    assert error_of(user, "config-mapping") == (
        "'mapping' is of type json; expected a JSON value such as {\"a\": 1}"
    )
    assert error_of(user, "connection-crm-api_key") == "must be non-empty text"
    assert error_of(user, "connection-erp-password") == "must be non-empty text"
    assert error_of(user, "connection-erp-username") is None
    assert error_of(user, "config-ratio") is None
    assert await instances.list_instances(hub) == []

    fill(user, "config-base_url", "http://shop.test")  # editing a field clears its error
    assert error_of(user, "config-base_url") is None
    assert error_of(user, "config-api_secret") == "'api_secret' is required"


async def test_a_deploy_shows_the_webhook_urls_and_never_the_secrets(user: User, hub: Hub) -> None:
    await import_published(hub, "orders.yaml")
    await user.open(DEPLOY_ORDERS)
    fill(user, "deploy-name", "shop")
    fill(user, "config-base_url", "http://shop.test")
    fill(user, "config-api_secret", "s3cret-value")
    fill(user, "config-mapping", '{"sku": "id"}')
    fill(user, "connection-crm-api_key", "key-123")
    with user.scope(marker="deploy-plan"):
        await user.should_see("reads base_url = http://shop.test")  # what the deploy flow reads
        await user.should_see("base_url = http://shop.test")
        await user.should_see("api_secret = ***")
        await user.should_not_see("s3cret-value")
    user.find(marker="deploy-button").click()

    await user.should_see("Instance 'shop' deployed.", retries=20)
    deployed = await instances.list_instances(hub)
    assert [(d.name, d.status) for d in deployed] == [("shop", "active")]
    view = deployed[0]
    assert view.config["mapping"] == {"sku": "id"}
    order_url = next(f.webhook_url for f in view.flows if f.flow_id == "order")
    with user.scope(marker="deploy-result"):
        label = field(user, "webhook-url-order")
        assert label.text == order_url  # type: ignore[attr-defined]
        assert label.props["data-testid"] == "webhook-url-order"
        await user.should_not_see(marker="webhook-url-setup")  # deploy flows have no URL
        await user.should_see("runs when an instance is deployed")
        await user.should_not_see("s3cret-value")
        user.find(marker="copy-order").click()
    await user.should_see("Copied to the clipboard.")

    fill(user, "config-api_secret", "another")  # the same name again is refused on the field
    user.find(marker="deploy-button").click()
    await user.should_see("An instance named 'shop' already exists.")
    assert error_of(user, "deploy-name") == "already in use"


async def test_the_list_shows_urls_and_the_switch_stops_webhooks(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)
    order_url = next(f.webhook_url for f in shop.flows if f.flow_id == "order")
    await user.open("/instances")
    with user.scope(marker="instance-shop"):
        await user.should_see("active")
        assert field(user, "webhook-url-order").text == order_url  # type: ignore[attr-defined]

    user.find(marker="enabled-shop").click()
    await user.should_see("Instance 'shop' disabled")
    assert not (await instances.get_instance(hub, shop.id)).enabled
    ingest = Ingest(hub)
    with pytest.raises(IngestError) as refused:
        await ingest.receive_token(order_url.rsplit("/", 1)[-1], _request({"ok": True}))
    assert refused.value.status == 503

    user.find(marker="enabled-shop").click()
    await user.should_see("Instance 'shop' enabled")
    assert (await instances.get_instance(hub, shop.id)).enabled


def _request(body: object) -> Incoming:
    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(body).encode()

    return Incoming("POST", {"content-type": "application/json"}, {}, chunks())


async def test_delete_asks_first_then_shows_the_tear_down(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)
    await user.open("/instances")
    await user.should_not_see(marker="confirm-dialog")

    user.find(marker="delete-shop").click()
    await user.should_see(marker="confirm-dialog")
    with user.scope(marker="confirm-dialog"):
        await user.should_see("Delete instance 'shop'?")
        user.find(marker="cancel-delete").click()
    await user.should_not_see(marker="confirm-dialog")
    assert [i.name for i in await instances.list_instances(hub)] == ["shop"]

    user.find(marker="delete-shop").click()
    await user.should_see(marker="confirm-delete")
    user.find(marker="confirm-delete").click()
    await user.should_see(marker="teardown-result", retries=20)
    with user.scope(marker="teardown-result"):
        await user.should_see("Instance 'shop' was deleted.")
        await user.should_see("Every tear-down run succeeded")
        await user.should_see("flow cleanup")
    await user.should_see("No instances yet.")
    assert await instances.list_instances(hub) == []

    async def torn_down() -> bool:
        found = await executions.list_executions(hub, executions.ExecutionFilter(flow_id="cleanup"))
        return [e["status"] for e in found["executions"]] == ["succeeded"]

    await wait_for(torn_down)
    assert shop.id


async def test_unknown_integration_reads_well(user: User, hub: Hub) -> None:
    await user.open("/instances/deploy?integration=Nope")
    await user.should_see("There is no integration")


async def test_a_failed_deploy_says_why_and_links_the_run(user: User, hub: Hub) -> None:
    await import_published(hub, "lifecycle.yaml")  # its deploy flow registers webhooks in app A
    await user.open("/instances/deploy?integration=Two-app%20lifecycle")
    fill(user, "deploy-name", 'Acme "EU"')
    fill(user, "config-a_url", "http://127.0.0.1:9")  # nothing listens there
    fill(user, "config-b_url", "http://127.0.0.1:9")
    fill(user, "connection-api-token", "t-1")
    user.find(marker="deploy-button").click()

    await user.should_see("was created, but its deploy failed:", retries=50)
    [view] = await instances.list_instances(hub)
    assert view.status == "deploy_failed"
    assert view.failed_execution_id is not None
    with user.scope(marker="deploy-result"):
        await user.should_see(marker=f"error-{view.name}")
        await user.should_see("Open the failed run")
        link = user.find(kind=ui.link, content="Open the failed run").elements.pop()
        assert link.props["href"] == f"/executions/{view.failed_execution_id}"

    await user.open("/instances")
    cards = [e for e in user.find(kind=ui.card).elements if e.props.get("data-testid")]
    assert [c.props["data-testid"] for c in cards] == ['instance-Acme "EU"']


async def test_an_unpublished_integration_is_published_before_it_can_be_deployed(
    user: User, hub: Hub
) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open(DEPLOY_ORDERS)
    await user.should_see("has no published version yet")
    await user.should_not_see(marker="deploy-button")
    user.find(marker="deploy-publish").click()  # publishes, then opens the form for it
    await user.should_see(marker="deploy-button", retries=50)
    await user.should_see("version 1")
    detail = await integrations.get_integration(hub, "Orders")
    assert [(v.version, v.published) for v in detail.versions] == [(1, True)]
