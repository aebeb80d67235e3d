"""The instance card lists the failed executions its error flow was run for."""

from __future__ import annotations

from nicegui.testing import User

from app.services import instances
from app.services.hub import Hub
from app.services.instances import DeployRequest
from tests.pages.conftest import import_yaml, send_webhook, wait_for


async def test_the_instance_card_shows_the_last_alerts(user: User, hub: Hub) -> None:
    await import_yaml(hub, "alerting.yaml")
    view = await instances.deploy(hub, DeployRequest(name="shop", integration="Alerting"))
    assert [f.kind for f in view.flows] == ["webhook", "error"]
    failed_id = await send_webhook(hub, view.flows[0].webhook_url, {"id": 42})

    async def escalated() -> bool:
        return bool((await instances.get_instance(hub, view.id)).alerts)

    await wait_for(escalated)
    await user.open("/instances")
    with user.scope(marker="instance-shop"):
        await user.should_see("runs when an execution fails")
        await user.should_see("Alerts (1)")
    user.find(marker="alerts-shop").trigger("click")
    with user.scope(marker=f"alert-{failed_id}"):
        await user.should_see("Orders, step refuse")
        await user.should_see("Order 42 has no customer")
        await user.should_see("error flow on_failure queued")
