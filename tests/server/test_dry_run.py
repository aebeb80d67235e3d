"""Deploy and tear-down dry runs: the calls that would be made and the state that would be kept,
with a real subscription API on loopback that must receive nothing, and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlmodel import select

from app.persistence.db import session_scope
from app.persistence.models import ExecutionRow, InstanceRow, InstanceStateRow
from app.routes import api as api_routes
from app.services import instances, integrations
from app.services.dispatcher import WorkerPool
from app.services.dry_run import DryRunRequest, dry_run, dry_run_deploy, dry_run_teardown
from app.services.environment import InstanceEnvironment
from app.services.errors import InvalidInput, NotFound, ServiceError
from app.services.hub import Hub
from components.api import Component, Inputs, Trigger, TriggerContext
from components.registry import Registry, default_registry
from runtime.model import Integration
from runtime.recorded import RecordedExchange
from tests.server.conftest import FIXTURES
from tests.server.test_dispatcher_support import make_hub

SECRET = "sign-0f9e8d7c"
TOKEN = "tok-1a2b3c4d"


class SubscriptionApi:
    """POST /subscriptions -> 201 {id}; DELETE /subscriptions/{id} -> 204. Counts requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if request.method == "POST":
            return web.json_response({"id": f"sub-{len(self.requests)}"}, status=201)
        return web.Response(status=204)


@asynccontextmanager
async def subscription_api() -> AsyncIterator[SubscriptionApi]:
    api = SubscriptionApi()
    app = web.Application()
    app.router.add_route("*", "/subscriptions", api.handle)
    app.router.add_route("*", "/subscriptions/{sub_id}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    api.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield api
    finally:
        await runner.cleanup()


@asynccontextmanager
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Hub, SubscriptionApi]]:
    async with make_hub(tmp_path) as hub, subscription_api() as api:
        pool = WorkerPool(hub, poll_interval=0.05)
        await pool.start()
        try:
            text = (FIXTURES / "subscriber.yaml").read_text()
            await integrations.import_integration(hub, text, source="subscriber.yaml")
            yield hub, api
        finally:
            await pool.stop()


def request(api: SubscriptionApi, **extra: Any) -> DryRunRequest:
    return DryRunRequest(
        name="acme",
        integration="Subscriber",
        config={"base_url": api.url, "signing_secret": SECRET},
        connections={"api": {"token": TOKEN}},
        **extra,
    )


def subscribed(status: int, body: Any) -> RecordedExchange:
    """A recorded answer to POST /subscriptions."""
    return RecordedExchange.model_validate(
        {
            "request": {"method": "POST", "url": "/subscriptions"},
            "response": {"status": status, "body": body},
        }
    )


def stored(hub: Hub) -> tuple[int, int, int]:
    """(instances, executions, state rows) in the database."""
    with session_scope(hub.db, write=False) as session:
        return (
            len(session.exec(select(InstanceRow)).all()),
            len(session.exec(select(ExecutionRow)).all()),
            len(session.exec(select(InstanceStateRow)).all()),
        )


async def test_a_deploy_dry_run_lists_calls_and_state_and_sends_nothing(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api):
        answer = subscribed(201, {"id": "sub-77"})
        report = await dry_run_deploy(hub, request(api, responses=[answer]))
        assert report.ok and report.event == "deploy" and report.instance == "acme"
        assert [(r.flow_id, r.kind, r.status) for r in report.runs] == [
            ("register", "flow", "succeeded")
        ]
        (call,) = report.calls
        assert (call.flow_id, call.step_id, call.method, call.url) == (
            "register",
            "subscribe",
            "POST",
            f"{api.url}/subscriptions",
        )
        assert call.body == {"url": hub.webhook_url("dry-run-main"), "secret": "***"}
        assert (call.status, call.answered_by) == (201, "recording")
        assert [(s.scope, s.key, s.change, s.value) for s in report.state] == [
            ("instance", "subscription", "set", "sub-77")
        ]
        assert SECRET not in report.model_dump_json()
        assert TOKEN not in report.model_dump_json()
        assert api.requests == []
        assert stored(hub) == (0, 0, 0)


async def test_calls_without_a_recording_get_an_echo(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api):
        report = await dry_run_deploy(hub, request(api))
        assert report.ok
        (call,) = report.calls
        assert (call.status, call.answered_by) == (200, "echo")
        # The echo is the request body: it has no `id`, so nothing useful would be remembered.
        assert [(s.key, s.value) for s in report.state] == [("subscription", None)]
        assert api.requests == []
        assert stored(hub) == (0, 0, 0)


async def test_a_failing_recorded_answer_fails_the_run(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api):
        refused = subscribed(400, {"error": "bad url"})
        report = await dry_run_deploy(hub, request(api, responses=[refused]))
        assert not report.ok
        (run,) = report.runs
        assert run.status == "failed" and run.error is not None
        assert run.error["step"] == "subscribe"
        assert report.state == []
        assert stored(hub) == (0, 0, 0)


async def test_a_bad_deploy_request_is_refused_as_deploy_refuses_it(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api):
        bad = DryRunRequest(name="acme", integration="Subscriber", config={"base_url": api.url})
        with pytest.raises(InvalidInput) as caught:
            await dry_run_deploy(hub, bad)
        assert "config.signing_secret" in caught.value.details
        assert "connections.api" in caught.value.details
        assert stored(hub) == (0, 0, 0)


