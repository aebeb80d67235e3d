"""Test runs from the designer: recorded runs with live events, run up to here with reuse,
listening for a real request, and the deploy-plan preview."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from app.persistence import SecretBox, load_secret_key, open_database
from app.routes import api, webhooks
from app.services import editor, executions, instances, integrations, payloads, testruns
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.services.executions import ExecutionFilter
from app.services.hub import Hub
from app.services.payloads import PayloadInput
from app.services.testruns import TestRequest
from app.settings import Settings
from components.api import (
    Action,
    Component,
    Inputs,
    StepContext,
    Trigger,
    TriggerContext,
)
from components.registry import default_registry
from runtime.http import make_http_client
from runtime.model import Flow
from runtime.observer import MemoryRecorder, Status

CALLS: list[Any] = []
"""What the `sidefx.call` action was called with: a reused step leaves no entry."""


class CallInputs(Inputs):
    value: Any = Field(None, title="Value", description="Returned as `value`.")


class Call(Action[CallInputs]):
    key = "call"
    title = "Call"
    description = "Stands in for a call to a third party: counted, returns its value."
    Inputs = CallInputs

    async def run(self, inputs: CallInputs, ctx: StepContext) -> Any:
        CALLS.append(inputs.value)
        return {"value": inputs.value, "call": len(CALLS)}


class SubscribedInputs(Inputs):
    topic: str = Field("orders", title="Topic", description="What to subscribe to.")


class Subscribed(Trigger[SubscribedInputs]):
    key = "subscribed"
    title = "Subscribed"
    kind = "webhook"
    Inputs = SubscribedInputs

    async def on_deploy(self, inputs: SubscribedInputs, ctx: TriggerContext) -> None:
        pass


SIDEFX = Component(key="sidefx", title="Side effects", actions=[Call], triggers=[Subscribed])

INTEGRATION = textwrap.dedent("""\
    name: Orders
    config:
      - key: threshold
        type: integer
        default: 100
      - key: api_secret
        type: secret
    flows:
      - id: route
        name: Route order
        trigger: {id: start, action: webhook.webhook, inputs: {form_json_fields: [payload]}}
        steps:
          - id: fetch
            name: Fetch order
            action: sidefx.call
            inputs: {value: '{{ trigger.body.amount }}'}
          - id: big
            action: branch.expression
            inputs:
              groups:
                - conditions:
                    - {left: '{{ steps.fetch.output.value }}', operator: '>',
                       right: '{{ config.threshold }}'}
          - id: priority
            action: transform.object
            inputs:
              fields: {queue: priority, secret: '{{ config.api_secret }}'}
          - id: normal
            action: transform.object
            inputs: {fields: {queue: normal}}
        edges:
          - {from: start, to: fetch}
          - {from: fetch, to: big}
          - {from: big, port: 'true', to: priority}
          - {from: big, port: 'false', to: normal}
      - id: other
        trigger: {id: start, action: manual.manual}
    """)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    engine = open_database(tmp_path)
    registry = default_registry()
    registry.add(SIDEFX, source="tests")
    CALLS.clear()
    async with make_http_client() as http:
        hub = Hub(
            settings=Settings(data_dir=tmp_path),
            db=engine,
            registry=registry,
            http=http,
            box=SecretBox(load_secret_key(tmp_path)),
        )
        await integrations.import_integration(hub, INTEGRATION, "orders.yaml")
        yield hub
    engine.dispose()


async def payload(hub: Hub, name: str, amount: int) -> int:
    created = await payloads.create_payload(
        hub,
        "Orders",
        PayloadInput(flow_id="route", name=name, body={"amount": amount}, headers={"X-Src": "t"}),
    )
    return created.id


def steps_of(detail: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["step_id"], s["status"]) for s in detail["steps"]]


# --- test runs ----------------------------------------------------------------------------------


async def test_two_payloads_take_different_branches_and_are_recorded_as_test_runs(
    hub: Hub,
) -> None:
    big = await testruns.run_test(hub, "Orders", "route", await payload(hub, "big", 250))
    small = await testruns.run_test(hub, "Orders", "route", await payload(hub, "small", 20))
    assert (big.status, small.status) == ("succeeded", "succeeded")
    assert big.output == {"queue": "priority", "secret": None}
    assert small.output == {"queue": "normal"}

    detail = await executions.get_execution(hub, big.execution_id)
    assert detail["source"] == "test"
    assert (detail["instance_id"], detail["status"], detail["flow_id"]) == (
        None,
        "succeeded",
        "route",
    )
    assert steps_of(detail) == [
        ("start", "succeeded"),
        ("fetch", "succeeded"),
        ("big", "succeeded"),
        ("priority", "succeeded"),
        ("normal", "skipped"),
    ]
    start = detail["steps"][0]["output"]
    assert start["body"] == {"amount": 250}
    assert start["headers"]["x-src"] == "t"
    assert steps_of(await executions.get_execution(hub, small.execution_id))[3:] == [
        ("priority", "skipped"),
        ("normal", "succeeded"),
    ]

    listed = await executions.list_executions(hub, ExecutionFilter(flow_id="route"))
    assert {e["id"]: e["source"] for e in listed["executions"]} == {
        big.execution_id: "test",
        small.execution_id: "test",
    }
    only_tests = await executions.list_executions(hub, ExecutionFilter(source="test"))
    assert only_tests["total"] == 2
    webhooks_only = await executions.list_executions(hub, ExecutionFilter(source="webhook"))
    assert webhooks_only["total"] == 0
    assert await testruns.last_test_run(hub, "Orders", "route") == small.execution_id


async def test_the_live_observer_gets_every_event_in_order(hub: Hub) -> None:
    live = MemoryRecorder()
    run = await testruns.run_test(
        hub, "Orders", "route", TestRequest(body={"amount": 500}), observer=live
    )
    assert [e.execution_id for e in live.executions] == [run.execution_id]
    assert [r.step_id for r in live.started] == ["start", "fetch", "big", "priority"]
    assert [(r.step_id, r.status) for r in live.records] == [
        ("start", Status.SUCCEEDED),
        ("fetch", Status.SUCCEEDED),
        ("big", Status.SUCCEEDED),
        ("priority", Status.SUCCEEDED),
        ("normal", Status.SKIPPED),
    ]
    assert [r.status for r in live.results] == [Status.SUCCEEDED]
    detail = await executions.get_execution(hub, run.execution_id)
    assert [s["step_id"] for s in detail["steps"]] == [r.step_id for r in live.records]


async def test_a_failing_live_observer_does_not_break_the_run(hub: Hub) -> None:
    class Broken(MemoryRecorder):
        def step_started(self, record: Any) -> None:
            raise RuntimeError("the page went away")

    broken = Broken()
    run = await testruns.run_test(hub, "Orders", "route", {"body": {"amount": 1}}, observer=broken)
    assert run.status == "succeeded"
    assert broken.records == []  # dropped after its first failure
    assert len((await executions.get_execution(hub, run.execution_id))["steps"]) == 5


async def test_config_defaults_overrides_and_secret_masking(hub: Hub) -> None:
    secret = "sk-test-0123456789"
    run = await testruns.run_test(
        hub,
        "Orders",
        "route",
        TestRequest(body={"amount": 150}),
        config={"threshold": "120", "api_secret": secret},
    )
    assert run.output == {"queue": "priority", "secret": "***"}
    detail = await executions.get_execution(hub, run.execution_id)
    assert secret not in repr(detail)
    raised = await testruns.run_test(
        hub, "Orders", "route", TestRequest(body={"amount": 150}), config={"threshold": 200}
    )
    assert raised.output == {"queue": "normal"}

    with pytest.raises(InvalidInput) as bad:
        await testruns.run_test(
            hub, "Orders", "route", config={"threshold": "lots", "colour": "red"}
        )
    assert bad.value.details == {
        "config.threshold": "'threshold' is of type integer; expected an integer such as 3",
        "config.colour": "there is no config variable 'colour' (declared: threshold, api_secret)",
    }


async def add_broken_notify_step(hub: Hub) -> None:
    """Save the draft with a step 'notify' after 'normal' that lacks its required `url`: an
    error the editor saves anyway."""
    state = await editor.load_editor(hub, "Orders")
    flow = state.flow("route")
    assert flow is not None
    data = flow.model_dump(mode="json", by_alias=True)
    data["steps"].append({"id": "notify", "name": "Notify", "action": "http.request"})
    data["edges"].append({"from": "normal", "to": "notify"})
    await editor.save_flow(hub, "Orders", Flow.model_validate(data), state.revisions["route"])


async def test_an_invalid_flow_is_refused_naming_the_step_and_nothing_is_recorded(
    hub: Hub,
) -> None:
    await add_broken_notify_step(hub)
    live = MemoryRecorder()
    with pytest.raises(InvalidInput) as refused:
        await testruns.run_test(hub, "Orders", "route", observer=live)
    assert refused.value.message.startswith("Flow 'Route order' cannot run: Step 'Notify'")
    issues = refused.value.details["issues"]
    assert {i["step"] for i in issues} == {"notify"}
    assert live.executions == []
    assert (await executions.list_executions(hub, ExecutionFilter()))["total"] == 0
    assert CALLS == []


async def test_bad_arguments_are_named(hub: Hub) -> None:
    other = await payloads.create_payload(hub, "Orders", PayloadInput(flow_id="other", name="o"))
    with pytest.raises(InvalidInput, match="belongs to flow 'other', not 'route'"):
        await testruns.run_test(hub, "Orders", "route", other.id)
    with pytest.raises(NotFound, match="has no test payload 999"):
        await testruns.run_test(hub, "Orders", "route", 999)
    with pytest.raises(NotFound, match="has no flow 'nope'"):
        await testruns.run_test(hub, "Orders", "nope")
    with pytest.raises(NotFound, match="no integration named 'Nope'"):
        await testruns.run_test(hub, "Nope", "route")
    with pytest.raises(InvalidInput) as bad_request:
        await testruns.run_test(hub, "Orders", "route", {"headers": {"x": 1}, "extra": True})
    assert set(bad_request.value.details) == {"payload.headers.x", "payload.extra"}
    with pytest.raises(InvalidInput) as bad_upto:
        await testruns.run_test(hub, "Orders", "route", upto="ghost")
    assert bad_upto.value.details["upto"].startswith("no step 'ghost'")
    with pytest.raises(InvalidInput, match="needs the step to run up to"):
        await testruns.run_test(hub, "Orders", "route", reuse_from="x")
    with pytest.raises(InvalidInput) as bad_connection:
        await testruns.run_test(hub, "Orders", "route", connections={"crm": {"k": "v"}})
    assert "connections.crm" in bad_connection.value.details
    assert (await executions.list_executions(hub, ExecutionFilter()))["total"] == 0


# --- run up to here -----------------------------------------------------------------------------


async def test_run_up_to_here_runs_only_the_ancestors(hub: Hub) -> None:
    run = await testruns.run_test(
        hub, "Orders", "route", TestRequest(body={"amount": 500}), upto="big"
    )
    assert run.status == "succeeded"
    assert run.upto == "big"
    detail = await executions.get_execution(hub, run.execution_id)
    assert steps_of(detail) == [
        ("start", "succeeded"),
        ("fetch", "succeeded"),
        ("big", "succeeded"),
    ]
    assert CALLS == [500]


async def test_run_up_to_here_is_not_blocked_by_a_broken_step_it_does_not_reach(
    hub: Hub,
) -> None:
    await add_broken_notify_step(hub)
    run = await testruns.run_test(
        hub, "Orders", "route", TestRequest(body={"amount": 500}), upto="big"
    )
    assert run.status == "succeeded"
    with pytest.raises(InvalidInput, match="Step 'Notify'") as refused:
        await testruns.run_test(hub, "Orders", "route", upto="notify")
    assert {i["step"] for i in refused.value.details["issues"]} == {"notify"}


async def test_run_up_to_here_reuses_upstream_outputs_of_the_last_run(hub: Hub) -> None:
    first = await testruns.run_test(hub, "Orders", "route", TestRequest(body={"amount": 500}))
    assert CALLS == [500]
    live = MemoryRecorder()
    again = await testruns.run_test(
        hub,
        "Orders",
        "route",
        TestRequest(body={"amount": 1}),
        observer=live,
        upto="priority",
        reuse_from=await testruns.last_test_run(hub, "Orders", "route"),
    )
    assert CALLS == [500]  # `fetch` was not called again
    assert again.reused == ["fetch", "big"]
    assert again.output == {"queue": "priority", "secret": None}
    detail = await executions.get_execution(hub, again.execution_id)
    assert steps_of(detail) == [
        ("start", "succeeded"),
        ("fetch", "succeeded"),
        ("big", "succeeded"),
        ("priority", "succeeded"),
    ]
    fetch = detail["steps"][1]
    assert fetch["output"] == {"value": 500, "call": 1}
    assert fetch["logs"][0]["message"] == (
        f"reused the output of execution {first.execution_id}; the step did not run"
    )
    assert detail["steps"][0]["output"]["body"] == {"amount": 1}  # the trigger ran anew
    assert [r.step_id for r in live.started] == ["start", "fetch", "big", "priority"]

    # The step run up to always runs, even when the earlier run recorded it.
    rerun = await testruns.run_test(
        hub, "Orders", "route", upto="fetch", reuse_from=again.execution_id
    )
    assert rerun.reused == []
    assert CALLS == [500, None]


async def test_reuse_from_must_be_a_run_of_this_flow(hub: Hub) -> None:
    other = await testruns.run_test(hub, "Orders", "other")
    with pytest.raises(InvalidInput, match="is not a run of flow 'route'"):
        await testruns.run_test(hub, "Orders", "route", upto="big", reuse_from=other.execution_id)
    with pytest.raises(NotFound, match="no execution 'missing'"):
        await testruns.run_test(hub, "Orders", "route", upto="big", reuse_from="missing")
    await editor.create_integration(hub, "Elsewhere")
    await editor.add_flow(hub, "Elsewhere", "route", "Route", "manual.manual")
    foreign = await testruns.run_test(hub, "Elsewhere", "route")
    with pytest.raises(InvalidInput, match="is not a run of flow 'route' of this integration"):
        await testruns.run_test(hub, "Orders", "route", upto="big", reuse_from=foreign.execution_id)


# --- listening ----------------------------------------------------------------------------------


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.hub = hub

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)  # as `app.server` answers

    app.include_router(api.router)
    webhooks.install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=hub.settings.base_url) as http:
        yield http


async def test_listening_captures_the_next_request_as_a_test_payload(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    listener = await testruns.start_listening(hub, "Orders", "route")
    assert listener.url.startswith(f"{hub.settings.base_url}/webhooks/test/")
    assert listener.active
    waiting = asyncio.create_task(listener.wait(5))
    answer = await client.put(
        listener.url,
        params=[("page", "2"), ("tag", "a"), ("tag", "b")],
        json={"amount": 75},
        headers={"X-Event": "order.created"},
    )
    assert answer.status_code == 202
    body = answer.json()
    assert body["captured"] is True and body["flow_id"] == "route"
    captured = await waiting
    assert captured is not None
    assert captured.id == body["payload_id"]
    assert captured.name.startswith("Captured ") and captured.name == body["name"]
    assert captured.body == {"amount": 75}
    assert captured.query == {"page": "2", "tag": ["a", "b"]}
    assert captured.headers["x-event"] == "order.created"
    assert captured.headers["content-type"] == "application/json"
    assert "content-length" not in captured.headers and "host" not in captured.headers
    assert listener.method == "PUT"
    assert not listener.active
    assert [p.id for p in await payloads.list_payloads(hub, "Orders", "route")] == [captured.id]

    again = await client.post(listener.url, json={"amount": 1})
    assert again.status_code == 404
    assert "expired, was cancelled or already captured" in again.json()["error"]

    run = await testruns.run_test(hub, "Orders", "route", captured.id)
    assert run.output == {"queue": "normal"}

    second = await testruns.start_listening(hub, "Orders", "route")
    reply = await client.post(
        second.url,
        content=b"a=1&a=2",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 202
    form = await second.wait(1)
    assert form is not None
    assert form.body == {"a": ["1", "2"]}
    assert form.name == f"{captured.name} (2)"  # same minute: numbered


async def test_a_captured_body_is_parsed_with_the_triggers_options(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    listener = await testruns.start_listening(hub, "Orders", "route")
    form = {"content-type": "application/x-www-form-urlencoded"}
    bad = await client.post(listener.url, content=b"payload=%7B", headers=form)
    assert bad.status_code == 400 and "form field 'payload'" in bad.json()["error"]
    good = await client.post(listener.url, content=b"payload=%7B%22amount%22%3A5%7D", headers=form)
    assert good.status_code == 202, good.text
    captured = await listener.wait(1)
    assert captured is not None and captured.body == {"payload": {"amount": 5}}


async def test_a_bad_body_is_refused_and_listening_goes_on(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    listener = await testruns.start_listening(hub, "Orders", "route")
    bad = await client.post(
        listener.url, content=b'{"amount": ', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert listener.active
    assert await payloads.list_payloads(hub, "Orders") == []
    good = await client.post(listener.url, json={"amount": 3})
    assert good.status_code == 202
    assert (await listener.wait(1)) is not None


async def test_cancelled_expired_and_unknown_test_urls_are_404(
    hub: Hub, client: httpx.AsyncClient
) -> None:
    cancelled = await testruns.start_listening(hub, "Orders", "route")
    waiter = asyncio.create_task(cancelled.wait())
    cancelled.cancel()
    assert await waiter is None
    assert (await client.post(cancelled.url, json={})).status_code == 404

    short = await testruns.start_listening(hub, "Orders", "route", expires_in=0.05)
    assert await short.wait() is None  # returns when it expires
    assert not short.active
    assert (await client.post(short.url, json={})).status_code == 404

    waiting = await testruns.start_listening(hub, "Orders", "route")
    assert await waiting.wait(0.01) is None  # a wait that times out...
    assert waiting.active  # ...leaves it listening
    waiting.cancel()

    assert (await client.post("/webhooks/test/unknown-token", json={})).status_code == 404
    assert await payloads.list_payloads(hub, "Orders") == []
    with pytest.raises(NotFound, match="has no flow 'nope'"):
        await testruns.start_listening(hub, "Orders", "nope")
    with pytest.raises(InvalidInput):
        await testruns.start_listening(hub, "Orders", "route", expires_in=0)


# --- deploy plan --------------------------------------------------------------------------------

LIFECYCLE = textwrap.dedent("""\
    name: Lifecycle
    config:
      - key: region
        type: string
        required: true
      - key: limit
        type: integer
        default: 10
      - key: password
        type: secret
    flows:
      - id: receive
        trigger: {id: start, action: sidefx.subscribed, inputs: {topic: '{{ config.region }}'}}
      - id: register_b
        name: Register B
        trigger: {id: start, action: instance.deploy}
        steps:
          - id: call
            action: sidefx.call
            inputs: {value: '{{ config.password }} {{ config.limit }}'}
        edges: [{from: start, to: call}]
      - id: cleanup
        trigger: {id: start, action: instance.delete}
      - id: register_a
        name: Register A
        trigger: {id: start, action: instance.deploy}
    """)


async def test_deploy_plan_lists_the_runs_in_deploy_order_with_masked_config(hub: Hub) -> None:
    await integrations.import_integration(hub, LIFECYCLE)
    plan = await instances.deploy_plan(
        hub, "Lifecycle", {"region": "eu", "password": "hunter2-secret"}
    )
    assert [(p.order, p.flow_id, p.kind) for p in plan] == [
        (1, "receive", "hook"),
        (2, "register_b", "flow"),
        (3, "register_a", "flow"),
    ]
    assert plan[1].flow_name == "Register B"
    assert plan[0].trigger == "sidefx.subscribed"
    for run in plan:
        assert run.config == {"region": "eu", "limit": 10, "password": "***"}
    assert plan[0].reads == ["region"]
    assert plan[1].reads == ["limit", "password"]
    assert plan[2].reads == []

    # While the form is being filled, missing required values are left out, not refused.
    partial = await instances.deploy_plan(hub, "Lifecycle", {"limit": "5"})
    assert partial[0].config == {"limit": 5}

    with pytest.raises(InvalidInput) as bad:
        await instances.deploy_plan(hub, "Lifecycle", {"limit": "many", "zone": "x"})
    assert set(bad.value.details) == {"config.limit", "config.zone"}
    with pytest.raises(InvalidInput, match="no integration named 'Nope'"):
        await instances.deploy_plan(hub, "Nope")


# --- over the REST API --------------------------------------------------------------------------

ECHO = Path(__file__).parent.parent / "fixtures" / "echo.yaml"


async def test_save_flow_and_test_run_over_the_api(hub: Hub, client: httpx.AsyncClient) -> None:
    imported = await client.post("/api/integrations", content=ECHO.read_bytes())
    assert imported.status_code == 201, imported.text
    flow = (await client.get("/api/integrations/Echo")).json()["integration"]["flows"][0]
    flow["name"] = "Echo, renamed"
    edit = {"flow": flow, "revision": 1}
    saved = await client.put("/api/integrations/Echo/flows/echo", json=edit)
    assert saved.status_code == 200, saved.text
    assert saved.json()["revision"] == 2
    stale = await client.put("/api/integrations/Echo/flows/echo", json=edit)
    assert stale.status_code == 409
    assert "changed elsewhere" in stale.json()["error"]
    wrong_id = await client.put("/api/integrations/Echo/flows/other", json=edit)
    assert wrong_id.status_code == 422

    created = (
        await client.post(
            "/api/integrations/Echo/payloads",
            json={"flow_id": "echo", "name": "hello", "body": {"hi": 1}},
        )
    ).json()
    run = await client.post(
        "/api/integrations/Echo/flows/echo/test",
        json={"payload_id": created["id"], "config": {"label": "from test"}},
    )
    assert run.status_code == 200, run.text
    result = run.json()
    assert result["status"] == "succeeded"
    assert result["response"]["status"] == 202
    assert result["response"]["body"] == {"hi": 1}
    detail = (await client.get(f"/api/executions/{result['execution_id']}")).json()
    assert detail["source"] == "test"
    assert [s["step_id"] for s in detail["steps"]] == ["start", "show", "reply"]
    assert detail["steps"][1]["output"]["config"]["label"] == "from test"

    bad = await client.post("/api/integrations/Echo/flows/echo/test", json={"upto": "ghost"})
    assert bad.status_code == 422
    assert bad.json()["details"]["upto"].startswith("no step 'ghost'")
