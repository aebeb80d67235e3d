"""The executions pages: filters and counts, chart, paging, detail with step records, replay."""

from __future__ import annotations

from typing import Any

from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from app.pages.executions import step_statuses
from app.services import executions, instances
from app.services.hub import Hub
from app.services.instances import DeployRequest, InstanceView
from designer.canvas import FlowCanvas
from tests.pages.conftest import import_yaml, send_webhook, wait_for


async def deploy(hub: Hub, file: str, integration: str, name: str, **request: Any) -> InstanceView:
    await import_yaml(hub, file)
    return await instances.deploy(hub, DeployRequest(name=name, integration=integration, **request))


async def deploy_shop(hub: Hub) -> InstanceView:
    return await deploy(
        hub,
        "orders.yaml",
        "Orders",
        "shop",
        config={"base_url": "http://shop.test", "api_secret": "s3cret"},
        connections={"crm": {"api_key": "k-123"}},
    )


def url(view: InstanceView, flow_id: str) -> str:
    return next(f.webhook_url for f in view.flows if f.flow_id == flow_id)


async def all_finished(hub: Hub, count: int) -> None:
    async def done() -> bool:
        found = await executions.list_executions(hub, executions.ExecutionFilter(limit=500))
        finished = [e for e in found["executions"] if e["status"] not in ("queued", "running")]
        return len(finished) >= count

    await wait_for(done, message=f"{count} executions did not finish")


def _rows(user: User) -> list[ui.element]:
    try:
        return list(user.find(marker="execution-row").elements)
    except AssertionError:
        return []


async def expect_rows(user: User, count: int) -> None:
    async def shown() -> bool:
        return len(_rows(user)) == count

    await wait_for(shown, seconds=5, message=f"expected {count} execution rows")


def choose(user: User, marker: str, value: str) -> None:
    """Pick `value` in the select marked `marker`, as picking it in the browser does."""
    select = user.find(kind=ui.select, marker=marker).elements.pop()
    with user:
        select.value = value


async def test_list_counts_and_filters(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)  # its deploy flow is one (succeeded) execution
    hooks = await deploy(hub, "webhooks.yaml", "Webhook checks", "hooks")
    await send_webhook(hub, url(shop, "order"), {"id": 1, "ok": True, "items": [1, 2]})
    await send_webhook(hub, url(shop, "order"), {"id": 7, "ok": False})
    await send_webhook(hub, url(shop, "order"), {"id": 8, "ok": True, "items": [], "tag": "needle"})
    await send_webhook(hub, url(hooks, "echo"), {"hello": "world"})
    await all_finished(hub, 5)

    await user.open("/executions")
    await user.should_see("5 executions")
    await user.should_see("succeeded 4")
    await user.should_see("failed 1")
    await user.should_see("crashed 0")
    await expect_rows(user, 5)

    user.find(marker="count-failed").click()  # the count doubles as a status filter
    await expect_rows(user, 1)
    await user.should_see("Order 7 was refused")
    await user.should_see("5 executions")  # counts stay those of the other filters
    user.find(marker="count-failed").click()
    await expect_rows(user, 5)

    user.find(marker="filter-text").type("needle")
    await expect_rows(user, 1)
    user.find(marker="filter-text").clear()
    await expect_rows(user, 5)

    choose(user, "filter-flow", "echo")
    await expect_rows(user, 1)
    await user.should_see("1 executions")
    choose(user, "filter-flow", "")
    choose(user, "filter-instance", hooks.id)
    await expect_rows(user, 1)
    choose(user, "filter-instance", shop.id)
    await expect_rows(user, 4)
    choose(user, "filter-status", "failed")
    await expect_rows(user, 1)


async def test_chart_counts_every_execution_in_its_bucket(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)
    for n in range(3):
        await send_webhook(hub, url(shop, "order"), {"id": n, "ok": n != 0, "items": [n]})
    await all_finished(hub, 4)

    await user.open("/executions?period=1h")
    await user.should_see("4 executions")
    chart = user.find(kind=ui.echart, marker="executions-chart").elements.pop()
    series = {s["name"]: s["data"] for s in chart.options["series"]}
    assert sum(n for _, n in series["succeeded"]) == 3
    assert sum(n for _, n in series["failed"]) == 1
    assert len(series["succeeded"]) in (60, 61)  # a bar per minute of the hour, zeros included
    durations = [ms for _, ms in series["average duration (ms)"] if ms is not None]
    assert durations
    assert all(ms >= 0 for ms in durations)


async def test_paging(user: User, hub: Hub) -> None:
    hooks = await deploy(hub, "webhooks.yaml", "Webhook checks", "hooks")
    for n in range(27):
        await send_webhook(hub, url(hooks, "echo"), {"n": n})
    await all_finished(hub, 27)

    await user.open("/executions")
    await user.should_see("27 executions")
    await expect_rows(user, 25)
    pagination = user.find(kind=ui.pagination).elements.pop()
    assert pagination.max == 2
    with user:
        pagination.value = 2
    await expect_rows(user, 2)

    await user.open("/executions?page=2&status=bogus&period=nonsense")  # no 500 for a bad URL
    await expect_rows(user, 2)


