"""Integrations service: import, re-import, list, get, export round trip, publish, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from app.persistence import SecretBox, load_secret_key, open_database, session_scope
from app.persistence import repositories as repo
from app.persistence.models import FlowRow, InstanceRow, IntegrationRow, TestPayloadRow
from app.services import integrations, payloads
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.hub import Hub
from app.settings import Settings
from components.registry import default_registry
from runtime.http import make_http_client

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "warehouse-import.yaml"
ECHO = ROOT / "tests" / "fixtures" / "echo.yaml"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    engine = open_database(tmp_path)
    async with make_http_client() as http:
        yield Hub(
            settings=Settings(data_dir=tmp_path),
            db=engine,
            registry=default_registry(),
            http=http,
            box=SecretBox(load_secret_key(tmp_path)),
        )
    engine.dispose()


async def test_import_then_export_is_byte_identical(hub: Hub) -> None:
    text = EXAMPLE.read_text()
    summary = await integrations.import_integration(hub, text, EXAMPLE.name)
    assert summary.name == "Warehouse import"
    assert summary.created
    assert summary.version == 1
    assert not summary.published
    assert summary.latest_published is None
    assert [(f.id, f.name, f.trigger) for f in summary.flows] == [
        ("warehouse_update", "Warehouse update", "webhook.webhook")
    ]
    assert summary.warnings == []
    assert await integrations.export_integration(hub, "Warehouse import") == text

    listed = await integrations.list_integrations(hub)
    assert [(i.name, i.version, i.instances) for i in listed] == [("Warehouse import", 1, 0)]
    detail = await integrations.get_integration(hub, "Warehouse import")
    assert detail.integration.flows[0].id == "warehouse_update"
    assert [(v.version, v.published) for v in detail.versions] == [(1, False)]


async def test_a_file_that_cannot_be_read_is_refused_with_its_problems(hub: Hub) -> None:
    with pytest.raises(InvalidInput) as caught:
        await integrations.import_integration(hub, "name: X\nflows: 3\nbogus: 1\n", "x.yaml")
    errors = caught.value.details["errors"]
    assert any("flows" in e and "should be a list" in e for e in errors)
    assert any("bogus" in e and "unknown key" in e for e in errors)
    assert all(e.startswith("x.yaml: ") for e in errors)
    with pytest.raises(InvalidInput):
        await integrations.import_integration(hub, "a: [1, 2\n", "broken.yaml")
    assert await integrations.list_integrations(hub) == []


async def test_an_invalid_flow_is_refused_listing_every_issue(hub: Hub) -> None:
    text = (ROOT / "tests" / "fixtures" / "invalid-graph.yaml").read_text()
    with pytest.raises(InvalidInput) as caught:
        await integrations.import_integration(hub, text, "invalid-graph.yaml")
    issues = caught.value.details["issues"]
    assert len(issues) >= 2
    for issue in issues:
        assert set(issue) == {"flow", "step", "message", "hint", "severity"}
        assert issue["severity"] == "error"
        assert issue["message"].startswith("Flow '")
    assert any(issue["step"] for issue in issues)
    assert await integrations.list_integrations(hub) == []


async def test_warnings_are_saved_and_returned(hub: Hub) -> None:
    text = (ROOT / "tests" / "fixtures" / "warnings-only.yaml").read_text()
    summary = await integrations.import_integration(hub, text, "warnings-only.yaml")
    assert summary.warnings
    assert {w.severity for w in summary.warnings} == {"warning"}


async def test_reimport_updates_the_draft_and_after_publish_starts_a_new_one(hub: Hub) -> None:
    text = ECHO.read_text()
    await integrations.import_integration(hub, text, "echo.yaml")
    changed = text.replace("status: 202", "status: 201")
    again = await integrations.import_integration(hub, changed, "echo.yaml")
    assert not again.created
    assert again.version == 1
    assert "status: 201" in await integrations.export_integration(hub, "Echo")
    with session_scope(hub.db, write=False) as s:
        assert len(list(s.exec(select(FlowRow)))) == 1

    assert await integrations.publish(hub, "Echo") == 1
    assert await integrations.publish(hub, "Echo") == 1  # nothing new to publish
    third = await integrations.import_integration(hub, text, "echo.yaml")
    assert (third.version, third.published, third.latest_published) == (2, False, 1)
    assert "status: 201" in await integrations.export_integration(hub, "Echo", 1)
    assert await integrations.export_integration(hub, "Echo", 2) == text.replace(
        "version: 1", "version: 2"
    )
    detail = await integrations.get_integration(hub, "Echo", 1)
    assert (detail.version, detail.published) == (1, True)
    assert [(v.version, v.published) for v in detail.versions] == [(1, True), (2, False)]
    with pytest.raises(NotFound):
        await integrations.get_integration(hub, "Echo", 9)
    with pytest.raises(NotFound):
        await integrations.export_integration(hub, "Nope")
    with pytest.raises(NotFound):
        await integrations.publish(hub, "Nope")


async def test_delete_is_refused_while_instances_use_it(hub: Hub) -> None:
    await integrations.import_integration(hub, ECHO.read_text(), "echo.yaml")
    await payloads.create_payload(
        hub, "Echo", payloads.PayloadInput(flow_id="echo", name="sample", body={"a": 1})
    )
    with session_scope(hub.db) as s:
        instance_id = repo.create_instance(s, "Customer B", "Echo", 1)
        repo.create_instance(s, "Customer A", "Echo", 1)

    with pytest.raises(Conflict) as caught:
        await integrations.delete_integration(hub, "Echo")
    assert "'Customer A', 'Customer B'" in caught.value.message
    assert caught.value.details == {"instances": ["Customer A", "Customer B"]}
    assert (await integrations.list_integrations(hub))[0].instances == 2

    with session_scope(hub.db) as s:
        for row in s.exec(select(InstanceRow)):
            s.delete(row)
    assert instance_id
    await integrations.delete_integration(hub, "Echo")
    with session_scope(hub.db, write=False) as s:
        assert list(s.exec(select(IntegrationRow))) == []
        assert list(s.exec(select(FlowRow))) == []
        assert list(s.exec(select(TestPayloadRow))) == []
    with pytest.raises(NotFound):
        await integrations.delete_integration(hub, "Echo")


async def test_literal_inputs_that_no_run_could_accept_are_refused_on_import(hub: Hub) -> None:
    text = """\
