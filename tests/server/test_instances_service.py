"""Instances service: deploy with config and connections, lifecycle flows and hooks, tear-down.

A fake dispatcher runs lifecycle flows on the real engine with the context built from what the
service stored; an in-memory "Acme" app stands in for the third party whose webhooks the deploy
flows and trigger hooks register.
"""

from __future__ import annotations

import asyncio
import base64
import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, SecretStr
from sqlmodel import select

from app.persistence import SecretBox, load_secret_key, open_database, session_scope
from app.persistence import repositories as repo
from app.persistence.inbox import Claimed
from app.persistence.models import (
    ConfigValueRow,
    ConnectionRow,
    ExecutionRow,
    InstanceRow,
    InstanceStateRow,
    IntegrationRow,
    IntegrationVersionRow,
    WebhookTokenRow,
)
from app.persistence.recording import SqlRecorder, SqlStateBackend
from app.services import instances, integrations
from app.services.environment import load_environment
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub, Reservation, SyncOutcome
from app.services.instances import DeployRequest
from app.settings import Settings
from components.api import (
    Action,
    Component,
    Connection,
    Inputs,
    StepContext,
    StepError,
    Trigger,
    TriggerContext,
    TriggerEvent,
)
from components.registry import default_registry
from runtime.context import RunContext
from runtime.engine import run_flow
from runtime.http import make_http_client
from runtime.observer import ExecutionResult
from tests.stored import stored_bytes

SECRET = "sk_live_acme_0123456789_secret"


@dataclass
class AcmeApp:
    """The third-party app: its registered webhooks and what happened, in order."""

    active: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    seen_urls: list[dict[str, str]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)


ACME = AcmeApp()


class RegisterInputs(Inputs):
    name: str = Field(title="Name", description="Webhook name.")
    flow: str = Field(title="Flow", description="The sibling flow whose URL to register.")


class Register(Action[RegisterInputs]):
    key = "register"
    title = "Register webhook"
    Inputs = RegisterInputs

    async def run(self, inputs: RegisterInputs, ctx: StepContext) -> Any:
        if f"register:{inputs.name}" in ACME.fail:
            raise StepError(f"Acme refused webhook '{inputs.name}'.")
        key = f"{inputs.name}-{uuid.uuid4().hex[:6]}"
        ACME.active[key] = ctx.webhook_urls[inputs.flow]
        ACME.events.append(f"register {inputs.name}")
        ACME.seen_urls.append(dict(ctx.webhook_urls))
        ids = await ctx.state.get("acme_ids", [])
        await ctx.state.set("acme_ids", [*ids, key])
        return {"id": key}


class Unregister(Action[Inputs]):
    key = "unregister"
    title = "Remove webhooks"

    async def run(self, inputs: Inputs, ctx: StepContext) -> Any:
        if "unregister" in ACME.fail:
            raise StepError("Acme is down.")
        ids = await ctx.state.get("acme_ids", [])
        for key in ids:
            ACME.active.pop(key, None)
        ACME.events.append(f"unregister {len(ids)}")
        return {"removed": ids}


class UpdatesInputs(Inputs):
    topic: str = Field(title="Topic", description="What Acme sends.")


class Updates(Trigger[UpdatesInputs]):
    key = "updates"
    title = "Acme updates"
    kind = "webhook"
    Inputs = UpdatesInputs

    async def on_deploy(self, inputs: UpdatesInputs, ctx: TriggerContext) -> None:
        if "on_deploy" in ACME.fail:
            raise StepError("Acme has no such topic.")
        ctx.log.info("subscribing with %s", ctx.connections["acme"].secret("api_key"))
        ACME.active["subscription"] = ctx.webhook_urls[ctx.flow_id]
        ACME.events.append(f"subscribe {inputs.topic}")
        await ctx.state.set("subscribed", True, scope="flow")

    async def on_delete(self, inputs: UpdatesInputs, ctx: TriggerContext) -> None:
        if "on_delete" in ACME.fail:
            raise StepError("Acme cannot unsubscribe now.")
        ACME.active.pop("subscription", None)
        ACME.events.append(f"unsubscribe {inputs.topic}")


