"""Replay on draft from an execution's page: the diff view's markers, changed paths and panes,
an error on a step, Save as test (and a taken name refused), and the test-instance label."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from nicegui import ui
from nicegui.testing import User

from app.pages.replay_view import json_lines
from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.persistence.models import InstanceRow
from app.services import executions, testruns
from app.services.hub import Hub
from runtime.model import Flow
from tests.pages.conftest import wait_for
from tests.server.test_dispatcher_support import deploy, enqueue, webhook_flow
from tests.server.test_replay import (
    FETCH,
    TOTAL,
    PriceApi,
    edit_draft,
    price_api,
    with_steps,
)

DOUBLED = {
    "id": "total",
    "action": "transform.object",
    "inputs": {
        "fields": {
            "sku": "{{ trigger.body.sku }}",
            "total": "{{ steps.fetch.output.body.price * trigger.body.qty * 2 }}",
        }
    },
}


@asynccontextmanager
async def shop(hub: Hub) -> AsyncIterator[tuple[PriceApi, str, str]]:
    """Instance `shop` whose flow `order` fetched a price from a loopback API once."""
    async with price_api() as api:
        instance_id = deploy(
            hub.db,
            [webhook_flow("order", [FETCH, TOTAL])],
            name="shop",
            config=[{"key": "base_url", "type": "string"}],
            values={"base_url": api.url},
        )
        execution_id = enqueue(hub.db, instance_id, "order", {"sku": "A1", "qty": 3})

        async def finished() -> bool:
            found = await executions.list_executions(hub, executions.ExecutionFilter())
            return any(
                e["id"] == execution_id and e["status"] == "succeeded" for e in found["executions"]
            )

        await wait_for(finished, message="the original execution did not succeed")
        assert api.requests == ["/price/A1"]
        yield api, instance_id, execution_id


def chain(flow: Flow, fetch: dict[str, Any], total: dict[str, Any]) -> Flow:
    edges = [{"from": "trigger", "to": "fetch"}, {"from": "fetch", "to": "total"}]
    return with_steps(flow, [fetch, total], edges)


def texts(user: User, marker: str) -> list[str]:
    return [str(getattr(e, "text", "")) for e in user.find(marker=marker).elements]


def pane(user: User, marker: str) -> str:
    (element,) = user.find(kind=ui.html, marker=marker).elements
    return str(element.content)


def test_json_lines_carry_the_diff_paths() -> None:
    lines = json_lines({"a": [1, {"b": None}], "c": "x"})
    assert [text for text, _ in lines] == [
        "{",
        '  "a": [',
        "    1,",
        "    {",
        '      "b": null',
        "    }",
        "  ],",
        '  "c": "x"',
        "}",
    ]
    assert [path for _, path in lines] == ["", "a", "a[0]", "a[1]", "a[1].b", "a[1]", "a", "c", ""]


async def test_replay_on_draft_shows_the_changed_step_and_sends_nothing(
    user: User, hub: Hub
) -> None:
    async with shop(hub) as (api, _instance, execution_id):
        edit_draft(hub, lambda flow: chain(flow, FETCH, DOUBLED))
        await user.open(f"/executions/{execution_id}")
        user.find(marker="replay-on-draft-button").click()
        await user.should_see("1 changed, 0 only in the original, 0 only in the replay")
        assert texts(user, "diff-step-title") == ["total"]  # the changed step is selected
        assert texts(user, "diff-path-output.total") == ["output.total"]
        original, replayed = pane(user, "diff-output-original"), pane(user, "diff-output-replay")
        assert 'data-changed="total">  &quot;total&quot;: 15' in original
        assert 'data-changed="total">  &quot;total&quot;: 30' in replayed
        assert "data-changed" not in original.split("&quot;sku&quot;")[1].split("</div>")[0]
        assert api.requests == ["/price/A1"]  # answered by the recording: nothing sent again

        user.find(marker="diff-step-fetch").click()
        assert texts(user, "diff-step-title") == ["fetch"]
        await user.should_see("No input or output changed.")


async def test_a_call_without_recording_fails_its_step_visibly(user: User, hub: Hub) -> None:
    async with shop(hub) as (api, _instance, execution_id):
        other = {**FETCH, "inputs": {"url": "{{ config.base_url }}/price/B2"}}
        edit_draft(hub, lambda flow: chain(flow, other, TOTAL))
        await user.open(f"/executions/{execution_id}/replay-on-draft")
        await user.should_see("1 changed, 1 only in the original, 0 only in the replay")
        assert texts(user, "diff-step-title") == ["fetch"]
        (error,) = user.find(marker="diff-error-replay").elements
        shown = " ".join(str(getattr(e, "text", "")) for e in error.descendants())
        assert shown.startswith("no_recording: Step 'fetch'"), shown
        await user.should_see(marker="diff-failed-fetch")  # marked in the step list too
        assert "GET" in shown and "/price/B2" in shown, shown
        total = user.find(marker="diff-step-total").elements.pop()
        assert "only in the original" in [str(getattr(e, "text", "")) for e in total.descendants()]
        assert api.requests == ["/price/A1"]

        # Where the replay stopped, the original's input and output still show.
        user.find(marker="diff-step-total").click()
        assert texts(user, "diff-step-title") == ["total"]
        await user.should_see(marker="diff-only")
        assert "&quot;total&quot;: 15" in pane(user, "diff-output-original")
        assert "&quot;fields&quot;" in pane(user, "diff-input-original")
        await user.should_not_see(marker="diff-output-replay")


async def test_save_as_test_appends_to_the_draft_and_refuses_a_taken_name(
    user: User, hub: Hub
) -> None:
    async with shop(hub) as (_api, _instance, execution_id):
        await user.open(f"/executions/{execution_id}")
        user.find(marker="save-as-test-button").click()
        user.find(marker="save-as-test-name").clear().type("three of A1")
        user.find(marker="save-as-test-save").click()
        await user.should_see("Saved test 'three of A1' in flow 'order' of 'Integration shop'.")
        link = user.find(marker="save-as-test-link").elements.pop()
        assert isinstance(link, ui.link)
        assert link.props["href"] == "/integrations/Integration%20shop?flow=order"
        with session_scope(hub.db, write=False) as session:
            flow, _revision = repo.load_flow(session, "Integration shop", "order")
        assert [t.name for t in flow.tests] == ["three of A1"]
        assert flow.tests[0].expect.steps["total"].output == {"sku": "A1", "total": 15}

        user.find(marker="save-as-test-save").click()
        await user.should_see("Flow 'order' already has a test named 'three of A1'.")
        with session_scope(hub.db, write=False) as session:
            flow, _revision = repo.load_flow(session, "Integration shop", "order")
        assert [t.name for t in flow.tests] == ["three of A1"]


async def test_executions_of_a_test_instance_are_labelled(user: User, hub: Hub) -> None:
    async with shop(hub) as (_api, instance_id, execution_id):
        with session_scope(hub.db) as session:
            row: Any = session.get(InstanceRow, instance_id)
            row.follows_draft = True
        await user.open("/executions")
        await user.should_see("shop (test instance)")
        await user.open(f"/executions/{execution_id}")
        await user.should_see(marker="test-instance")


async def test_a_designer_test_run_replays_with_config_overrides(user: User, hub: Hub) -> None:
    async with shop(hub) as (api, _instance, _execution_id):
        run = await testruns.run_test(
            hub,
            "Integration shop",
            "order",
            testruns.TestRequest(body={"sku": "A1", "qty": 2}),
            config={"base_url": api.url},
        )
        assert api.requests == ["/price/A1", "/price/A1"]
        await user.open(f"/executions/{run.execution_id}")
        user.find(marker="replay-on-draft-button").click()
        await user.should_see(marker="replay-error")  # the run kept no base_url: no recording

        config = user.find(marker="replay-config-input")
        config.type("[1]")
        user.find(marker="replay-again").click()
        (area,) = config.elements

        async def refused() -> bool:
            return str(area.props.get("error-message", "")).startswith(
                "Config overrides must be a JSON object"
            )

        await wait_for(refused, seconds=5, message="the overrides were not refused")
        assert len(user.find(marker="replay-error").elements) == 1  # the earlier diff stays

        config.clear().type(json.dumps({"base_url": api.url}))
        user.find(marker="replay-again").click()
        await user.should_see("identical")
        assert "error" not in area.props or not area.props["error"]
        assert api.requests == ["/price/A1", "/price/A1"]
