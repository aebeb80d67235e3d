"""The deploy form's Dry run button: shows the calls and state a deploy would make; a loopback
subscription API receives nothing and no instance is created."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from app.services import instances, integrations
from app.services.hub import Hub
from tests.pages.conftest import import_yaml, wait_for
from tests.server.test_dry_run import subscription_api


def fill(user: User, marker: str, text: str) -> None:
    user.find(marker=marker).clear().type(text)


async def test_dry_run_shows_calls_and_state_and_deploys_nothing(user: User, hub: Hub) -> None:
    await import_yaml(hub, "subscriber.yaml")
    await integrations.publish(hub, "Subscriber")  # the deploy form offers published versions
    async with subscription_api() as api:
        await user.open("/instances/deploy?integration=Subscriber")
        fill(user, "deploy-name", "acme")
        fill(user, "config-base_url", api.url)
        fill(user, "config-signing_secret", "sign-0f9e8d7c")
        fill(user, "connection-api-token", "tok-1a2b3c4d")
        user.find(marker="dry-run-button").click()
        await user.should_see(marker="dry-run-report", retries=100)  # up to 10 s: a loaded box
        with user.scope(marker="dry-run-report"):
            await user.should_see("Dry run of the deploy: nothing was sent or stored.")
            await user.should_see(f"POST {api.url}/subscriptions → 200 (echo)")
            await user.should_see('"secret": "***"')
            await user.should_see("instance.subscription = null")
            await user.should_not_see("sign-0f9e8d7c")
        assert api.requests == []
    assert await instances.list_instances(hub) == []


async def test_dry_run_names_the_fields_to_fix(user: User, hub: Hub) -> None:
    await import_yaml(hub, "subscriber.yaml")
    await integrations.publish(hub, "Subscriber")  # the deploy form offers published versions
    await user.open("/instances/deploy?integration=Subscriber")
    fill(user, "deploy-name", "acme")
    user.find(marker="dry-run-button").click()
    field = user.find(marker="config-base_url").elements.pop()
    assert isinstance(field, ui.input)

    async def refused() -> bool:
        return field.error is not None and "'base_url' is required" in field.error

    await wait_for(refused)
    await user.should_not_see(marker="dry-run-report")