ACME_COMPONENT = Component(
    key="acme", title="Acme", actions=[Register, Unregister], triggers=[Updates]
)

INTEGRATION = textwrap.dedent("""\
    name: Acme sync
    version: 1
    config:
      - key: region
        type: string
        required: true
      - key: limit
        type: integer
        default: 10
      - key: verbose
        type: boolean
      - key: options
        type: json
      - key: password
        type: secret
    connections:
      - key: acme
        type: api_key
    flows:
      - id: orders
        trigger:
          id: receive
          action: acme.updates
          inputs:
            topic: '{{ config.region }}-orders'
      - id: register_orders
        trigger:
          id: start
          action: instance.deploy
        steps:
          - id: reg
            action: acme.register
            inputs:
              name: orders
              flow: orders
        edges:
          - from: start
            to: reg
      - id: accounts
        trigger:
          id: receive
          action: webhook.webhook
      - id: register_accounts
        trigger:
          id: start
          action: instance.deploy
        steps:
          - id: reg
            action: acme.register
            inputs:
              name: accounts
              flow: accounts
        edges:
          - from: start
            to: reg
      - id: teardown
        trigger:
          id: start
          action: instance.delete
        steps:
          - id: unreg
            action: acme.unregister
        edges:
          - from: start
            to: unreg
    """)


class FakeDispatcher:
    """Runs lifecycle flows on the engine with the context built from the stored instance."""

    def __init__(self) -> None:
        self.hub: Hub | None = None
        self.invalidated: list[str | None] = []
        self.status_seen: list[tuple[str, str]] = []

    def notify(self) -> None:
        pass

    def start_now(self, row: Claimed) -> None:
        raise AssertionError("no synchronous webhook here")

    def try_reserve(self, instance_id: str, flow_id: str) -> Reservation | None:
        return None

    async def wait_for_reply(self, execution_id: str, seconds: float) -> SyncOutcome | None:
        return None

    def invalidate(self, instance_id: str | None) -> None:
        self.invalidated.append(instance_id)

    async def run_lifecycle(
        self, instance_id: str, flow_id: str, event: TriggerEvent
    ) -> ExecutionResult:
        hub = self.hub
        assert hub is not None
        execution_id = uuid.uuid4().hex

        def load() -> tuple[RunContext, Any]:
            with session_scope(hub.db) as s:
                row = s.get(InstanceRow, instance_id)
                assert row is not None
                self.status_seen.append((flow_id, row.status))
                version = s.get(IntegrationVersionRow, row.version_id)
                assert version is not None
                owner = s.get(IntegrationRow, version.integration_id)
                assert owner is not None
                integration = repo.load_integration(s, owner.name, version.version)
                creds = repo.load_connections(s, hub.box, instance_id)
                tokens = repo.webhook_tokens(s, instance_id)
                s.add(ExecutionRow(id=execution_id, flow_id=flow_id, instance_id=instance_id))
                context = RunContext(
                    registry=hub.registry,
                    http=hub.http,
                    execution_id=execution_id,
                    config=repo.load_config_values(s, hub.box, instance_id),
                    connections={
                        k: Connection(k, t, {f: SecretStr(v) for f, v in values.items()})
                        for k, (t, values) in creds.items()
                    },
                    instance={"id": instance_id, "name": row.name},
                    instance_id=instance_id,
                    state=SqlStateBackend(hub.db),
                    webhook_urls={f: hub.webhook_url(t) for f, t in tokens.items() if f},
                    flows={f.id: f for f in integration.flows},
                )
                return context, integration.flow(flow_id)

        context, flow = await asyncio.to_thread(load)
        recorder = SqlRecorder(hub.db)
        result = await run_flow(flow, event, context, recorder)
        await recorder.flush()
        return result


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    ACME.active.clear()
    ACME.events.clear()
    ACME.seen_urls.clear()
    ACME.fail.clear()
    registry = default_registry()
    registry.add(ACME_COMPONENT, source="test")
    dispatcher = FakeDispatcher()
    engine = open_database(tmp_path)
    async with make_http_client() as http:
        hub = Hub(
            settings=Settings(data_dir=tmp_path, public_url="https://hooks.example.test"),
            db=engine,
            registry=registry,
            http=http,
            box=SecretBox(load_secret_key(tmp_path)),
            dispatcher=dispatcher,
        )
        dispatcher.hub = hub
        await integrations.import_integration(hub, INTEGRATION, "acme.yaml")
        yield hub
    engine.dispose()


