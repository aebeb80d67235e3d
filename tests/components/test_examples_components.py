"""The example components (examples/components) loaded as a user loads custom components, run
against the real demo apps on 127.0.0.1; and every example integration file validates."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from components.api import (
    Action,
    Connection,
    Result,
    RetryableError,
    StepConfigError,
    StepError,
    TriggerContext,
    TriggerEvent,
)
from components.builtin.webhook import WebhookInputs
from components.registry import Registry, default_registry
from examples.demoapps import ACME, CRM, DemoApp
from runtime.files import load_integration
from runtime.validation import validate_integration
from tests.components.conftest import Harness
from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry(EXAMPLES / "components")


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[dict[str, DemoApp]]:
    crm, acme = DemoApp(CRM, tmp_path, "crm-key"), DemoApp(ACME, tmp_path, "acme-key")
    await crm.start()
    await acme.start()
    yield {"crm": crm, "acme": acme}
    await crm.stop()
    await acme.stop()


def connections(crm: str = "crm-key", acme: str = "acme-key") -> dict[str, Connection]:
    return {
        "crm": Connection("crm", "api_key", {"api_key": SecretStr(crm)}),
        "acme": Connection("acme", "api_key", {"api_key": SecretStr(acme)}),
    }


async def run(
    registry: Registry,
    harness: Harness,
    ref: str,
    inputs: dict[str, Any],
    conns: dict[str, Connection] | None = None,
) -> Any:
    cls = registry.action(ref)
    action: Action[Any] = cls()
    ctx = harness.ctx(http=harness.client(), connections=connections() if conns is None else conns)
    result = await action.run(cls.Inputs.model_validate(inputs), ctx)
    assert isinstance(result, Result)
    return result.output


# --- discovery and contracts ----------------------------------------------------------------------


def test_the_folder_loads_both_components_without_problems(registry: Registry) -> None:
    assert registry.problems == []
    crm, acme = registry.get("crm"), registry.get("acme")
    assert crm is not None
    assert acme is not None
    assert registry.sources["crm"] == str(EXAMPLES / "components" / "crm.py")
    shared = {
        "get_current_user",
        "find_account",
        "find_opportunity",
        "create_account",
        "update_account",
        "create_opportunity",
        "update_opportunity",
    }
    assert {a.key for a in crm.actions} == shared | {
        "create_outbound_message",
        "list_outbound_messages",
        "delete_outbound_message",
    }
    assert {a.key for a in acme.actions} == shared | {
        "create_webhook",
        "list_webhooks",
        "delete_webhook",
    }
    assert {t.key for t in crm.triggers} == {"account_message", "opportunity_message"}
    assert {t.key for t in acme.triggers} == {"webhook"}


@pytest.mark.parametrize(
    "path", sorted((EXAMPLES / "components").glob("*.py")), ids=lambda p: p.name
)
def test_example_components_import_only_the_public_api(path: Path) -> None:
    """Written as a user writes them: of Flowyard, only `components.api`."""
    ours = {"components", "runtime", "app", "designer", "examples", "tests", "bench"}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in ours:
                assert name == "components.api", f"{path.name}:{node.lineno} imports {name}"


def _fields(model: type[BaseModel]) -> list[tuple[str, Any]]:
    found = []
    for name, field in model.model_fields.items():
        found.append((f"{model.__name__}.{name}", field))
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found += _fields(inner)
    return found


def test_every_input_has_a_title_and_a_description(registry: Registry) -> None:
    for key in ("crm", "acme"):
        component = registry.get(key)
        assert component is not None
        for item in [*component.actions, *component.triggers]:
            assert item.title
            assert item.description
            for name, field in _fields(item.Inputs):
                assert field.title, name
                assert field.description, name


def test_trigger_settings_are_what_the_server_checks_at_ingest(registry: Registry) -> None:
    """The server validates a custom trigger's inputs as `WebhookInputs` (by field name)."""
    inputs = {
        "signature": {"scheme": "hmac_sha256", "header": "X-CRM-Signature", "secret": "s3cret-1"},
        "delivery_id_header": "X-CRM-Delivery",
    }
    for ref in ("crm.account_message", "crm.opportunity_message", "acme.webhook"):
        ours = registry.trigger(ref).Inputs.model_validate(inputs)
        shared = {k: v for k, v in inputs.items() if k in WebhookInputs.model_fields}
        checked = WebhookInputs.model_validate(shared)
        assert checked.signature.scheme == "hmac_sha256"
        assert checked.delivery_id_header == "X-CRM-Delivery"
        assert ours.model_dump().keys() <= WebhookInputs.model_fields.keys() | {"event"}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates_and_has_a_position_for_every_step(
    registry: Registry, path: Path
) -> None:
    integration = load_integration(path)
    assert validate_integration(integration, registry) == []
    for flow in integration.flows:
        placed = integration.layout.get(flow.id, {})
        assert {s.id for s in flow.all_steps()} == set(placed), flow.id


def test_the_two_way_integration_has_the_articles_five_flows() -> None:
    integration = load_integration(EXAMPLES / "crm-acme.yaml")
    assert [f.name for f in integration.flows] == [
        "Deploy",
        "CRM account",
        "CRM opportunity",
        "Acme opportunity update",
        "Tear down",
    ]
    layout = integration.layout["deploy"]
    xs = [layout[s.id].x for s in integration.flows[0].all_steps()]
    assert xs == sorted(xs)  # left to right


