"""Replay on the draft with a diff, and Save as test: a real price API on loopback answers the
original run only; the replay is answered by the recordings and nothing is sent again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from app.persistence import repositories as repo
from app.persistence.db import session_scope
from app.services import testruns
from app.services.errors import Conflict, NotFound
from app.services.hub import Hub
from app.services.replay import execution_as_test, replay_on_draft
from runtime.diffing import changed_paths
from runtime.model import Flow
from runtime.suites import run_test
from tests.loopback import serving
from tests.server.test_dispatcher_support import (
    deploy,
    enqueue,
    execution,
    inbox_rows,
    make_hub,
    run_all,
    webhook_flow,
)
from tests.server.test_dry_run import api_client

FETCH = {
    "id": "fetch",
    "action": "http.request",
    "inputs": {"url": "{{ config.base_url }}/price/{{ trigger.body.sku }}"},
}
TOTAL = {
    "id": "total",
    "action": "transform.object",
    "inputs": {
        "fields": {
            "sku": "{{ trigger.body.sku }}",
            "total": "{{ steps.fetch.output.body.price * trigger.body.qty }}",
        }
    },
}


class PriceApi:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.url = ""

    async def price(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.json_response({"sku": request.match_info["sku"], "price": 5})


@asynccontextmanager
async def price_api() -> AsyncIterator[PriceApi]:
    """The loopback price API, serving until the block ends."""
    api = PriceApi()
    app = web.Application()
    app.router.add_get("/price/{sku}", api.price)
    async with serving(app) as port:
        api.url = f"http://127.0.0.1:{port}"
        yield api


@asynccontextmanager
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Hub, PriceApi, str]]:
    """A hub with instance `shop` of an integration whose flow `order` fetched a price once."""
    async with price_api() as api, make_hub(tmp_path) as hub:
        instance_id = deploy(
            hub.db,
            [webhook_flow("order", [FETCH, TOTAL])],
            name="shop",
            config=[
                {"key": "base_url", "type": "string"},
                {"key": "token", "type": "secret"},
            ],
            values={"base_url": api.url, "token": "tok-abcdef12"},
        )
        execution_id = enqueue(hub.db, instance_id, "order", {"sku": "A1", "qty": 3})
        await run_all(hub)
        run = execution(hub.db, execution_id)
        assert run is not None and run.status == "succeeded"
        assert run.output == {"sku": "A1", "total": 15}
        assert api.requests == ["/price/A1"]
        yield hub, api, execution_id


def edit_draft(hub: Hub, change: Any) -> None:
    """Save `change(flow)` as the draft's flow `order`."""
    with session_scope(hub.db) as session:
        flow, revision = repo.load_flow(session, "Integration shop", "order")
        repo.save_flow(session, "Integration shop", change(flow), revision)


def with_steps(flow: Flow, steps: list[dict[str, Any]], edges: list[dict[str, str]]) -> Flow:
    data = flow.model_dump(by_alias=True)
    data["steps"], data["edges"] = steps, edges
    return Flow.model_validate(data)


def test_changed_paths_name_every_difference() -> None:
    a = {"x": 1, "items": [{"q": 1}, {"q": 2}], "gone": True, "flag": True}
    b = {"x": 1, "items": [{"q": 1}, {"q": 3}, {"q": 4}], "new": None, "flag": 1}
    assert changed_paths(a, b) == ["items[1].q", "items[2]", "gone", "flag", "new"]
    assert changed_paths(a, a) == []
    assert changed_paths(1, "1") == [""]
    assert changed_paths(list(range(10)), [], limit=3) == ["[0]", "[1]", "[2]", "..."]


async def test_replay_on_an_unchanged_draft_is_identical_and_sends_nothing(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path) as (hub, api, execution_id):
        diff = await replay_on_draft(hub, execution_id)
        assert diff.identical, diff
        assert (diff.original_status, diff.replay_status) == ("succeeded", "succeeded")
        assert [s.step_id for s in diff.steps] == ["trigger", "fetch", "total"]
        assert api.requests == ["/price/A1"]


async def test_replay_diffs_each_step_of_an_edited_draft(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api, execution_id):
        doubled = {
            "id": "total",
            "action": "transform.object",
            "inputs": {
                "fields": {
                    "sku": "{{ trigger.body.sku }}",
                    "total": "{{ steps.fetch.output.body.price * trigger.body.qty * 2 }}",
                }
            },
        }
        note = {"id": "note", "action": "log.message", "inputs": {"message": "done"}}
        edit_draft(
            hub,
            lambda flow: with_steps(
                flow,
                [FETCH, doubled, note],
                [
                    {"from": "trigger", "to": "fetch"},
                    {"from": "fetch", "to": "total"},
                    {"from": "total", "to": "note"},
                ],
            ),
        )
        diff = await replay_on_draft(hub, execution_id)
        assert not diff.identical
        assert diff.draft_version == 2
        assert (diff.only_original, diff.only_replay) == ([], ["note"])
        by_id = {s.step_id: s for s in diff.steps}
        assert not by_id["fetch"].changed  # answered by its recording: same output
        total = by_id["total"]
        assert total.changed
        assert (total.output.original, total.output.replay) == (
            {"sku": "A1", "total": 15},
            {"sku": "A1", "total": 30},
        )
        assert total.output.changed == ["total"]
        assert total.input.changed == ["fields.total"]  # inputs are recorded rendered
        assert api.requests == ["/price/A1"]