def request(**changes: Any) -> DeployRequest:
    values: dict[str, Any] = {
        "name": "Customer A",
        "integration": "Acme sync",
        "config": {"region": "eu", "verbose": "yes", "password": "hunter2-secret"},
        "connections": {"acme": {"api_key": SECRET}},
    }
    return DeployRequest.model_validate({**values, **changes})


def count(hub: Hub, model: Any) -> int:
    with session_scope(hub.db, write=False) as s:
        return len(list(s.exec(select(model))))


async def test_deploy_runs_hooks_then_deploy_flows_in_file_order(hub: Hub) -> None:
    view = await instances.deploy(hub, request())

    assert view.status == "active"
    assert view.enabled
    assert view.version == 1
    assert ACME.events == ["subscribe eu-orders", "register orders", "register accounts"]
    urls = {f.flow_id: f.webhook_url for f in view.flows}
    assert set(urls) == {"orders", "register_orders", "accounts", "register_accounts", "teardown"}
    assert all(u.startswith("https://hooks.example.test/webhooks/") for u in urls.values())
    assert len(set(urls.values())) == 5
    assert view.instance_url not in urls.values()
    # Every deploy flow saw every sibling's URL, and registered the one it was given.
    assert ACME.seen_urls == [urls, urls]
    assert sorted(ACME.active.values()) == sorted([urls["orders"]] * 2 + [urls["accounts"]])
    assert [(r.flow_id, r.kind, r.status) for r in view.lifecycle] == [
        ("orders", "hook", "succeeded"),
        ("register_orders", "flow", "succeeded"),
        ("register_accounts", "flow", "succeeded"),
    ]
    assert all(r.execution_id for r in view.lifecycle if r.kind == "flow")
    assert view.lifecycle[0].logs == ["info: subscribing with ***"]
    assert view.failed_execution_id is None
    assert view.error is None
    # Config typed, defaults applied, secrets masked; connection slots without values.
    assert view.config == {"region": "eu", "limit": 10, "verbose": True, "password": "***"}
    assert [(c.slot, c.type) for c in view.connections] == [("acme", "api_key")]
    assert SECRET not in view.model_dump_json()
    assert hub.dispatcher is not None
    assert view.id in hub.runner.invalidated  # type: ignore[attr-defined]

    with session_scope(hub.db, write=False) as s:
        tokens = list(s.exec(select(WebhookTokenRow)))
        assert sorted(t.flow_id for t in tokens) == sorted(["", *urls])
        assert all(len(t.token) >= 32 for t in tokens)
        executions = list(s.exec(select(ExecutionRow)))
        assert {e.instance_id for e in executions} == {view.id}
        assert {e.status for e in executions} == {"succeeded"}
        assert repo.load_config_values(s, hub.box, view.id)["password"] == "hunter2-secret"

    # Neither the connection's secret nor the secret config value is stored in clear.
    stored = stored_bytes(hub.db, hub.settings.data_dir)
    assert b"Customer A" in stored
    assert SECRET.encode() not in stored
    assert b"hunter2-secret" not in stored

    assert await instances.get_instance(hub, view.id) == view
    assert [v.id for v in await instances.list_instances(hub)] == [view.id]
    assert [v.id for v in await instances.list_instances(hub, "Acme sync")] == [view.id]
    assert await instances.list_instances(hub, "Other") == []