async def test_a_teardown_dry_run_uses_the_instance_state_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with setup(tmp_path) as (hub, api):
        real = request(api).model_dump(exclude={"responses"})
        view = await instances.deploy(hub, instances.DeployRequest.model_validate(real))
        assert view.status == "active"
        assert api.requests == [("POST", "/subscriptions")]
        before = stored(hub)

        report = await dry_run_teardown(hub, view.id)
        assert report.ok and report.event == "delete"
        assert [(r.flow_id, r.status) for r in report.runs] == [("unregister", "succeeded")]
        (call,) = report.calls
        assert (call.method, call.url, call.answered_by) == (
            "DELETE",
            f"{api.url}/subscriptions/sub-1",
            "echo",
        )
        assert report.state == []
        assert api.requests == [("POST", "/subscriptions")]  # nothing more was sent
        assert stored(hub) == before
        assert (await instances.get_instance(hub, view.id)).status == "active"


async def test_a_teardown_dry_run_of_an_unknown_instance_is_not_found(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, _):
        with pytest.raises(NotFound):
            await dry_run_teardown(hub, "nope")


# --- the API ------------------------------------------------------------------------------------


@asynccontextmanager
async def api_client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.hub = hub

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)  # as `app.server` answers

    app.include_router(api_routes.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=hub.settings.base_url) as http:
        yield http


async def test_the_api_dry_runs_a_deploy_and_a_teardown(tmp_path: Path) -> None:
    async with setup(tmp_path) as (hub, api), api_client(hub) as client:
        body = request(api).model_dump(exclude={"responses"})
        answer = await client.post("/api/instances/dry-run", json=body)
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert [c["answered_by"] for c in report["calls"]] == ["echo"]
        assert report["calls"][0]["body"]["secret"] == "***"

        bad = await client.post("/api/instances/dry-run", json={**body, "config": {}})
        assert bad.status_code == 422
        assert "config.base_url" in bad.json()["details"]

        created = await client.post("/api/instances", json=body)
        assert created.status_code == 201, created.text
        instance_id = created.json()["id"]
        path = f"/api/instances/{instance_id}/teardown/dry-run"
        recorded = {"request": {"method": "DELETE", "url": "/subscriptions/sub-1"}}
        teardown = await client.post(path, json={"responses": [recorded]})
        assert teardown.status_code == 200, teardown.text
        assert [(c["method"], c["answered_by"]) for c in teardown.json()["calls"]] == [
            ("DELETE", "recording")
        ]
        assert (await client.post(path)).status_code == 200  # the body is optional
        missing = await client.post("/api/instances/nope/teardown/dry-run")
        assert missing.status_code == 404
        assert api.requests == [("POST", "/subscriptions")]  # the real deploy's call only


# --- trigger hooks ------------------------------------------------------------------------------


class HookInputs(Inputs):
    url: str = Field(title="URL", description="Where to subscribe.")


class Subscribed(Trigger[HookInputs]):
    """A webhook trigger that subscribes itself when deployed and unsubscribes when deleted."""

    key = "subscribed"
    title = "Subscribed"
    kind = "webhook"
    Inputs = HookInputs

    async def on_deploy(self, inputs: HookInputs, ctx: TriggerContext) -> None:
        answer = await ctx.http.post(inputs.url, json={"callback": ctx.webhook_urls[ctx.flow_id]})
        await ctx.state.set("hook_subscription", answer.json().get("id"), scope="flow")

    async def on_delete(self, inputs: HookInputs, ctx: TriggerContext) -> None:
        sub = await ctx.state.get("hook_subscription", scope="flow")
        await ctx.http.delete(f"{inputs.url}/{sub}")


def hook_environment(registry: Registry, base: str) -> InstanceEnvironment:
    integration = Integration.model_validate(
        {
            "name": "Hooked",
            "config": [{"key": "base", "type": "string"}],
            "flows": [
                {
                    "id": "events",
                    "trigger": {
                        "id": "receive",
                        "action": "hooks.subscribed",
                        "inputs": {"url": "{{ config.base }}/subscriptions"},
                    },
                }
            ],
        }
    )
    assert registry.trigger("hooks.subscribed") is Subscribed
    return InstanceEnvironment(
        instance_id="i1",
        name="hooked",
        status="active",
        enabled=True,
        created_at=0.0,
        integration=integration,
        flows={f.id: f for f in integration.flows},
        config={"base": base},
        connections={},
        webhook_urls={"events": "http://127.0.0.1:8080/webhooks/t-events"},
    )


async def test_trigger_hooks_are_dry_run_too() -> None:
    registry = default_registry()
    registry.add(Component(key="hooks", title="Hooks", triggers=[Subscribed]), source="test")
    async with subscription_api() as api:
        env = hook_environment(registry, api.url)
        answer = subscribed(201, {"id": "sub-3"})
        deploy = await dry_run(registry, env, "deploy", responses=[answer])
        assert [(r.flow_id, r.kind, r.status) for r in deploy.runs] == [
            ("events", "hook", "succeeded")
        ]
        assert [(c.step_id, c.method, c.body, c.answered_by) for c in deploy.calls] == [
            ("receive", "POST", {"callback": env.webhook_urls["events"]}, "recording")
        ]
        assert [(s.scope, s.key, s.value) for s in deploy.state] == [
            ("events", "hook_subscription", "sub-3")
        ]
        teardown = await dry_run(
            registry, env, "delete", state={("events", "hook_subscription"): "sub-3"}
        )
        assert [(c.method, c.url, c.answered_by) for c in teardown.calls] == [
            ("DELETE", f"{api.url}/subscriptions/sub-3", "echo")
        ]
        assert api.requests == []