name: Orders
flows:
  - id: main
    name: Orders
    trigger:
      id: hook
      name: Order placed
      action: webhook.webhook
      inputs:
        signature: {scheme: standard_webhooks, secret: "whsec_%%%", tolerance: 5}
    steps:
      - id: fetch
        name: Fetch order
        action: http.request
        inputs: {method: FETCH, url: "https://shop.example.com/{{ trigger.body.id }}"}
    edges: [{from: hook, to: fetch}]
"""
    with pytest.raises(InvalidInput) as caught:
        await integrations.import_integration(hub, text, "orders.yaml")
    issues = caught.value.details["issues"]
    assert [(i["flow"], i["step"], i["message"].split(":")[0]) for i in issues] == [
        ("main", "hook", "Flow 'Orders'"),
        ("main", "hook", "Flow 'Orders'"),
        ("main", "fetch", "Flow 'Orders'"),
    ]
    messages = [i["message"] for i in issues]
    assert messages[0].startswith(
        "Flow 'Orders': Trigger 'Order placed' input 'signature.secret': The Standard Webhooks "
        "secret is not valid base64."
    )
    assert messages[1] == (
        "Flow 'Orders': Trigger 'Order placed' input 'signature.tolerance': there is no such "
        "setting; did you mean 'tolerance_seconds'? Allowed: scheme, header, prefix, algorithm, "
        "encoding, signed_content, timestamp_header, secret, tolerance_seconds."
    )
    assert messages[2] == (
        "Flow 'Orders': Step 'Fetch order' input 'method': 'FETCH' is not one of GET, POST, PUT, "
        "PATCH, DELETE, HEAD, OPTIONS."
    )
    assert "%%%" not in str(caught.value.details)  # the secret is not echoed
    assert await integrations.list_integrations(hub) == []