async def test_bad_config_and_connections_are_listed_per_field_and_nothing_is_stored(
    hub: Hub,
) -> None:
    bad = request(
        name="  ",
        config={"limit": "ten", "verbose": "maybe", "options": "{bad", "colour": "red"},
        connections={"acme": {"api_key": ""}, "crm": {"token": "x"}},
    )
    with pytest.raises(InvalidInput) as caught:
        await instances.deploy(hub, bad)
    assert caught.value.details == {
        "name": "give the instance a name",
        "config.colour": "there is no config variable 'colour' (declared: region, limit, "
        "verbose, options, password)",
        "config.region": "'region' is required",
        "config.limit": "'limit' is of type integer; expected an integer such as 3",
        "config.verbose": "'verbose' is of type boolean; expected true or false",
        "config.options": "'options' is of type json; expected a JSON value such as {\"a\": 1}",
        "connections.acme.api_key": "must be non-empty text",
        "connections.crm": "there is no connection 'crm' (declared: acme)",
    }
    with pytest.raises(InvalidInput) as caught:
        await instances.deploy(hub, request(connections={}, config={"region": 5}))
    assert caught.value.details == {
        "config.region": "'region' is of type string; expected text",
        "connections.acme": "connection 'acme' is required",
    }
    with pytest.raises(InvalidInput) as caught:
        await instances.deploy(hub, request(connections={"acme": {}}))
    assert set(caught.value.details) == {"connections.acme"}
    with pytest.raises(InvalidInput) as caught:
        await instances.deploy(hub, request(version=7))
    assert caught.value.details == {"version": "no such version; published versions: none"}
    with pytest.raises(InvalidInput):
        await instances.deploy(hub, request(integration="Nope"))

    for model in (InstanceRow, ConfigValueRow, ConnectionRow, WebhookTokenRow, ExecutionRow):
        assert count(hub, model) == 0, model
    assert ACME.events == []


async def test_typed_json_values_are_accepted(hub: Hub) -> None:
    config = {"region": "us", "limit": 3.0, "verbose": False, "options": {"a": [1]}}
    view = await instances.deploy(hub, request(config=config))
    assert view.config == {"region": "us", "limit": 3, "verbose": False, "options": {"a": [1]}}


async def test_a_failing_deploy_flow_leaves_a_failed_instance_that_can_be_deleted(
    hub: Hub,
) -> None:
    ACME.fail.add("register:accounts")
    view = await instances.deploy(hub, request())

    assert view.status == "deploy_failed"
    assert [(r.flow_id, r.status) for r in view.lifecycle] == [
        ("orders", "succeeded"),
        ("register_orders", "succeeded"),
        ("register_accounts", "failed"),
    ]
    failed = view.lifecycle[-1]
    assert view.failed_execution_id == failed.execution_id is not None
    assert view.error is not None
    assert "Acme refused webhook 'accounts'" in view.error["message"]
    with session_scope(hub.db, write=False) as s:
        execution = s.get(ExecutionRow, failed.execution_id)
        assert execution is not None
        assert execution.status == "failed"
        assert execution.instance_id == view.id
    assert len(ACME.active) == 2  # the subscription and the orders webhook stay registered

    report = await instances.delete_instance(hub, view.id)
    assert report.ok
    assert ACME.active == {}  # the tear-down removed the partial registrations
    ACME.fail.clear()
    again = await instances.deploy(hub, request())
    assert again.status == "active"


async def test_a_failing_hook_stops_the_deploy_before_the_flows(hub: Hub) -> None:
    ACME.fail.add("on_deploy")
    view = await instances.deploy(hub, request())
    assert view.status == "deploy_failed"
    assert [(r.flow_id, r.kind, r.status) for r in view.lifecycle] == [
        ("orders", "hook", "failed"),
        ("register_orders", "flow", "skipped"),
        ("register_accounts", "flow", "skipped"),
    ]
    assert view.failed_execution_id is None
    assert view.error is not None
    assert view.error["message"] == (
        "The on_deploy hook of trigger 'receive' in flow 'orders' failed: Acme has no such topic."
    )
    assert count(hub, ExecutionRow) == 0