async def test_a_call_the_original_did_not_make_fails_with_no_recording(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api, execution_id):
        other = {**FETCH, "inputs": {"url": "{{ config.base_url }}/stock/{{ trigger.body.sku }}"}}
        edit_draft(
            hub,
            lambda flow: with_steps(
                flow,
                [other, TOTAL],
                [{"from": "trigger", "to": "fetch"}, {"from": "fetch", "to": "total"}],
            ),
        )
        diff = await replay_on_draft(hub, execution_id)
        assert diff.replay_status == "failed"
        assert diff.replay_error is not None and diff.replay_error["step"] == "fetch"
        assert "No recorded response for GET" in diff.replay_error["message"]
        assert diff.only_original == ["total"]
        fetch = next(s for s in diff.steps if s.step_id == "fetch")
        assert fetch.status.changed == [""]
        assert fetch.error.replay["kind"] == "no_recording"
        assert api.requests == ["/price/A1"]


async def test_save_as_test_makes_a_passing_suite_payload(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api, execution_id):
        saved = await execution_as_test(hub, execution_id, "priced order", save=True)
        test = saved.test
        assert (saved.integration, saved.flow_id, saved.saved) == (
            "Integration shop",
            "order",
            True,
        )
        assert test["request"]["body"] == {"sku": "A1", "qty": 3}
        assert test["config"] == {"base_url": api.url}  # the secret is left out
        assert [r["request"]["url"] for r in test["responses"]] == [f"{api.url}/price/A1"]
        assert test["expect"]["ran"] == ["fetch", "total"]
        assert test["expect"]["steps"]["total"] == {"output": {"sku": "A1", "total": 15}}

        with session_scope(hub.db, write=False) as session:
            draft = repo.load_integration(session, "Integration shop")
        flow = draft.flows[0]
        assert [t.name for t in flow.tests] == ["priced order"]
        outcome = await run_test(draft, flow, flow.tests[0], hub.registry)
        assert (outcome.status, outcome.failure) == ("succeeded", None)
        assert api.requests == ["/price/A1"]

        with pytest.raises(Conflict, match="already has a test named 'priced order'"):
            await execution_as_test(hub, execution_id, "priced order", save=True)
        unsaved = await execution_as_test(hub, execution_id)
        assert unsaved.test["name"] == f"Execution {execution_id}" and not unsaved.saved


async def test_unknown_executions_are_not_found(tmp_path: Path) -> None:
    async with make_hub(tmp_path) as hub:
        with pytest.raises(NotFound):
            await replay_on_draft(hub, "nope")
        with pytest.raises(NotFound):
            await execution_as_test(hub, "nope")


async def test_a_designer_test_run_is_replayed_from_its_trigger_record(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api, _):
        run = await testruns.run_test(
            hub,
            "Integration shop",
            "order",
            testruns.TestRequest(body={"sku": "A1", "qty": 2}),
            config={"base_url": api.url},
        )
        assert api.requests == ["/price/A1", "/price/A1"]
        diff = await replay_on_draft(hub, run.execution_id, {"base_url": api.url})
        assert diff.identical, diff
        total = next(s for s in diff.steps if s.step_id == "total")
        assert total.output.replay == {"sku": "A1", "total": 10}
        assert api.requests == ["/price/A1", "/price/A1"]


async def test_the_api_replays_on_the_draft_and_saves_as_test(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api, execution_id), api_client(hub) as client:
        diff = await client.post(f"/api/executions/{execution_id}/replay-on-draft")
        assert diff.status_code == 200, diff.text
        assert diff.json()["identical"] is True
        options = {"config": {"base_url": "http://127.0.0.1:9"}}
        moved = await client.post(f"/api/executions/{execution_id}/replay-on-draft", json=options)
        assert moved.json()["replay_status"] == "failed"  # no recording for the other host
        wrong = await client.post(f"/api/executions/{execution_id}/replay-on-draft", json={"x": 1})
        assert wrong.status_code == 422
        saved = await client.post(
            f"/api/executions/{execution_id}/save-as-test", json={"name": "api", "save": True}
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["test"]["name"] == "api" and saved.json()["saved"] is True
        again = await client.post(
            f"/api/executions/{execution_id}/save-as-test", json={"name": "api", "save": True}
        )
        assert again.status_code == 409
        assert (await client.post("/api/executions/nope/replay-on-draft")).status_code == 404
        assert api.requests == ["/price/A1"]


async def test_a_saved_test_keeps_no_credential_headers(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, _api, _):
        (instance_id,) = [r.instance_id for r in inbox_rows(hub.db)]
        headers = {
            "content-type": "application/json",
            "authorization": "Bearer tok-1234",
            "x-hub-signature-256": "sha256=abcd",
            "x-event": "order.paid",
        }
        signed = enqueue(hub.db, instance_id, "order", {"sku": "B2", "qty": 1}, headers=headers)
        await run_all(hub)
        saved = await execution_as_test(hub, signed)
        assert saved.test["request"]["headers"] == {
            "content-type": "application/json",
            "x-event": "order.paid",
        }
