"""Flow settings in the designer: drawn from `FlowSettings`' schema, checked per field, saved in
the draft as an undoable edit."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from app.services import integrations
from app.services.hub import Hub
from designer.flow_settings import settings_problems
from runtime.model import Flow, FlowSettings
from tests.pages.conftest import import_yaml, wait_for
from tests.pages.test_instances_page import fill


async def stored_settings(hub: Hub) -> FlowSettings:
    detail = await integrations.get_integration(hub, "Orders")
    flow = detail.integration.flow("order")
    assert flow is not None
    return flow.settings


def test_problems_name_the_flow_and_the_field() -> None:
    flow = Flow.model_validate(
        {"id": "f", "name": "Orders", "trigger": {"id": "t", "action": "x.y"}}
    )
    settings, problems = settings_problems(
        flow, {"concurrency": 0, "execution_retry": {"backoff": "sometimes"}}
    )
    assert settings is None
    assert problems["concurrency"] == (
        "Flow 'Orders' setting 'concurrency': must be greater than or equal to 1."
    )
    assert set(problems) == {"concurrency", "execution_retry.backoff"}


async def test_settings_form_checks_each_field_and_saves_the_draft(user: User, hub: Hub) -> None:
    await import_yaml(hub, "orders.yaml")
    await user.open("/integrations/Orders")
    user.find(marker="flow-settings-button").click()
    await user.should_see(marker="flow-setting-concurrency", retries=20)
    for marker in ("timeout", "max_steps", "step_timeout", "expression_budget", "sequential"):
        await user.should_see(
            marker=f"flow-setting-{marker}", retries=20
        )  # every field of the schema
    fill(user, "flow-setting-concurrency", "0")
    user.find(marker="flow-settings-save").click()
    await user.should_see("Flow 'Order received' setting 'concurrency'", retries=20)
    number = user.find(marker="flow-setting-concurrency").elements.pop()
    assert isinstance(number, ui.number)
    assert number.error == "must be greater than or equal to 1."
    assert (await stored_settings(hub)).concurrency == 8  # nothing saved

    fill(user, "flow-setting-concurrency", "2")
    user.find(marker="flow-setting-sequential").click()
    fill(user, "flow-setting-dedup_key", "{{ trigger.body.id }}")
    user.find(marker="flow-setting-execution_retry").click()
    fill(user, "flow-setting-execution_retry-max_attempts", "4")
    user.find(marker="flow-settings-save").click()
    await user.should_see("Saved", retries=20)
    saved = await stored_settings(hub)
    assert (saved.concurrency, saved.sequential, saved.dedup_key) == (
        2,
        True,
        "{{ trigger.body.id }}",
    )
    assert saved.execution_retry is not None
    assert saved.execution_retry.max_attempts == 4
    user.find(marker="undo").click()  # one undoable edit

    async def undone() -> bool:
        return (await stored_settings(hub)).concurrency == 8

    await wait_for(undone, message="undo did not restore the settings")