async def test_delete_stops_routing_first_then_tears_down_and_removes(hub: Hub) -> None:
    view = await instances.deploy(hub, request())
    assert len(ACME.active) == 3
    dispatcher = hub.runner
    assert isinstance(dispatcher, FakeDispatcher)

    report = await instances.delete_instance(hub, view.id)

    assert ("teardown", "deleting") in dispatcher.status_seen
    assert report.removed
    assert report.ok
    assert [(r.flow_id, r.kind, r.status) for r in report.runs] == [
        ("teardown", "flow", "succeeded"),
        ("orders", "hook", "succeeded"),
    ]
    assert ACME.active == {}
    assert ACME.events[-2:] == ["unregister 2", "unsubscribe eu-orders"]
    for model in (InstanceRow, ConfigValueRow, ConnectionRow, WebhookTokenRow, InstanceStateRow):
        assert count(hub, model) == 0, model
    with session_scope(hub.db, write=False) as s:
        teardown = s.get(ExecutionRow, report.runs[0].execution_id)
        assert teardown is not None
        assert teardown.instance_id is None  # kept, detached from the removed instance
    with pytest.raises(NotFound):
        await instances.get_instance(hub, view.id)
    with pytest.raises(NotFound):
        await instances.delete_instance(hub, view.id)

    again = await instances.deploy(hub, request())
    assert again.status == "active"
    assert again.id != view.id
    assert {f.webhook_url for f in again.flows}.isdisjoint({f.webhook_url for f in view.flows})


async def test_a_failing_tear_down_is_reported_and_the_instance_still_removed(
    hub: Hub,
) -> None:
    view = await instances.deploy(hub, request())
    ACME.fail.update({"unregister", "on_delete"})

    report = await instances.delete_instance(hub, view.id)

    assert report.removed
    assert not report.ok
    assert [(r.flow_id, r.kind, r.status) for r in report.runs] == [
        ("teardown", "flow", "failed"),
        ("orders", "hook", "failed"),
    ]
    assert report.runs[0].error is not None
    assert report.runs[0].error["message"].endswith("Acme is down.")
    assert report.runs[1].error is not None
    assert "Acme cannot unsubscribe now." in report.runs[1].error["message"]
    assert count(hub, InstanceRow) == 0
    with session_scope(hub.db, write=False) as s:
        failed = s.get(ExecutionRow, report.runs[0].execution_id)
        assert failed is not None
        assert failed.status == "failed"


async def test_enable_disable_and_names_are_unique(hub: Hub) -> None:
    view = await instances.deploy(hub, request())
    hub.runner.invalidated.clear()  # type: ignore[attr-defined]

    off = await instances.set_enabled(hub, view.id, False)
    assert not off.enabled
    assert off.status == "active"
    assert hub.runner.invalidated == [view.id]  # type: ignore[attr-defined]
    assert (await instances.set_enabled(hub, view.id, True)).enabled
    with pytest.raises(NotFound):
        await instances.set_enabled(hub, "nope", True)

    with pytest.raises(Conflict, match="already exists"):
        await instances.deploy(hub, request(name=" Customer A "))
    assert count(hub, InstanceRow) == 1


async def test_instances_run_published_versions_and_never_pin_the_draft(hub: Hub) -> None:
    """Bug 1 of issue 23: an instance deployed from the draft ran whatever the draft held when its
    cached environment was (re)loaded. Deploying without a published version now publishes the
    draft first; an edit then starts a new draft that no instance sees, even after a reload."""
    first = await instances.deploy(hub, request(name="first"))
    assert (first.version, first.test) == (1, False)
    detail = await integrations.get_integration(hub, "Acme sync")
    assert [(v.version, v.published) for v in detail.versions] == [(1, True)]

    edited = INTEGRATION.replace("name: orders\n", "name: edited\n")
    await integrations.import_integration(hub, edited)  # the designer's draft: version 2
    reloaded = load_environment(hub, first.id)  # what a disable/enable reloads
    assert reloaded.integration.version == 1
    assert reloaded.flows["register_orders"].steps[0].inputs["name"] == "orders"

    pinned = await instances.deploy(hub, request(name="pinned"))
    assert pinned.version == 1
    with pytest.raises(InvalidInput, match="is the draft") as caught:
        await instances.deploy(hub, request(name="explicit", version=2))
    assert caught.value.details == {"version": "the draft is not deployable; published versions: 1"}
    assert count(hub, InstanceRow) == 2

    assert await integrations.publish(hub, "Acme sync", "  renames the orders hook ") == 2
    explicit = await instances.deploy(hub, request(name="explicit", version=2))
    assert (explicit.version, explicit.version_note) == (2, "renames the orders hook")
    assert explicit.latest_published == 2
    with pytest.raises(InvalidInput) as long_note:
        await integrations.publish(hub, "Acme sync", "x" * 501)
    assert set(long_note.value.details) == {"note"}