# --- actions against the demo apps ----------------------------------------------------------------


async def test_find_create_and_update_link_records_by_external_id(
    registry: Registry, harness: Harness, apps: dict[str, DemoApp]
) -> None:
    base = {"base_url": apps["acme"].url}
    missing = await run(registry, harness, "acme.find_account", {**base, "external_id": "001x"})
    assert missing == {"found": False, "record": None}
    created = await run(
        registry,
        harness,
        "acme.create_account",
        {**base, "name": "Globex", "industry": "Energy", "website": None, "external_id": "001x"},
    )
    assert created["website"] is None
    found = await run(registry, harness, "acme.find_account", {**base, "external_id": "001x"})
    assert found == {"found": True, "record": created}
    # Fields left out stay; a null clears.
    updated = await run(
        registry,
        harness,
        "acme.update_account",
        {**base, "id": created["id"], "industry": None},
    )
    assert (updated["name"], updated["industry"]) == ("Globex", None)
    assert harness.messages == [f"PATCH /api/accounts/{created['id']} -> 200"]


async def test_subscriptions_are_created_listed_and_deleted(
    registry: Registry, harness: Harness, apps: dict[str, DemoApp]
) -> None:
    base = {"base_url": apps["crm"].url}
    user = await run(registry, harness, "crm.get_current_user", base)
    assert user["email"] == "ada.admin@crm.example"
    sub = await run(
        registry,
        harness,
        "crm.create_outbound_message",
        {**base, "object": "account", "url": "http://127.0.0.1:9/x", "secret": "s3cret-12"},
    )
    assert apps["crm"].store.subscription(sub["id"]) is not None
    listed = await run(registry, harness, "crm.list_outbound_messages", base)
    assert [s["id"] for s in listed["items"]] == [sub["id"]]
    gone = {**base, "id": sub["id"]}
    assert await run(registry, harness, "crm.delete_outbound_message", gone) == {
        "id": sub["id"],
        "deleted": True,
    }
    again = await run(registry, harness, "crm.delete_outbound_message", gone)
    assert again == {"id": sub["id"], "deleted": False}
    nothing = await run(registry, harness, "crm.delete_outbound_message", {**base, "id": None})
    assert nothing == {"id": None, "deleted": False}
    with pytest.raises(StepError, match="There is no outbound message"):
        await run(registry, harness, "crm.delete_outbound_message", {**gone, "missing_ok": False})


async def test_failures_name_the_app_and_the_fix(
    registry: Registry, harness: Harness, apps: dict[str, DemoApp]
) -> None:
    crm = {"base_url": apps["crm"].url}
    with pytest.raises(StepError) as refused:
        await run(registry, harness, "crm.get_current_user", crm, connections(crm="wrong"))
    assert refused.value.message == ("The CRM refused GET /api/me (401): The API key is not valid.")
    assert refused.value.hint == (
        "Check the CRM connection of this instance (reconnect it on the instance page)."
    )
    with pytest.raises(StepError, match="must have at most 2 decimals"):
        await run(
            registry, harness, "crm.create_opportunity", {**crm, "name": "A", "amount": 1.234}
        )
    with pytest.raises(StepConfigError, match="There is no connection 'crm'"):
        await run(registry, harness, "crm.get_current_user", crm, {})
    dead = {"base_url": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(RetryableError, match="Acme could not be reached for GET /api/me"):
        await run(registry, harness, "acme.get_current_user", dead)


# --- triggers -------------------------------------------------------------------------------------


async def test_triggers_take_only_their_own_messages(registry: Registry, harness: Harness) -> None:
    signed = {"scheme": "hmac_sha256", "header": "X-CRM-Signature", "secret": "s3cret-12"}
    inputs = {"signature": signed, "delivery_id_header": "X-CRM-Delivery"}
    ctx: TriggerContext = harness.ctx()
    account = registry.trigger("crm.account_message")
    message = {"event": "opportunity.updated", "object": "opportunity", "record": {"id": "006"}}
    with pytest.raises(StepError) as wrong:
        await account().run(account.Inputs.model_validate(inputs), TriggerEvent(message), ctx)
    assert wrong.value.message == (
        "This flow takes account messages, but the CRM sent a opportunity message."
    )
    opportunity = registry.trigger("crm.opportunity_message")
    output = await opportunity().run(
        opportunity.Inputs.model_validate(inputs), TriggerEvent(message), ctx
    )
    assert output["body"] == message
    with pytest.raises(StepError, match="not a CRM outbound message"):
        await opportunity().run(opportunity.Inputs.model_validate(inputs), TriggerEvent([]), ctx)

    acme = registry.trigger("acme.webhook")
    created = {"event": "opportunity.created", "data": {"id": "opp_1"}}
    with pytest.raises(StepError, match=r"takes 'opportunity\.updated' webhooks"):
        await acme().run(acme.Inputs.model_validate(inputs), TriggerEvent(created), ctx)
    sample = acme.sample_payload["body"]
    assert (await acme().run(acme.Inputs.model_validate(inputs), TriggerEvent(sample), ctx))[
        "body"
    ] == sample