async def test_detail_shows_steps_and_replay_runs_the_request_again(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)
    first = await send_webhook(hub, url(shop, "order"), {"id": 1, "ok": True, "items": [5, 6]})
    await all_finished(hub, 2)

    await user.open(f"/executions/{first}")
    await user.should_see("Order received (Orders v1)")
    assert user.find(kind=ui.badge, marker="execution-status").elements.pop().text == "succeeded"
    names = labels(user, "step-row")  # one per step record, loop iterations included
    assert sorted(names) == [
        "Accepted?",
        "Each item",
        "Note item #1",
        "Note item #2",
        "Refuse",  # recorded as skipped: the untaken branch
        "trigger",
    ]
    canvas = user.find(kind=FlowCanvas).elements.pop()
    assert canvas.props["statuses"] == {
        "trigger": "succeeded",
        "accepted": "succeeded",
        "each": "succeeded",
        "note": "succeeded",
        "refuse": "skipped",
    }
    assert {n["id"] for n in canvas.props["graph"]["nodes"]} == {
        "trigger",
        "accepted",
        "each",
        "note",
        "refuse",
    }

    await user.should_not_see(marker="step-logs")
    second_note = max(user.find(marker="step-note").elements, key=lambda e: e.id)
    UserInteraction(user, {second_note}, None).click()
    with user.scope(marker="step-detail"):
        await user.should_see("Note item #2")
        await user.should_see("log.message")
    with user.scope(marker="step-logs"):
        await user.should_see("item 6")
    with user.scope(marker="step-output"):
        await user.should_not_see("item 5")

    canvas._select_handlers[0]("refuse")  # a click on the step in the drawing
    with user.scope(marker="step-detail"):
        await user.should_see("Refuse")
        await user.should_see("skipped")

    user.find(marker="replay-button").click()
    await user.should_see("Replay queued.")

    async def replayed() -> bool:
        found = await executions.list_executions(hub, executions.ExecutionFilter(flow_id="order"))
        return bool(found["total"] == 2)

    await wait_for(replayed)
    found = await executions.list_executions(hub, executions.ExecutionFilter(flow_id="order"))
    new_id = next(e["id"] for e in found["executions"] if e["id"] != first)
    await user.should_see(marker=f"link-{first}", retries=20)  # the new page: "Replay of" first
    await user.should_see(new_id)
    await all_finished(hub, 3)
    detail = await executions.get_execution(hub, new_id)
    assert detail["request"]["replay_of"] == first
    assert detail["status"] == "succeeded"


def texts(user: User, marker: str) -> list[str]:
    """The texts of the labels and badges marked `marker` now (none while a part is redrawn)."""
    try:
        found = user.find(marker=marker).elements
    except AssertionError:
        return []
    return [e.text for e in found if isinstance(e, ui.label | ui.badge)]


def labels(user: User, marker: str) -> list[str]:
    """The first item label of each element marked `marker`, in page order."""
    found = sorted(user.find(marker=marker).elements, key=lambda e: e.id)
    texts = []
    for element in found:
        first = min(
            (e for e in element.descendants() if isinstance(e, ui.item_label)), key=lambda e: e.id
        )
        texts.append(first.text)
    return texts


async def test_deploy_runs_have_no_replay_and_unknown_ids_read_well(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)
    deploy_run = shop.lifecycle[0].execution_id
    assert deploy_run is not None

    await user.open(f"/executions/{deploy_run}")
    await user.should_see("Set up (Orders v1)")
    button = user.find(kind=ui.button, marker="replay-button").elements.pop()
    assert not button.enabled  # a deploy run came from no request

    await user.open("/executions/no-such-run")
    await user.should_see("There is no execution 'no-such-run'.")


async def test_a_failed_run_shows_its_error(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)
    failed = await send_webhook(hub, url(shop, "order"), {"id": 42, "ok": False})
    await all_finished(hub, 2)

    await user.open(f"/executions/{failed}")
    with user.scope(marker="execution-error"):
        await user.should_see("Order 42 was refused")
    canvas = user.find(kind=FlowCanvas).elements.pop()
    assert canvas.props["statuses"]["refuse"] == "failed"
    assert canvas.props["statuses"]["each"] == "skipped"


async def test_the_detail_follows_a_run_until_it_ends(user: User, hub: Hub) -> None:
    shop = await deploy_shop(hub)
    running = await send_webhook(hub, url(shop, "slow"), {"seconds": 1.5})

    await user.open(f"/executions/{running}")
    status = user.find(kind=ui.badge, marker="execution-status").elements.pop()
    assert status.text in ("queued", "running")
    await user.should_see("Select a step to see its input")

    async def finished() -> bool:
        return texts(user, "execution-status") == ["succeeded"]

    await wait_for(finished, message="the page did not show the run's end")  # no reload
    await user.should_see(marker="step-wait")


def test_a_step_shows_failed_when_any_of_its_runs_failed() -> None:
    records = [
        {"step_id": "note", "status": "succeeded"},
        {"step_id": "note", "status": "failed"},  # the second loop iteration
        {"step_id": "note", "status": "succeeded"},
        {"step_id": "other", "status": "skipped"},
        {"step_id": "retry", "status": "skipped"},
        {"step_id": "retry", "status": "succeeded"},
    ]
    assert step_statuses(records) == {"note": "failed", "other": "skipped", "retry": "succeeded"}