async def test_interrupted_deploys_are_marked_failed(hub: Hub) -> None:
    with session_scope(hub.db) as s:
        instance_id = repo.create_instance(s, "stuck", "Acme sync", 1)
    with pytest.raises(Conflict, match="still deploying"):
        await instances.delete_instance(hub, instance_id)
    assert await instances.recover_interrupted(hub) == [instance_id]
    view = await instances.get_instance(hub, instance_id)
    assert view.status == "deploy_failed"
    assert view.error is not None
    assert view.error["kind"] == "interrupted"
    assert (await instances.delete_instance(hub, instance_id)).removed


SIGNED = textwrap.dedent("""\
    name: Signed hooks
    config:
      - {key: signing_secret, type: secret, required: true}
      - {key: methods, type: json, default: [POST]}
    flows:
      - id: orders
        name: Orders
        trigger:
          id: receive
          name: Order placed
          action: webhook.webhook
          inputs:
            methods: '{{ config.methods }}'
            signature:
              scheme: standard_webhooks
              secret: '{{ config.signing_secret }}'
    """)


async def test_trigger_settings_are_checked_with_the_config_before_anything_is_stored(
    hub: Hub,
) -> None:
    await integrations.import_integration(hub, SIGNED, "signed.yaml")
    bad = DeployRequest(
        name="Shop",
        integration="Signed hooks",
        config={"signing_secret": "whsec_%%not-base64%%", "methods": ["POST", "FETCH"]},
    )
    with pytest.raises(InvalidInput) as caught:
        await instances.deploy(hub, bad)
    assert caught.value.details == {
        "flows.orders.trigger.methods[1]": "Flow 'Orders', trigger 'Order placed' input "
        "'methods[1]': 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE.",
        "flows.orders.trigger.signature.secret": "Flow 'Orders', trigger 'Order placed' input "
        "'signature.secret': The Standard Webhooks secret is not valid base64. Paste the whole "
        "`whsec_...` secret the sender shows.",
    }
    assert "not-base64" not in str(caught.value.to_json())
    for model in (InstanceRow, ConfigValueRow, WebhookTokenRow, ExecutionRow):
        assert count(hub, model) == 0, model

    # A secret handed out without base64 padding is what the reference library accepts.
    unpadded = "whsec_" + base64.b64encode(bytes(range(31))).decode().rstrip("=")
    good = bad.model_copy(update={"config": {"signing_secret": unpadded}})
    assert (await instances.deploy(hub, good)).status == "active"


async def test_text_that_is_not_unicode_is_refused_by_field_before_any_query(hub: Hub) -> None:
    # The deploy form and the CLI reach the service without the REST API's body check.
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "Customer \ud800"}, "name"),
        ({"integration": "Acme sync\udfff"}, "integration"),
        ({"config": {"region": "eu", "password": "hunter2\ud800"}}, "config.password"),
        ({"connections": {"acme": {"api_key": "sk_\udc80"}}}, "connections.acme.api_key"),
    ]
    for changes, where in cases:
        with pytest.raises(InvalidInput) as caught:
            await instances.deploy(hub, request(**changes))
        assert list(caught.value.details) == [where]
        assert "a lone surrogate, which is not valid Unicode text" in caught.value.details[where]
    for model in (InstanceRow, ConfigValueRow, ConnectionRow, WebhookTokenRow):
        assert count(hub, model) == 0, model
